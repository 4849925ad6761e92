package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/meshsync/meshsync/merkle"
)

// TestLeafTellsApartIDsSharingEightBytes: the record index keeps eight bytes of each id
// and reads the rest from the envelope. Records whose ids agree on those eight bytes (a
// hostile member can make such ids for a blind replica, which cannot check them) are
// still found, listed in id order, summarised and removed one by one.
func TestLeafTellsApartIDsSharingEightBytes(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	for _, k := range []string{"k1", "k2", "k3"} {
		if err := a.Put("notes", k, []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	var raws [][]byte
	if _, err := a.Replication().Since(0, 0, func(_ uint64, b []byte) error {
		env, err := UnmarshalEnvelope(b)
		if err != nil {
			return err
		}
		if env.Tag == a.keys.tag("notes") {
			raws = append(raws, bytes.Clone(b))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(raws) != 3 {
		t.Fatalf("%d notes envelopes", len(raws))
	}
	r := blindReplicaOf(t, a)
	// Three ids with the same first eight bytes, applied out of order.
	ids := make([]merkle.ID, 3)
	crafted := make([][]byte, 3)
	for i := range ids {
		ids[i] = merkle.ID{0xab, 0xcd, 1, 2, 3, 4, 5, 6, byte(10 - 3*i)}
		env, err := UnmarshalEnvelope(raws[i])
		if err != nil {
			t.Fatal(err)
		}
		env.ID = ids[i]
		if crafted[i], err = env.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{1, 0, 2} {
		res, err := r.Replication().Apply([][]byte{crafted[i]})
		if err != nil || res.Added != 1 {
			t.Fatalf("apply crafted envelope %d: %v, %+v", i, err, res)
		}
	}
	for i, id := range ids {
		var got [][]byte
		if err := r.Replication().Envelopes([]merkle.ID{id}, func(b []byte) error {
			got = append(got, bytes.Clone(b))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !bytes.Equal(got[0], crafted[i]) {
			t.Errorf("record %d: %d envelopes, or not its own", i, len(got))
		}
	}
	var order []merkle.ID
	if _, _, err := r.Replication().OrderedUpTo(merkle.ID{}, true, 1<<62, 0, func(h *HeldRecord) error {
		if bytes.HasPrefix(h.ID[:], ids[0][:8]) {
			order = append(order, h.ID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []merkle.ID{ids[2], ids[1], ids[0]}; !slices.Equal(order, want) {
		t.Errorf("id order: got %x, want %x", order, want)
	}
	items, err := r.Replication().Summary(nil).Items(merkle.PrefixOf(ids[0], 16), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].ID != ids[2] || items[2].ID != ids[0] {
		t.Fatalf("items under the shared prefix: %d, want the three in id order", len(items))
	}
	for _, it := range items {
		h, _ := newHashed(mustEnvelope(t, crafted[slices.Index(ids, it.ID)]))
		if it.Digest != merkle.Digest(antichainDigest([]hashed{h})) {
			t.Errorf("item %x: digest is not its envelope's", it.ID[:9])
		}
	}
	n, err := r.Replication().ForgetBefore([]merkle.ID{ids[1]}, time.Now().Add(100*365*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("forget the middle record: %d, %v", n, err)
	}
	for i, id := range ids {
		found := false
		if err := r.Replication().Envelopes([]merkle.ID{id}, func([]byte) error { found = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if found != (i != 1) {
			t.Errorf("record %d held: %v after forgetting record 1", i, found)
		}
	}
}

func mustEnvelope(t *testing.T, raw []byte) *Envelope {
	t.Helper()
	e, err := UnmarshalEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestLeafRefusesWhatItWouldNotWrite: a leaf decodes only what marshal writes.
func TestLeafRefusesWhatItWouldNotWrite(t *testing.T) {
	l := &leaf{items: []leafItem{
		{suffix: [6]byte{1}, seqs: []uint64{7}},
		{suffix: [6]byte{2}, seqs: []uint64{300, 1 << 40}},
	}}
	good := l.marshal()
	back, err := unmarshalLeaf(good)
	if err != nil || !bytes.Equal(back.marshal(), good) {
		t.Fatalf("round trip: %v", err)
	}
	for name, b := range map[string][]byte{
		"truncated":     good[:len(good)-1],
		"zero count":    append(bytes.Clone(good[:6]), 0, 1),
		"zero sequence": append(bytes.Clone(good[:6]), 1, 0),
		"out of order":  append(bytes.Clone(good[8:]), good[:8]...),
		"count too big": append(bytes.Clone(good[:6]), 200, 1),
	} {
		if _, err := unmarshalLeaf(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzLeaf: any bytes decode to a leaf that encodes back to the same bytes, or fail with
// ErrCorrupt.
func FuzzLeaf(f *testing.F) {
	f.Add((&leaf{items: []leafItem{{suffix: [6]byte{1}, seqs: []uint64{7}}}}).marshal())
	f.Add((&leaf{items: []leafItem{{seqs: []uint64{1, 2}}, {suffix: [6]byte{9}, seqs: []uint64{1 << 50}}}}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := unmarshalLeaf(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if again := l.marshal(); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %x -> %x", b, again)
		}
		var want []uint64
		for _, it := range l.items {
			if len(it.seqs) > 1 {
				want = append(want, it.seqs[0])
			}
		}
		if got, err := concurrentIn(b); err != nil || !slices.Equal(got, want) {
			t.Fatalf("records with concurrent versions: %v (%v), want %v", got, err, want)
		}
	})
}

// TestLeafFullRefusesCraftedIDs: a hostile member sends a blind replica records whose ids
// it made share their first two bytes. Past maxLeafRecords (lowered here) the replica
// refuses them with ErrIndexFull, keeps what it took, and verifies.
func TestLeafFullRefusesCraftedIDs(t *testing.T) {
	defer func(m int) { maxLeafRecords = m }(maxLeafRecords)
	maxLeafRecords = 8
	a := mustInit(t, testOpts("a"))
	if err := a.Put("notes", "k", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	var base []byte
	if _, err := a.Replication().Since(0, 0, func(_ uint64, b []byte) error {
		if env, err := UnmarshalEnvelope(b); err == nil && env.Tag == a.keys.tag("notes") {
			base = bytes.Clone(b)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := blindReplicaOf(t, a)
	var crafted [][]byte
	for i := range 12 {
		env := mustEnvelope(t, base)
		env.ID = merkle.ID{0x12, 0x34, byte(i)}
		raw, err := env.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		crafted = append(crafted, raw)
	}
	res, err := r.Replication().Apply(crafted)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 8 || len(res.Rejected) != 4 {
		t.Fatalf("added %d, refused %d: want 8 and 4", res.Added, len(res.Rejected))
	}
	for _, rj := range res.Rejected {
		if !errors.Is(rj.Err, ErrIndexFull) {
			t.Errorf("refused for %v, want ErrIndexFull", rj.Err)
		}
	}
}

// TestSummaryBelowStoredLevels: the store keeps tree levels 0 to 4 and computes level 5
// and the items below from its record index; every node and item list a reconciliation
// can ask for matches an in-memory tree of the records' envelopes, for every collection
// and for one alone.
func TestSummaryBelowStoredLevels(t *testing.T) {
	s := mustInit(t, testOpts("a"))
	defer mustVerifyClose(t, s)
	err := s.Update(func(tx *Tx) error {
		for i := range 3000 {
			if err := tx.PutRaw(fmt.Sprint("c", i%2), fmt.Sprint("k", i), []byte{byte(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, one := range []bool{false, true} {
		var tags []Tag
		if one {
			tags = []Tag{s.keys.tag("c1")}
		}
		// The expected items: each record's digest from its envelopes, read by sequence.
		byID := map[merkle.ID][]hashed{}
		if _, err := s.Replication().Since(0, 0, func(_ uint64, raw []byte) error {
			h, err := newHashed(mustEnvelope(t, raw))
			if err != nil {
				return err
			}
			if tags == nil || h.env.Tag == tags[0] {
				byID[h.env.ID] = append(byID[h.env.ID], h)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var items []merkle.Item
		for id, set := range byID {
			sortByHash(set)
			items = append(items, merkle.Item{ID: id, Digest: antichainDigest(set)})
		}
		mem := merkle.NewMemFrom(items)
		src := s.Replication().Summary(tags)
		for i, it := range items {
			if i%97 != 0 {
				continue
			}
			for l := range 9 {
				p := merkle.PrefixOf(it.ID, l)
				got, err := src.Node(p)
				if err != nil {
					t.Fatal(err)
				}
				if want, _ := mem.Node(p); got != want {
					t.Fatalf("one collection %v: node %v (level %d) differs from the in-memory tree", one, p, l)
				}
				if l < 3 {
					continue // item lists of the upper levels are long; checked below for the root
				}
				gotItems, err := src.Items(p, 0)
				if err != nil {
					t.Fatal(err)
				}
				if wantItems, _ := mem.Items(p, 0); !slices.Equal(gotItems, wantItems) {
					t.Fatalf("one collection %v: items under %v (level %d): %d, want %d", one, p, l, len(gotItems), len(wantItems))
				}
			}
		}
		got, err := src.Items(merkle.Root(), 10)
		if want, _ := mem.Items(merkle.Root(), 10); err != nil || !slices.Equal(got, want) {
			t.Fatalf("first ten items of the store: %v", err)
		}
	}
}

// blindReplicaOf makes a blind replica of a's mesh, verified and closed at the end of the
// test.
func blindReplicaOf(t *testing.T, a *Store) *Store {
	t.Helper()
	tok, err := a.Keys().ReplicaToken()
	if err != nil {
		t.Fatal(err)
	}
	r, err := InitReplica(filepath.Join(t.TempDir(), "replica"), []byte("replica pass"), tok, testOpts("box"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustVerifyClose(t, r) })
	return r
}
