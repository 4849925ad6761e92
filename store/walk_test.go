package store

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/meshsync/meshsync/merkle"
)

// heldAt is what an id-ordered walk up to upto should give: every record with an
// envelope numbered up to upto, in id order, with those envelopes (sorted, for
// comparison), read independently of the walk from the envelope bucket.
func heldAt(t *testing.T, s *Store, upto uint64) []HeldRecord {
	t.Helper()
	byID := map[merkle.ID]*HeldRecord{}
	if _, err := s.Replication().Since(0, 0, func(seq uint64, raw []byte) error {
		if seq > upto {
			return nil
		}
		id, err := EnvelopeID(raw)
		if err != nil {
			return err
		}
		r := byID[id]
		if r == nil {
			r = &HeldRecord{ID: id}
			byID[id] = r
		}
		r.Seqs, r.Raw = append(r.Seqs, seq), append(r.Raw, bytes.Clone(raw))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var out []HeldRecord
	for _, r := range byID {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b HeldRecord) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out
}

// walkedAt walks s up to upto as a sender does, limit records per call, each call
// resumed after the last record of the one before (from after, or from the first record),
// and returns what it visited, each record's envelopes sorted by sequence number.
func walkedAt(t *testing.T, s *Store, after merkle.ID, first bool, upto uint64, limit int) []HeldRecord {
	t.Helper()
	var out []HeldRecord
	for {
		last, any, err := s.Replication().OrderedUpTo(after, first, upto, limit, func(r *HeldRecord) error {
			if n := len(out); n > 0 && bytes.Compare(r.ID[:], out[n-1].ID[:]) <= 0 || n == 0 && !first && bytes.Compare(r.ID[:], after[:]) <= 0 {
				return fmt.Errorf("record %x not after the one before", r.ID[:9])
			}
			h := HeldRecord{ID: r.ID, Seqs: slices.Clone(r.Seqs)}
			for _, raw := range r.Raw {
				h.Raw = append(h.Raw, bytes.Clone(raw))
			}
			out = append(out, h)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !any {
			break
		}
		after, first = last, false
	}
	for i := range out {
		sortHeld(&out[i])
	}
	return out
}

// sortHeld orders a record's envelopes by sequence number.
func sortHeld(r *HeldRecord) {
	idx := make([]int, len(r.Seqs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return int(r.Seqs[a]) - int(r.Seqs[b]) })
	seqs, raws := make([]uint64, len(idx)), make([][]byte, len(idx))
	for i, j := range idx {
		seqs[i], raws[i] = r.Seqs[j], r.Raw[j]
	}
	r.Seqs, r.Raw = seqs, raws
}

// sameHeld reports the first difference between two lists of records.
func sameHeld(got, want []HeldRecord) error {
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.ID != w.ID {
			return fmt.Errorf("record %d: id %x, want %x", i, g.ID[:9], w.ID[:9])
		}
		if !slices.Equal(g.Seqs, w.Seqs) || !slices.EqualFunc(g.Raw, w.Raw, bytes.Equal) {
			return fmt.Errorf("record %d (%x): envelopes %v, want %v", i, g.ID[:9], g.Seqs, w.Seqs)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d records, want %d", len(got), len(want))
	}
	return nil
}

// TestOrderedWalkMatchesEnvelopes: the id-ordered walk (windows of many leaf prefixes, the
// envelopes of a window read together) gives every record up to the snapshot once, in id
// order, whole (records with concurrent versions, records of several collections under
// one leaf prefix, ids sharing their first eight bytes), whatever the batch size, from
// the first record or resumed after any id, and a walk in a write transaction (one
// envelope at a time through the cursor) visits the same records.
func TestOrderedWalkMatchesEnvelopes(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	for i := range 40 {
		if err := a.Put("notes", fmt.Sprint("n", i), []byte(`{"v":0}`)); err != nil {
			t.Fatal(err)
		}
	}
	// Concurrent versions of a few records (two each).
	mustApply(t, b, allEnvelopes(t, a))
	for i := range 8 {
		if err := a.Put("notes", fmt.Sprint("n", i), []byte(`{"v":"a"}`)); err != nil {
			t.Fatal(err)
		}
		if err := b.Put("notes", fmt.Sprint("n", i), []byte(`{"v":"b"}`)); err != nil {
			t.Fatal(err)
		}
	}
	mustApply(t, a, allEnvelopes(t, b))
	// Many records in two collections: windows of many prefixes, prefixes with both.
	for i := 0; i < 2500; i += 500 {
		err := a.Update(func(tx *Tx) error {
			for j := i; j < i+500; j++ {
				if err := tx.Put("c", fmt.Sprint(j), []byte(`{"v":1}`)); err != nil {
					return err
				}
				if j%5 == 0 {
					if err := tx.Put("d", fmt.Sprint(j), []byte(`{"v":1}`)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A blind replica holds them, and records whose ids agree on eight bytes.
	r := blindReplicaOf(t, a)
	mustApplyAll(t, r, allEnvelopes(t, a))
	var base [][]byte
	for _, raw := range allEnvelopes(t, a) {
		if mustEnvelope(t, raw).Tag == a.keys.tag("c") && len(base) < 4 {
			base = append(base, raw)
		}
	}
	var crafted []merkle.ID
	for i, raw := range base {
		env := mustEnvelope(t, raw)
		// The first eight bytes shared, the first two those of a record held (a busy
		// prefix).
		copy(env.ID[:2], mustEnvelope(t, base[0]).ID[:2])
		copy(env.ID[2:], []byte{1, 2, 3, 4, 5, 6})
		env.ID[8+i] = byte(200 - i)
		crafted = append(crafted, env.ID)
		craw, err := env.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		mustApply(t, r, [][]byte{craw})
	}
	snap, err := r.Replication().LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	// After the snapshot: records replaced (nothing left at the snapshot), new ones, a
	// new concurrent version.
	for i := range 30 {
		if err := a.Put("c", fmt.Sprint(i*7), []byte(`{"v":2}`)); err != nil {
			t.Fatal(err)
		}
		if err := a.Put("c", fmt.Sprint("new", i), []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put("notes", "n20", []byte(`{"v":"b2"}`)); err != nil {
		t.Fatal(err)
	}
	mustApplyAll(t, r, allEnvelopes(t, a))
	mustApply(t, r, allEnvelopes(t, b))
	last, err := r.Replication().LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.View(func(tx *Tx) error {
		if tx.envReader() == nil {
			t.Fatal("the replica's read transaction reads no envelope pages itself: the test walks nothing new")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	several := 0
	for _, upto := range []uint64{snap, last} {
		want := heldAt(t, r, upto)
		for _, h := range want {
			if len(h.Seqs) > 1 {
				several++
			}
		}
		for _, limit := range []int{0, 1, 7, 64, 1000} {
			if err := sameHeld(walkedAt(t, r, merkle.ID{}, true, upto, limit), want); err != nil {
				t.Fatalf("upto %d, %d records per call: %v", upto, limit, err)
			}
		}
		// Resumed after ids held and not held, and inside the crafted run.
		for i := 0; i < len(want); i += 97 {
			after := want[i].ID
			if err := sameHeld(walkedAt(t, r, after, false, upto, 50), want[i+1:]); err != nil {
				t.Fatalf("upto %d, after record %d: %v", upto, i, err)
			}
			// The next id up, carried like a number (a bare after[31]++ wraps 0xff to
			// 0x00 and lands before the record): not held, as ids are random.
			for j := len(after) - 1; j >= 0; j-- {
				after[j]++
				if after[j] != 0 {
					break
				}
			}
			if err := sameHeld(walkedAt(t, r, after, false, upto, 50), want[i+1:]); err != nil {
				t.Fatalf("upto %d, after record %d and a bit: %v", upto, i, err)
			}
		}
		slices.SortFunc(crafted, func(a, b merkle.ID) int { return bytes.Compare(a[:], b[:]) })
		for _, after := range crafted {
			i := slices.IndexFunc(want, func(h HeldRecord) bool { return h.ID == after })
			if i < 0 {
				t.Fatalf("crafted record %x not held", after[:10])
			}
			if err := sameHeld(walkedAt(t, r, after, false, upto, 3), want[i+1:]); err != nil {
				t.Fatalf("upto %d, after crafted record %x: %v", upto, after[:10], err)
			}
		}
	}
	if several < 9 {
		t.Fatalf("%d records with several versions, want the conflicts made", several)
	}
	// A write transaction walks through the cursor, one prefix at a time: the same ids.
	var inView, inUpdate []merkle.ID
	collect := func(ids *[]merkle.ID) func(tx *Tx) error {
		return func(tx *Tx) error {
			return tx.walkRecords(merkle.ID{}, true, func(h heldRecord) (bool, error) {
				*ids = append(*ids, h.id)
				return false, nil
			})
		}
	}
	if err := r.View(collect(&inView)); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(collect(&inUpdate)); err != nil {
		t.Fatal(err)
	}
	if len(inView) < 3000 || !slices.Equal(inView, inUpdate) {
		t.Fatalf("walks in a read and a write transaction: %d and %d records, or not the same", len(inView), len(inUpdate))
	}
}
