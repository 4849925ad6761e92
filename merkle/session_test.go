package merkle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), 7)) }

func randomItem(r *rand.Rand) Item {
	var it Item
	for i := 0; i < 32; i += 8 {
		binary.LittleEndian.PutUint64(it.ID[i:], r.Uint64())
		binary.LittleEndian.PutUint64(it.Digest[i:], r.Uint64())
	}
	return it
}

// randomPair returns two sets sharing n items and differing in d ids.
func randomPair(seed int64, n, d int) (*Mem, *Mem) {
	r := newRand(seed)
	var a, b []Item
	for range n {
		it := randomItem(r)
		a, b = append(a, it), append(b, it)
	}
	for i := range d {
		it := randomItem(r)
		switch i % 3 {
		case 0:
			a = append(a, it)
		case 1:
			b = append(b, it)
		default:
			a = append(a, it)
			it.Digest[5] ^= 0x40
			b = append(b, it)
		}
	}
	return NewMemFrom(a), NewMemFrom(b)
}

// relay runs a session like Exchange, passing each message (index i, even = to the
// responder) through mutate first.
func relay(a, b *Session, mutate func(i int, msg []byte) []byte) (Stats, error) {
	var st Stats
	msg, err := a.Start()
	for i := 0; err == nil && msg != nil; i++ {
		if i > 10_000 {
			return st, errors.New("relay: no end")
		}
		msg = mutate(i, msg)
		st.Messages++
		if i%2 == 0 {
			st.BytesSent += len(msg)
			msg, err = b.Handle(msg)
		} else {
			st.BytesReceived += len(msg)
			msg, err = a.Handle(msg)
		}
	}
	st.RoundTrips = (st.Messages + 1) / 2
	st.Passes = a.pass + 1
	return st, err
}

// symmetricDifference returns what a needs from b and what a has that b lacks.
func symmetricDifference(a, b *Mem) (need, have []ID) {
	all := func(m *Mem) []Item { items, _ := m.Items(Root(), 0); return items }
	for _, it := range all(b) {
		if d, ok := a.Get(it.ID); !ok || d != it.Digest {
			need = append(need, it.ID)
		}
	}
	for _, it := range all(a) {
		if d, ok := b.Get(it.ID); !ok || d != it.Digest {
			have = append(have, it.ID)
		}
	}
	return sortedUnique(need), sortedUnique(have)
}

func reconcileAndCheck(t *testing.T, name string, a, b *Mem, cfg Config) Stats {
	t.Helper()
	ia, rb := NewInitiator(a, cfg), NewResponder(b, cfg)
	var maxMsg int
	st, err := relay(ia, rb, func(_ int, m []byte) []byte { maxMsg = max(maxMsg, len(m)); return m })
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !ia.Done() || !rb.Done() {
		t.Fatalf("%s: done initiator=%v responder=%v", name, ia.Done(), rb.Done())
	}
	if limit := cfg.withDefaults(0).MaxMessageBytes; maxMsg > limit {
		t.Fatalf("%s: message of %d bytes above cap %d", name, maxMsg, limit)
	}
	wantNeed, wantHave := symmetricDifference(a, b)
	needA, haveA := ia.Result()
	needB, haveB := rb.Result()
	for _, c := range []struct {
		side      string
		got, want []ID
	}{{"initiator need", needA, wantNeed}, {"initiator have", haveA, wantHave},
		{"responder need", needB, wantHave}, {"responder have", haveB, wantNeed}} {
		if !slices.Equal(c.got, c.want) {
			t.Fatalf("%s: %s: got %d ids, want %d", name, c.side, len(c.got), len(c.want))
		}
	}
	return st
}

// clustered returns n items whose ids share their first `shared` hex digits.
func clustered(r *rand.Rand, n, shared int, base ID) []Item {
	out := make([]Item, n)
	for i := range out {
		it := randomItem(r)
		for d := 0; d < shared; d += 2 {
			if d+1 < shared {
				it.ID[d/2] = base[d/2]
			} else {
				it.ID[d/2] = base[d/2]&0xf0 | it.ID[d/2]&0x0f
			}
		}
		out[i] = it
	}
	return out
}

func TestReconcileProperties(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 10
	}
	for seed := range int64(seeds) {
		r := newRand(seed)
		n := r.IntN(3000)
		var base ID
		base[0], base[1], base[2], base[3] = 0x12, 0x34, 0x56, 0x78
		cases := []struct {
			name string
			a, b []Item
		}{
			{name: "both empty"},
			{name: "one empty", a: nil},
			{name: "other empty"},
			{name: "identical"},
			{name: "disjoint"},
			{name: "random overlap"},
			{name: "same ids, some digests differ"},
			{name: "clustered ids"},
		}
		var shared []Item
		for range n {
			shared = append(shared, randomItem(r))
		}
		cases[1].b = shared
		cases[2].a = shared
		cases[3].a, cases[3].b = shared, shared
		for range n {
			cases[4].a = append(cases[4].a, randomItem(r))
			cases[4].b = append(cases[4].b, randomItem(r))
		}
		for _, it := range shared {
			switch r.IntN(4) {
			case 0:
				cases[5].a = append(cases[5].a, it)
			case 1:
				cases[5].b = append(cases[5].b, it)
			default:
				cases[5].a, cases[5].b = append(cases[5].a, it), append(cases[5].b, it)
			}
			cases[6].a = append(cases[6].a, it)
			if r.IntN(20) == 0 {
				it.Digest[0]++
			}
			cases[6].b = append(cases[6].b, it)
		}
		// Many ids under one long shared prefix, deeper than the stored levels.
		cl := clustered(r, 200+r.IntN(400), 8+r.IntN(40), base)
		cases[7].a = append(slices.Clone(shared[:n/2]), cl...)
		cases[7].b = slices.Clone(shared[:n/2])
		for i, it := range cl {
			if i%7 == 0 {
				continue // only in a
			}
			if i%5 == 0 {
				it.Digest[1]++
			}
			cases[7].b = append(cases[7].b, it)
		}
		for _, c := range cases {
			name := fmt.Sprintf("seed %d n %d %s", seed, n, c.name)
			reconcileAndCheck(t, name, NewMemFrom(c.a), NewMemFrom(c.b), Config{})
		}
	}
}

// The targets of issue 4 that do not need a million items.
func TestCostTargets(t *testing.T) {
	st, err := Simulate(100_000, 0, 1, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if st.RoundTrips != 1 || st.BytesSent+st.BytesReceived >= 100 {
		t.Errorf("d=0: %+v, want 1 round trip under 100 bytes", st)
	}
	for seed := range int64(5) {
		st, err := Simulate(100_000, 10, seed, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if st.RoundTrips > 3 || st.BytesSent+st.BytesReceived > 8<<10 {
			t.Errorf("n=1e5 d=10 seed %d: %+v, want ≤ 3 round trips and ≤ 8 KiB", seed, st)
		}
	}
}

func TestMillionTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two sets of a million items")
	}
	st, err := Simulate(1_000_000, 10, 1, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if st.RoundTrips > 3 || st.BytesSent+st.BytesReceived > 8<<10 {
		t.Errorf("n=1e6 d=10: %+v, want ≤ 3 round trips and ≤ 8 KiB", st)
	}
}

func TestSmallMessageCap(t *testing.T) {
	a, b := randomPair(3, 5000, 3000)
	cfg := Config{MaxMessageBytes: MinMessageBytes}
	st := reconcileAndCheck(t, "cap 4 KiB", a, b, cfg)
	if st.Messages < 20 {
		t.Errorf("only %d messages for ~100 KB of ids under a 4 KiB cap", st.Messages)
	}
}

func TestCollisionsCaughtByRetry(t *testing.T) {
	// One-byte fingerprints and tags collide often; the root check catches every miss and
	// a wider pass finds the rest.
	retried := 0
	for seed := range int64(30) {
		a, b := randomPair(seed, 2000, 60)
		st := reconcileAndCheck(t, fmt.Sprint("seed ", seed), a, b, Config{FingerprintBytes: 1, TagBytes: 1})
		if st.Passes > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Error("no session needed a second pass: the retry path went untested")
	}
	t.Logf("%d of 30 sessions needed a second pass", retried)
}

func TestMemMatchesRebuild(t *testing.T) {
	for seed := range int64(20) {
		r := newRand(seed)
		m := NewMem()
		ref := map[ID]Digest{}
		var ids []ID
		base := ID{0xab, 0xcd}
		for range 3000 {
			switch op := r.IntN(10); {
			case op < 5 || len(ids) == 0:
				it := randomItem(r)
				if r.IntN(3) == 0 {
					it = clustered(r, 1, 6, base)[0]
				}
				m.Insert(it)
				if _, ok := ref[it.ID]; !ok {
					ids = append(ids, it.ID)
				}
				ref[it.ID] = it.Digest
			case op < 8:
				i := r.IntN(len(ids))
				if !m.Remove(ids[i]) {
					t.Fatal("Remove of a present id returned false")
				}
				delete(ref, ids[i])
				ids = slices.Delete(ids, i, i+1)
			default:
				id := ids[r.IntN(len(ids))]
				d := ref[id]
				d[3]++
				m.Insert(Item{ID: id, Digest: d})
				ref[id] = d
			}
		}
		if m.Remove(ID{0xff, 0xff, 0xff}) {
			t.Fatal("Remove of an absent id returned true")
		}
		var items []Item
		for id, d := range ref {
			items = append(items, Item{ID: id, Digest: d})
		}
		rebuilt := NewMemFrom(items)
		if m.Len() != len(ref) || rebuilt.Len() != len(ref) {
			t.Fatalf("len %d and %d, want %d", m.Len(), rebuilt.Len(), len(ref))
		}
		if m.Root() != rebuilt.Root() {
			t.Fatal("root differs from rebuild")
		}
		var want Node
		for _, it := range items {
			want.Add(it)
		}
		if m.Root() != want {
			t.Fatal("root differs from the sum of its items")
		}
		for _, id := range ids[:min(len(ids), 50)] {
			for _, p := range append(Path(id), PrefixOf(id, 9), PrefixOf(id, MaxLevel)) {
				n1, _ := m.Node(p)
				n2, _ := rebuilt.Node(p)
				if n1 != n2 {
					t.Fatalf("node %v differs from rebuild", p)
				}
				l1, _ := m.Items(p, 0)
				l2, _ := rebuilt.Items(p, 5)
				if !slices.Equal(l1[:min(5, len(l1))], l2) || uint64(len(l1)) != n1.Count {
					t.Fatalf("items under %v differ", p)
				}
			}
		}
		all, _ := m.Items(Root(), 0)
		if !slices.IsSortedFunc(all, func(x, y Item) int { return bytes.Compare(x.ID[:], y.ID[:]) }) {
			t.Fatal("items not in id order")
		}
	}
}

func TestNewMemFromLastWins(t *testing.T) {
	id := ID{1}
	m := NewMemFrom([]Item{{ID: id, Digest: Digest{1}}, {ID: id, Digest: Digest{2}}})
	if d, _ := m.Get(id); m.Len() != 1 || d != (Digest{2}) {
		t.Errorf("len %d digest %x", m.Len(), d)
	}
}

func BenchmarkSimulate(b *testing.B) {
	for _, c := range []struct{ n, d int }{{100_000, 10}, {100_000, 1000}} {
		b.Run(fmt.Sprintf("n=%d/d=%d", c.n, c.d), func(b *testing.B) {
			for b.Loop() {
				st, err := Simulate(c.n, c.d, 1, Config{})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(st.BytesSent+st.BytesReceived), "bytes/op")
				b.ReportMetric(float64(st.RoundTrips), "rt/op")
			}
		})
	}
}
