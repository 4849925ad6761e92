package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
)

// copyFile copies src to dst (the store must be closed).
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func reopen(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, testPass, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// syncBoth ships every envelope each way, like a full reconciliation.
func syncBoth(t testing.TB, a, b *Store) (toA, toB ApplyResult) {
	t.Helper()
	toB = mustApply(t, b, allEnvelopes(t, a))
	toA = mustApply(t, a, allEnvelopes(t, b))
	return toA, toB
}

// snapshot maps collection/key to the live record (value and version).
func snapshot(t testing.TB, s *Store) map[string]Record {
	t.Helper()
	recs, err := s.List("", "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Record{}
	for _, r := range recs {
		out[r.Collection+"/"+r.Key] = r
	}
	return out
}

// regressed counts records of before that after lost, or holds at a version that does not
// dominate (or equal) the one before.
func regressed(before, after map[string]Record) (n int, what []string) {
	for k, r := range before {
		a, ok := after[k]
		switch {
		case !ok:
			what = append(what, k+" lost")
		case a.Version.VV.Compare(r.Version.VV) == resolve.Before ||
			a.Version.VV.Compare(r.Version.VV) == resolve.Concurrent:
			what = append(what, k+" rolled back")
		case a.Version.VV.Compare(r.Version.VV) == resolve.Equal && string(a.Value) != string(r.Value):
			what = append(what, k+" changed under the same version")
		default:
			continue
		}
		n++
	}
	return n, what
}

// Row 9: a store put back from an old copy of its file rejoins; the peer regresses
// nothing, the old copy notices, starts a new epoch, and its new writes win over what it
// forgot instead of being dominated by it.
func TestRestoredOldCopyRollsBackNothing(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	for i := range 30 {
		a.Put("notes", fmt.Sprint("k", i), []byte(fmt.Sprintf(`{"v":"a%d"}`, i)))
		b.Put("todo", fmt.Sprint("t", i), []byte(fmt.Sprintf(`{"v":"b%d"}`, i)))
	}
	syncBoth(t, a, b)
	dir, file := a.Dir(), filepath.Join(a.Dir(), FileName)
	oldEpoch := a.Replication().Epoch()
	a.Close()
	copyFile(t, file, file+".old") // the "7-day-old" copy

	// Life goes on: a edits, deletes and creates, and b hears all of it.
	a = reopen(t, dir)
	err := a.Update(func(tx *Tx) error {
		for i := range 10 {
			if err := tx.Put("notes", fmt.Sprint("k", i), []byte(fmt.Sprintf(`{"v":"a%d new"}`, i))); err != nil {
				return err
			}
		}
		for i := 10; i < 13; i++ {
			if err := tx.Delete("notes", fmt.Sprint("k", i)); err != nil {
				return err
			}
		}
		for i := range 5 {
			if err := tx.Put("notes", fmt.Sprint("new", i), []byte(`{"v":"fresh"}`)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	syncBoth(t, a, b)
	want := snapshot(t, b)
	a.Close()

	// The old file is put back and the device rejoins.
	copyFile(t, file+".old", file)
	a = reopen(t, dir)
	t.Cleanup(func() { mustVerifyClose(t, a) })
	if _, ok := a.Replication().RolledBack(); ok {
		t.Fatal("a store cannot know it was restored before it hears from a peer")
	}
	// The first thing it hears is one record it had forgotten (a partial sync); then it
	// writes a record whose newer version it has not seen yet: that write must count above
	// the forgotten one, not reuse its (device, counter) pair and be dominated or replaced.
	k1, err := b.Get("notes", "k1")
	if err != nil {
		t.Fatal(err)
	}
	var partial [][]byte
	b.Replication().Envelopes([]merkle.ID{k1.ID}, func(raw []byte) error { partial = append(partial, raw); return nil })
	first := mustApply(t, a, partial)
	if err := a.Put("notes", "k2", []byte(`{"v":"written on the restored copy"}`)); err != nil {
		t.Fatal(err)
	}
	toA, toB := syncBoth(t, a, b)
	toA.RolledBack += first.RolledBack
	if rec, err := b.Get("notes", "k2"); err != nil || string(rec.Value) != `{"v":"written on the restored copy"}` {
		t.Errorf("a write made on the restored copy lost on the peer: %s %v", rec.Value, err)
	}
	delete(want, "notes/k2") // superseded by that newer write
	if n, what := regressed(want, snapshot(t, b)); n != 0 {
		t.Fatalf("%d records regressed on the peer: %v", n, what)
	}
	for _, k := range []string{"notes/k10", "notes/k11", "notes/k12"} {
		if _, ok := snapshot(t, b)[k]; ok {
			t.Errorf("%s deleted before the restore came back on the peer", k)
		}
	}
	if n, what := regressed(want, snapshot(t, a)); n != 0 {
		t.Fatalf("the restored device did not catch up: %d records behind: %v", n, what)
	}
	if toB.Added != 1 {
		t.Errorf("the old copy pushed %d envelopes the peer took, want 1 (its new write)", toB.Added)
	}
	rb, ok := a.Replication().RolledBack()
	if !ok || toA.RolledBack == 0 || rb.Records != toA.RolledBack {
		t.Fatalf("rollback not detected: %+v %v (apply saw %d)", rb, ok, toA.RolledBack)
	}
	if a.Replication().Epoch() == oldEpoch || a.Replication().Epoch() != rb.Epoch {
		t.Error("the restored store kept its epoch: peers would trust old sequence numbers")
	}
	t.Logf("rollback evidence: %d envelopes; records regressed on the peer: 0 of %d", rb.Records, len(want))

	// New writes count above everything the mesh showed, so the peer takes them.
	if err := a.Put("notes", "k0", []byte(`{"v":"after restore"}`)); err != nil {
		t.Fatal(err)
	}
	syncBoth(t, a, b)
	if rec, err := b.Get("notes", "k0"); err != nil || string(rec.Value) != `{"v":"after restore"}` {
		t.Fatalf("a write after the restore lost on the peer: %v %v", rec, err)
	}
	// The epoch changes once per session, and the evidence survives a restart.
	e := a.Replication().Epoch()
	syncBoth(t, a, b)
	if a.Replication().Epoch() != e {
		t.Error("epoch changed again in the same session")
	}
	a.Close()
	a = reopen(t, dir)
	if rb2, ok := a.Replication().RolledBack(); !ok || rb2.Epoch != e || a.Replication().Epoch() != e {
		t.Errorf("after reopen: %+v %v epoch %x", rb2, ok, a.Replication().Epoch())
	}
}

// NoteRollback is how the sync layer reports a stale incarnation it noticed itself (a
// peer remembers a sequence number this store never reached).
func TestNoteRollbackStartsNewEpoch(t *testing.T) {
	a := mustInit(t, nil)
	e := a.Replication().Epoch()
	if err := a.Replication().NoteRollback(); err != nil {
		t.Fatal(err)
	}
	rb, ok := a.Replication().RolledBack()
	if !ok || rb.Records != 1 || a.Replication().Epoch() == e || rb.Epoch != a.Replication().Epoch() {
		t.Fatalf("%+v %v", rb, ok)
	}
}

// Row 10: a device whose store went missing, or was emptied, never makes the others
// delete anything: Open refuses (the daemon needs recovery, not a silent new store), and a
// device re-initialised into the mesh emits no tombstone and loses nothing on the peer.
func TestMissingOrEmptyStoreDeletesNothing(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	for i := range 40 {
		a.Put("notes", fmt.Sprint("k", i), []byte(fmt.Sprintf(`{"i":%d}`, i)))
	}
	syncBoth(t, a, b)
	want := snapshot(t, b)
	meshKey := a.Keys().MeshKeyForPairing()
	dir := a.Dir()
	a.Close()

	// Missing: Open says so and creates nothing.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, testPass, nil); !errors.Is(err, ErrNoStore) {
		t.Fatalf("open a missing store: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Error("Open of a missing store created something")
	}
	// Empty (truncated to zero, or an unmounted path's placeholder): refused, not reset.
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, FileName), nil, 0o600)
	if s, err := Open(dir, testPass, nil); err == nil {
		s.Close()
		t.Fatal("an empty database file opened as a store")
	}
	if _, err := Init(dir, testPass, testOpts("a")); !errors.Is(err, ErrExists) {
		t.Fatalf("Init over an empty file: %v", err)
	}

	// Re-initialised into the mesh (a fresh join): it sends nothing that deletes.
	a2, err := Init(filepath.Join(t.TempDir(), "a2"), testPass, &Options{KDF: testKDF, DeviceName: "a", MeshKey: meshKey})
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, a2)
	toA, toB := syncBoth(t, a2, b)
	tombstones := 0
	for _, c := range toB.Changes {
		if c.Deleted {
			tombstones++
		}
	}
	if tombstones != 0 || toB.Added != 0 {
		t.Fatalf("an empty store sent %d envelopes, %d tombstones", toB.Added, tombstones)
	}
	if n, what := regressed(want, snapshot(t, b)); n != 0 {
		t.Fatalf("peer lost %d records: %v", n, what)
	}
	if n, _ := regressed(want, snapshot(t, a2)); n != 0 || toA.Added != len(want) {
		t.Fatalf("the new device did not get everything back: %d behind, %d added", n, toA.Added)
	}
}

// Row 10: deleting more than half of a collection in one transaction needs confirmation;
// tombstones applied from another device are never held back.
func TestMassDeleteNeedsConfirmation(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	for i := range 20 {
		a.Put("notes", fmt.Sprint("k", i), []byte(`{}`))
	}
	for i := range MassDeleteMin - 1 {
		a.Put("small", fmt.Sprint("k", i), []byte(`{}`))
	}
	mustApply(t, b, allEnvelopes(t, a))
	deleteN := func(coll string, from, to int, confirm bool) error {
		return a.Update(func(tx *Tx) error {
			if confirm {
				tx.ConfirmMassDelete()
			}
			for i := from; i < to; i++ {
				if err := tx.Delete(coll, fmt.Sprint("k", i)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	live := func(s *Store, coll string) int {
		recs, err := s.List(coll, "")
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	if err := deleteN("notes", 0, 11, false); !errors.Is(err, ErrMassDelete) {
		t.Fatalf("11 of 20 deleted without confirmation: %v", err)
	}
	if n := live(a, "notes"); n != 20 {
		t.Fatalf("a refused bulk delete left %d of 20 records", n)
	}
	// Exactly half is allowed; then half of the rest again is not.
	if err := deleteN("notes", 0, 10, false); err != nil {
		t.Fatalf("10 of 20: %v", err)
	}
	if err := deleteN("notes", 10, 16, false); !errors.Is(err, ErrMassDelete) {
		t.Fatalf("6 of 10 deleted without confirmation: %v", err)
	}
	// A delete then re-put in the same transaction is not a delete.
	err := a.Update(func(tx *Tx) error {
		for i := 10; i < 20; i++ {
			tx.Delete("notes", fmt.Sprint("k", i))
			tx.Put("notes", fmt.Sprint("k", i), []byte(`{"again":true}`))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("delete and re-put: %v", err)
	}
	if err := deleteN("notes", 10, 20, true); err != nil {
		t.Fatalf("confirmed bulk delete: %v", err)
	}
	// A collection below MassDeleteMin can be emptied.
	if err := deleteN("small", 0, MassDeleteMin-1, false); err != nil {
		t.Fatalf("small collection: %v", err)
	}
	// The peer applies the confirmed tombstones.
	res := mustApply(t, b, allEnvelopes(t, a))
	if live(b, "notes") != 0 || live(b, "small") != 0 || res.Added == 0 {
		t.Fatalf("peer kept %d notes, %d small after applying confirmed deletes", live(b, "notes"), live(b, "small"))
	}
}
