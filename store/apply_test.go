package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// allEnvelopes returns every envelope a store holds, in sequence order.
func allEnvelopes(t testing.TB, s *Store) [][]byte {
	t.Helper()
	var out [][]byte
	if _, err := s.Replication().Since(0, 0, func(_ uint64, raw []byte) error {
		out = append(out, bytes.Clone(raw))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// envelopeSet is the sorted multiset of a store's envelopes, for byte comparison.
func envelopeSet(t testing.TB, s *Store) string {
	t.Helper()
	envs := allEnvelopes(t, s)
	keys := make([]string, len(envs))
	for i, e := range envs {
		keys[i] = string(e)
	}
	slicesSort(keys)
	return fmt.Sprintf("%x", keys)
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// peer creates another device of s's mesh.
func peer(t testing.TB, s *Store, name string, opts *Options) *Store {
	t.Helper()
	if opts == nil {
		opts = testOpts(name)
	}
	o := *opts
	o.MeshKey = s.keys.mesh
	o.DeviceName = name
	p, err := Init(filepath.Join(t.TempDir(), name), testPass, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustVerifyClose(t, p) })
	return p
}

func mustApply(t testing.TB, s *Store, envs [][]byte) ApplyResult {
	t.Helper()
	res, err := s.Replication().Apply(envs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("rejected: %v", res.Rejected[0].Err)
	}
	return res
}

func TestApplyConflictAndResolve(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	a.Put("notes", "n", []byte(`{"v":"a"}`))
	mustApply(t, b, allEnvelopes(t, a))
	if rec, err := b.Get("notes", "n"); err != nil || string(rec.Value) != `{"v":"a"}` {
		t.Fatalf("b did not receive a's write: %v %v", rec, err)
	}
	// Concurrent updates.
	a.Put("notes", "n", []byte(`{"v":"a2"}`))
	b.Put("notes", "n", []byte(`{"v":"b2"}`))
	res := mustApply(t, a, allEnvelopes(t, b))
	mustApply(t, b, allEnvelopes(t, a))
	if len(res.Changes) != 1 || !res.Changes[0].Conflict || res.Changes[0].Key != "n" {
		t.Fatalf("changes = %+v", res.Changes)
	}
	ra, _ := a.Get("notes", "n")
	rb, _ := b.Get("notes", "n")
	if ra.Versions != 2 || ra.Conflict == nil || string(ra.Value) != string(rb.Value) {
		t.Fatalf("a=%+v b=%+v", ra, rb)
	}
	if envelopeSet(t, a) != envelopeSet(t, b) {
		t.Fatal("stores differ after exchange")
	}
	// Applying again changes nothing.
	again := mustApply(t, a, allEnvelopes(t, b))
	if again.Added != 0 || again.Stale == 0 {
		t.Errorf("re-apply: %+v", again)
	}
	// A write that has seen both versions closes the conflict everywhere.
	a.Put("notes", "n", []byte(`{"v":"decided"}`))
	mustApply(t, b, allEnvelopes(t, a))
	rb, _ = b.Get("notes", "n")
	if rb.Versions != 1 || rb.Conflict != nil || string(rb.Value) != `{"v":"decided"}` {
		t.Fatalf("after decision b = %+v", rb)
	}
	if envelopeSet(t, a) != envelopeSet(t, b) {
		t.Fatal("stores differ after decision")
	}
}

func TestApplyRejectsTampered(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	stranger := mustInit(t, testOpts("stranger"))
	a.Put("c", "k", []byte(`1`))
	stranger.Put("c", "k", []byte(`2`))
	envs := allEnvelopes(t, a)
	bad := bytes.Clone(envs[0])
	bad[len(bad)-1] ^= 1
	res, err := b.Replication().Apply([][]byte{bad, []byte("garbage"), allEnvelopes(t, stranger)[0], envs[0]})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 3 || res.Added != 1 {
		t.Fatalf("result %+v", res)
	}
	if rec, err := b.Get("c", "k"); err != nil || string(rec.Value) != "1" {
		t.Fatalf("good envelope not applied: %v %v", rec, err)
	}
}

// TestApplyOrderIndependent is the antichain property: any order, duplication or grouping
// of the same envelopes leaves byte-identical stores.
func TestApplyOrderIndependent(t *testing.T) {
	seeds := 20
	if testing.Short() {
		seeds = 5
	}
	for seed := 0; seed < seeds; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 1))
			devs := []*Store{mustInit(t, testOpts("d0"))}
			for i := 1; i < 3; i++ {
				devs = append(devs, peer(t, devs[0], fmt.Sprint("d", i), nil))
			}
			var pool [][]byte
			for step := 0; step < 60; step++ {
				d := devs[rng.IntN(len(devs))]
				key := fmt.Sprint("k", rng.IntN(6))
				switch rng.IntN(10) {
				case 0:
					d.Delete("c", key) // may be ErrNotFound
				case 1, 2:
					// Partial sync from another device.
					src := devs[rng.IntN(len(devs))]
					envs := allEnvelopes(t, src)
					rng.Shuffle(len(envs), func(i, j int) { envs[i], envs[j] = envs[j], envs[i] })
					mustApply(t, d, envs[:rng.IntN(len(envs)+1)])
				default:
					if err := d.Put("c", key, []byte(fmt.Sprintf(`{"s":%d}`, step))); err != nil {
						t.Fatal(err)
					}
				}
				pool = append(pool, allEnvelopes(t, d)...)
			}
			// Three fresh replicas get the whole pool in different orders, duplications and
			// groupings.
			var sets []string
			for r := 0; r < 3; r++ {
				rep := peer(t, devs[0], fmt.Sprint("r", r), nil)
				p := append([][]byte(nil), pool...)
				if r > 0 {
					rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
					p = append(p, p[:len(p)/3]...)
				}
				for len(p) > 0 {
					n := 1 + rng.IntN(len(p))
					if r == 0 {
						n = len(p)
					}
					mustApply(t, rep, p[:n])
					p = p[n:]
				}
				sets = append(sets, envelopeSet(t, rep))
				root, _ := rep.Replication().Root()
				sets[r] += fmt.Sprintf("/%x/%d", root.FP, root.Count)
			}
			for r := 1; r < len(sets); r++ {
				if sets[r] != sets[0] {
					t.Fatalf("seed=%d: replica %d differs from replica 0", seed, r)
				}
			}
			// Every device, once fully synced, holds the same set too.
			for _, d := range devs {
				mustApply(t, d, pool)
				if got := envelopeSet(t, d); got != sets[0][:len(got)] {
					t.Fatalf("seed=%d: device %s differs after full sync", seed, d.Device().Name)
				}
			}
		})
	}
}

func TestClockPersistsAndClamps(t *testing.T) {
	clk := newFakeClock()
	dir := filepath.Join(t.TempDir(), "s")
	s, err := Init(dir, testPass, testOptsClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	s.Put("c", "k", []byte(`1`))
	r1, _ := s.Get("c", "k")
	s.Close()
	// The wall clock jumps back an hour; the next write still gets a later timestamp.
	clk.Add(-time.Hour)
	s, err = Open(dir, testPass, testOptsClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, s)
	s.Put("c", "k", []byte(`2`))
	r2, _ := s.Get("c", "k")
	if r2.Version.Clock <= r1.Version.Clock {
		t.Fatalf("clock ran backwards across restart: %v then %v", r1.Version.Clock, r2.Version.Clock)
	}
	// A peer a year ahead does not drag this clock past the bound, and the skew shows.
	futureClk := &fakeClock{t: clk.t.Add(365 * 24 * time.Hour)}
	o := testOptsClock(futureClk)
	f := peer(t, s, "future", o)
	f.Put("c", "f", []byte(`3`))
	res := mustApply(t, s, allEnvelopes(t, f))
	if res.Skew < 364*24*time.Hour || s.Replication().ClockSkew() != res.Skew {
		t.Errorf("skew reported %v / %v", res.Skew, s.Replication().ClockSkew())
	}
	s.Put("c", "k", []byte(`4`))
	r3, _ := s.Get("c", "k")
	if limit := r2.Version.Clock.Time().Add(11 * time.Minute); r3.Version.Clock.Time().After(limit) {
		t.Errorf("local clock dragged to %v by a remote clock (now %v)", r3.Version.Clock.Time(), clk.t)
	}
}

func TestSinceFastPath(t *testing.T) {
	s := mustInit(t, nil)
	for i := 0; i < 10; i++ {
		s.Put("c", fmt.Sprint(i), []byte(`1`))
	}
	last, _ := s.Replication().LastSeq()
	s.Put("c", "3", []byte(`2`)) // replaces envelope of key 3
	s.Put("c", "new", []byte(`3`))
	var got int
	end, err := s.Replication().Since(last, 0, func(uint64, []byte) error { got++; return nil })
	if err != nil || got != 2 {
		t.Fatalf("since: %d envelopes, %v", got, err)
	}
	if l, _ := s.Replication().LastSeq(); end != l {
		t.Errorf("Since returned %d, last seq %d", end, l)
	}
	if n := len(allEnvelopes(t, s)); n != 11 {
		t.Errorf("store keeps %d envelopes, want 11 (replaced ones dropped)", n)
	}
}

func TestApplyWithRecordsProgressAndSeqRange(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	for i := 0; i < 5; i++ {
		a.Put("c", fmt.Sprint(i), []byte(`1`))
	}
	b.Put("c", "own", []byte(`1`))
	before, _ := b.Replication().LastSeq()
	res, err := b.Replication().ApplyWith(allEnvelopes(t, a), func(tx *Tx, r ApplyResult) error {
		return tx.PutLocal("progress", r.LastSeq)
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstSeq != before+1 || res.LastSeq != before+5 {
		t.Errorf("seq range %d..%d, want %d..%d", res.FirstSeq, res.LastSeq, before+1, before+5)
	}
	var got uint64
	if ok, err := b.Local().Get("progress", &got); !ok || err != nil || got != res.LastSeq {
		t.Errorf("progress = %d %v %v", got, ok, err)
	}
	n := 0
	b.Replication().SinceUpTo(res.FirstSeq, res.LastSeq-1, 0, func(uint64, []byte) error { n++; return nil })
	if n != 3 {
		t.Errorf("SinceUpTo saw %d envelopes, want 3", n)
	}
	again, _ := b.Replication().Apply(allEnvelopes(t, a))
	if again.FirstSeq != 0 || again.LastSeq != 0 {
		t.Errorf("stale batch reports seqs %d..%d", again.FirstSeq, again.LastSeq)
	}
}
