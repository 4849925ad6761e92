package store

import (
	"bytes"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/meshsync/meshsync/merkle"
)

// orderedEnvelopes returns every envelope of s in record-id order, as an initial sync in
// id order sends them, read limit records at a time.
func orderedEnvelopes(t testing.TB, s *Store, limit int) [][]byte {
	t.Helper()
	upto, err := s.Replication().LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	var after merkle.ID
	var prev []byte
	for first := true; ; first = false {
		last, any, err := s.Replication().OrderedUpTo(after, first, upto, limit, func(r *HeldRecord) error {
			if prev != nil && bytes.Compare(r.ID[:], prev) <= 0 {
				return fmt.Errorf("record %x after %x", r.ID[:4], prev[:4])
			}
			prev = bytes.Clone(r.ID[:])
			for _, raw := range r.Raw {
				out = append(out, bytes.Clone(raw))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !any {
			return out
		}
		after = last
	}
}

// buckets dumps the buckets an apply writes (envelopes, record index, tree).
func buckets(t testing.TB, s *Store) string {
	t.Helper()
	var b bytes.Buffer
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEnv, bucketItems, bucketTree} {
			fmt.Fprintf(&b, "[%s]\n", name)
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				fmt.Fprintf(&b, "%x=%x\n", k, v)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestPreparedApplyEqualsApply: envelopes decoded and opened on several goroutines ahead
// of the transaction (Prepare) and applied in id order with packed index pages
// (ApplyPrepared, inOrder) leave the same bytes as Apply of the same groups, and the same
// records, Merkle root and a clean Verify as Apply in sequence order. A tampered envelope
// is refused alike, at the same index.
func TestPreparedApplyEqualsApply(t *testing.T) {
	src := mustInit(t, testOpts("src"))
	other := peer(t, src, "other", nil)
	for i := range 700 {
		if err := putRaw(src, fmt.Sprint("c", i%3), fmt.Sprint("k", i), []byte(fmt.Sprint("value ", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 { // concurrent versions: conflicts of two envelopes each
		if err := putRaw(other, "c0", fmt.Sprint("k", i*3), []byte("other")); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Delete("c1", "k1"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, src, allEnvelopes(t, other))
	bySeq := allEnvelopes(t, src)
	byID := orderedEnvelopes(t, src, 300) // chunks of orderedChunk (256) inside each call
	if len(byID) != len(bySeq) {
		t.Fatalf("%d envelopes in id order, %d in sequence order", len(byID), len(bySeq))
	}
	tampered := bytes.Clone(byID[10])
	tampered[len(tampered)-1] ^= 1
	byID = append(byID[:11:11], append([][]byte{tampered}, byID[11:]...)...)

	plain := peer(t, src, "plain", nil)
	prepared := peer(t, src, "prepared", nil)
	seqOrder := peer(t, src, "seq", nil)
	for from := 0; from < len(byID); from += 300 {
		group := byID[from:min(from+300, len(byID))]
		want, err := plain.Replication().Apply(group)
		if err != nil {
			t.Fatal(err)
		}
		got, err := prepared.Replication().ApplyPrepared(prepared.Replication().Prepare(group, 4), nil, true)
		if err != nil {
			t.Fatal(err)
		}
		if got.Added != want.Added || got.Stale != want.Stale || len(got.Rejected) != len(want.Rejected) || len(got.Changes) != len(want.Changes) {
			t.Fatalf("group at %d: prepared %+v, apply %+v", from, got, want)
		}
		for i := range got.Rejected {
			if got.Rejected[i].Index != want.Rejected[i].Index {
				t.Fatalf("rejected index %d, want %d", got.Rejected[i].Index, want.Rejected[i].Index)
			}
		}
	}
	if r := mustApplyAll(t, seqOrder, bySeq); r.Added != len(bySeq) {
		t.Fatalf("sequence order added %d of %d", r.Added, len(bySeq))
	}
	if got, want := buckets(t, prepared), buckets(t, plain); got != want {
		t.Fatal("prepared and applied in id order: the store bytes differ from Apply's")
	}
	rootOf := func(s *Store) string {
		r, err := s.Replication().Root()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%x/%d", r.FP, r.Count)
	}
	if rootOf(prepared) != rootOf(seqOrder) || rootOf(prepared) != rootOf(src) {
		t.Fatalf("roots: prepared %s, sequence order %s, source %s", rootOf(prepared), rootOf(seqOrder), rootOf(src))
	}
	if envelopeSet(t, prepared) != envelopeSet(t, seqOrder) {
		t.Fatal("prepared in id order and applied in sequence order hold different envelopes")
	}
	mustVerify(t, prepared)
	mustVerify(t, seqOrder)
}

// mustApplyAll applies envs in groups of 300 and sums what was added.
func mustApplyAll(t testing.TB, s *Store, envs [][]byte) ApplyResult {
	t.Helper()
	var sum ApplyResult
	for from := 0; from < len(envs); from += 300 {
		r := mustApply(t, s, envs[from:min(from+300, len(envs))])
		sum.Added += r.Added
	}
	return sum
}

// TestOrderedUpToSnapshot: a record written after the snapshot sequence is left out, and
// one changed since keeps only what it held at the snapshot (nothing, once replaced).
func TestOrderedUpToSnapshot(t *testing.T) {
	s := mustInit(t, nil)
	for i := range 5 {
		if err := putRaw(s, "c", fmt.Sprint("k", i), []byte("v1")); err != nil {
			t.Fatal(err)
		}
	}
	snap, _ := s.Replication().LastSeq()
	if err := putRaw(s, "c", "k0", []byte("v2")); err != nil { // replaces k0's envelope
		t.Fatal(err)
	}
	if err := putRaw(s, "c", "new", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	n := 0
	_, _, err := s.Replication().OrderedUpTo(merkle.ID{}, true, snap, 0, func(r *HeldRecord) error {
		for _, seq := range r.Seqs {
			if seq > snap {
				t.Errorf("envelope %d past the snapshot %d", seq, snap)
			}
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("%d records at the snapshot, want 4 (k0 replaced since, new written since)", n)
	}
}
