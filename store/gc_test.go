package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshsync/meshsync/merkle"
)

const day = 24 * time.Hour

func mustVerify(t *testing.T, s *Store) {
	t.Helper()
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify: %v", rep.Problems)
	}
}

func mustCollect(t *testing.T, s *Store) int {
	t.Helper()
	n, err := s.Replication().CollectTombstones()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func rootCount(t *testing.T, s *Store) uint64 {
	t.Helper()
	r, err := s.Replication().Root()
	if err != nil {
		t.Fatal(err)
	}
	return r.Count
}

func TestCollectTombstones(t *testing.T) {
	clk := newFakeClock()
	dir := filepath.Join(t.TempDir(), "s")
	o := testOptsClock(clk)
	s, err := Init(dir, testPass, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"old-deleted-1", "old-deleted-2", "young-deleted", "old-live"} {
		if err := s.Put("notes", k, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	mustDelete := func(k string) {
		if err := s.Delete("notes", k); err != nil {
			t.Fatal(err)
		}
	}
	mustDelete("old-deleted-1")
	mustDelete("old-deleted-2")
	clk.Add(60 * day)
	mustDelete("young-deleted")
	clk.Add(31 * day) // day 91: the first two tombstones are past 90 days, the third is 31 days old

	if got := rootCount(t, s); got != 4 {
		t.Fatalf("before collection: %d records", got)
	}
	if n := mustCollect(t, s); n != 2 {
		t.Fatalf("collected %d, want 2", n)
	}
	mustVerify(t, s)
	if got := rootCount(t, s); got != 2 {
		t.Fatalf("after collection: %d records in the Merkle root, want 2", got)
	}
	want := clk.Now().Add(-DefaultTombstoneTTL).Truncate(time.Millisecond)
	if h := s.Replication().Horizon(); !h.Equal(want) {
		t.Fatalf("horizon %v, want %v", h, want)
	}
	if err := s.Put("notes", "old-deleted-1", []byte(`2`)); err != nil { // the name is free again
		t.Fatal(err)
	}
	if err := hasNotes(s, "old-deleted-1", "old-live"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("notes", "young-deleted"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("young tombstone: %v", err)
	}
	if n := mustCollect(t, s); n != 0 {
		t.Fatalf("second collection removed %d", n)
	}
	s.Close()

	s, err = Open(dir, testPass, o)
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, s)
	if h := s.Replication().Horizon(); !h.Equal(want) {
		t.Fatalf("horizon after reopen %v, want %v", h, want)
	}
	clk.Add(60 * day)
	if n := mustCollect(t, s); n != 1 {
		t.Fatalf("collected %d at day 151, want the young tombstone", n)
	}
}

// hasNotes checks that the live keys of "notes" are exactly keys.
func hasNotes(s *Store, keys ...string) error {
	recs, err := s.List("notes", "")
	if err != nil {
		return err
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Key)
	}
	if fmt.Sprint(got) != fmt.Sprint(keys) {
		return fmt.Errorf("live notes %v, want %v", got, keys)
	}
	return nil
}

// A device keeps the tombstones written after its last contact with the mesh: nobody may
// have seen them yet.
func TestCollectStopsAtLastContact(t *testing.T) {
	clk := newFakeClock()
	s := mustInit(t, testOptsClock(clk))
	for _, k := range []string{"before", "after"} {
		if err := s.Put("notes", k, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete("notes", "before"); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	contact := clk.Now()
	if err := s.Replication().NoteContact(contact); err != nil {
		t.Fatal(err)
	}
	if err := s.Replication().NoteContact(contact.Add(-day)); err != nil { // never moves back
		t.Fatal(err)
	}
	if got := s.Replication().LastContact(); !got.Equal(contact) {
		t.Fatalf("last contact %v, want %v", got, contact)
	}
	clk.Add(time.Hour)
	if err := s.Delete("notes", "after"); err != nil {
		t.Fatal(err)
	}
	clk.Add(200 * day)
	if n := mustCollect(t, s); n != 1 {
		t.Fatalf("collected %d, want only the tombstone from before the contact", n)
	}
	if h := s.Replication().Horizon(); !h.Equal(contact) {
		t.Fatalf("horizon %v, want the last contact %v", h, contact)
	}
	if got := rootCount(t, s); got != 1 {
		t.Fatalf("%d records left, want the tombstone written after the contact", got)
	}
}

// A peer that has not collected yet sends an old tombstone back: it stays out. An old live
// record still reaches a store that never held it.
func TestApplyAfterCollection(t *testing.T) {
	clk := newFakeClock()
	a := mustInit(t, testOptsClock(clk))
	b := peer(t, a, "b", testOptsClock(clk))
	if err := a.Put("notes", "gone", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Put("notes", "kept", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("notes", "gone"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, b, allEnvelopes(t, a))
	clk.Add(91 * day)
	if n := mustCollect(t, b); n != 1 {
		t.Fatalf("b collected %d", n)
	}
	root, _ := b.Replication().Root()
	res := mustApply(t, b, allEnvelopes(t, a)) // a has not collected
	if res.Added != 0 || res.Stale != 2 || res.RolledBack != 0 {
		t.Fatalf("re-sending an old tombstone: %+v", res)
	}
	if again, _ := b.Replication().Root(); again != root {
		t.Fatal("the Merkle root changed")
	}
	if _, err := b.Get("notes", "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("collected record: %v", err)
	}

	// a new device of the mesh, which collected once (nothing) and so has a horizon
	c := peer(t, a, "c", testOptsClock(clk))
	mustCollect(t, c)
	res = mustApply(t, c, allEnvelopes(t, a))
	if res.Added != 1 || res.Stale != 1 {
		t.Fatalf("new device: %+v, want the live record added and the tombstone stale", res)
	}
	if err := hasNotes(c, "kept"); err != nil {
		t.Fatal(err)
	}
	// A tombstone younger than the horizon for an unknown record is applied as ever.
	if err := a.Put("notes", "young", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("notes", "young"); err != nil {
		t.Fatal(err)
	}
	envs := allEnvelopes(t, a)
	if res := mustApply(t, c, envs[len(envs)-1:]); res.Added != 1 {
		t.Fatalf("young tombstone: %+v", res)
	}
}

func TestForgetBefore(t *testing.T) {
	clk := newFakeClock()
	s := mustInit(t, testOptsClock(clk))
	for _, k := range []string{"old", "old-deleted", "touched", "untouched"} {
		if err := s.Put("notes", k, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete("notes", "old-deleted"); err != nil {
		t.Fatal(err)
	}
	clk.Add(day)
	cut := clk.Now()
	clk.Add(day)
	if err := s.Put("notes", "touched", []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	ids := make([]merkle.ID, 0, 3)
	for _, k := range []string{"old", "old-deleted", "touched"} {
		ids = append(ids, s.keys.recordID("notes", k))
	}
	sub := s.Subscribe(16)
	defer sub.Close()
	n, err := s.Replication().ForgetBefore(ids, cut)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("forgot %d, want old and old-deleted", n)
	}
	mustVerify(t, s)
	if err := hasNotes(s, "touched", "untouched"); err != nil {
		t.Fatal(err)
	}
	c := <-sub.C
	if c.Key != "old" || !c.Deleted {
		t.Fatalf("change %+v, want old deleted", c)
	}
	select {
	case c := <-sub.C:
		t.Fatalf("unexpected change %+v (a forgotten tombstone is no news)", c)
	default:
	}
}

// A collection larger than one transaction's batch removes everything and leaves every
// index consistent.
func TestCollectInBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("writes several thousand records")
	}
	clk := newFakeClock()
	s := mustInit(t, testOptsClock(clk))
	const n = gcBatch + 300
	err := s.Update(func(tx *Tx) error {
		for i := range n {
			if err := tx.Put("bulk", fmt.Sprint(i), []byte(`1`)); err != nil {
				return err
			}
		}
		return tx.Put("notes", "live", []byte(`1`))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *Tx) error {
		tx.ConfirmMassDelete()
		for i := range n {
			if err := tx.Delete("bulk", fmt.Sprint(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(90*day + time.Second)
	if got := mustCollect(t, s); got != n {
		t.Fatalf("collected %d, want %d", got, n)
	}
	if got := rootCount(t, s); got != 1 {
		t.Fatalf("%d records left", got)
	}
	mustVerify(t, s)
}
