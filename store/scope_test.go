package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// collectionsHeld opens every envelope of s and returns the collections they belong to.
func collectionsHeld(t *testing.T, s *Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEnv).ForEach(func(_, v []byte) error {
			e, err := UnmarshalEnvelope(v)
			if err != nil {
				return err
			}
			p, err := s.keys.open(e)
			if err != nil {
				return err
			}
			out[p.Collection]++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestScopeHoldsOnlyItsCollections: a device scoped to notes takes only notes (and the
// reserved collections) from a device that holds everything, refuses reads and writes of
// other collections with an error that says how to widen, fetches photos once widened,
// and drops them again when narrowed, on this device only.
func TestScopeHoldsOnlyItsCollections(t *testing.T) {
	a := mustInit(t, testOpts("laptop"))
	b := mustInit(t, &Options{KDF: testKDF, DeviceName: "phone", MeshKey: a.keys.mesh})
	for i := range 10 {
		for _, c := range []string{"notes", "photos", "prefs"} {
			if err := a.Put(c, fmt.Sprint("k", i), []byte(fmt.Sprintf(`{"canary":"%s-%d"}`, c, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	sc, err := NewScope("notes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Replication().SetScope(sc, ScopeOptions{}); err != nil {
		t.Fatal(err)
	}
	copyAll(t, a, b)
	held := collectionsHeld(t, b)
	if held["notes"] != 10 || held["photos"] != 0 || held["prefs"] != 0 {
		t.Fatalf("phone scoped to notes holds %v", held)
	}
	_, err = b.Get("photos", "k1")
	if !errors.Is(err, ErrOutOfScope) || !strings.Contains(err.Error(), "meshsync scope set notes photos") {
		t.Errorf("get outside the scope: %v", err)
	}
	if err := b.Put("photos", "new", []byte(`1`)); !errors.Is(err, ErrOutOfScope) {
		t.Errorf("put outside the scope: %v", err)
	}
	if _, err := b.List("prefs", ""); !errors.Is(err, ErrOutOfScope) {
		t.Errorf("list outside the scope: %v", err)
	}
	if err := b.Put("notes", "from-phone", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}

	wide, _ := NewScope("notes", "photos")
	ch, err := b.Replication().SetScope(wide, ScopeOptions{})
	if err != nil || !ch.Widened || ch.Dropped != 0 {
		t.Fatalf("widen: %+v %v", ch, err)
	}
	copyAll(t, a, b)
	if held := collectionsHeld(t, b); held["photos"] != 10 || held["prefs"] != 0 {
		t.Fatalf("after widening to notes and photos the phone holds %v", held)
	}
	if r, err := b.Get("photos", "k3"); err != nil || !strings.Contains(string(r.Value), "photos-3") {
		t.Fatalf("photo after widening: %v %v", r, err)
	}

	ch, err = b.Replication().SetScope(sc, ScopeOptions{DryRun: true})
	if err != nil || ch.Dropped != 10 || ch.Widened {
		t.Fatalf("narrowing, dry run: %+v %v", ch, err)
	}
	if held := collectionsHeld(t, b); held["photos"] != 10 {
		t.Fatalf("a dry run dropped photos: %v", held)
	}
	if _, err := b.Replication().SetScope(sc, ScopeOptions{}); err != nil {
		t.Fatal(err)
	}
	if held := collectionsHeld(t, b); held["photos"] != 0 || held["notes"] != 11 {
		t.Fatalf("after narrowing back the phone holds %v", held)
	}
	mustVerifyClose(t, b)
	// Narrowing wrote no delete: the laptop keeps every photo.
	if recs, err := a.List("photos", ""); err != nil || len(recs) != 10 {
		t.Fatalf("laptop photos after the phone narrowed: %d %v", len(recs), err)
	}
}

// TestScopeSurvivesReopen: the scope is part of the store, sealed; a reopened store keeps
// refusing what it does not hold.
func TestScopeSurvivesReopen(t *testing.T) {
	a := mustInit(t, testOpts("phone"))
	sc, _ := NewScope("notes", "prefs")
	if _, err := a.Replication().SetScope(sc, ScopeOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := a.Dir()
	a.Close()
	s, err := Open(dir, testPass, testOpts("phone"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Replication().Scope().String(); got != "notes,prefs" {
		t.Errorf("scope after reopen %q", got)
	}
	if err := s.Put("photos", "k", []byte(`1`)); !errors.Is(err, ErrOutOfScope) {
		t.Errorf("put outside the scope after reopen: %v", err)
	}
	if _, err := NewScope("_devices"); err == nil {
		t.Error("a scope may not name a reserved collection")
	}
	// Names compare in their canonical (NFC) form, as records are named.
	decomposed, _ := NewScope("cafe\u0301")
	if _, err := s.Replication().SetScope(decomposed, ScopeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("caf\u00e9", "k", []byte(`1`)); err != nil {
		t.Errorf("a write to the scope's collection, named precomposed: %v", err)
	}
}

// TestNarrowingKeepsUnsentWrites: a phone that wrote photos nobody else has yet refuses
// to narrow them away (ErrUnsent, counted in the dry run too) and keeps them; once a
// holder of photos is known to hold them it narrows; Force drops them anyway; a holder
// of another epoch, or of other collections only, does not count.
func TestNarrowingKeepsUnsentWrites(t *testing.T) {
	a := mustInit(t, testOpts("laptop"))
	b := mustInit(t, &Options{KDF: testKDF, DeviceName: "phone", MeshKey: a.keys.mesh})
	for i := range 3 {
		if err := a.Put("photos", fmt.Sprint("a", i), []byte(`{"by":"laptop"}`)); err != nil {
			t.Fatal(err)
		}
	}
	copyAll(t, a, b)
	if err := b.Put("photos", "mine", []byte(`{"by":"phone"}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put("notes", "kept", []byte(`{"by":"phone"}`)); err != nil {
		t.Fatal(err)
	}
	last, err := b.Replication().LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	notes, _ := NewScope("notes")
	epoch := b.Replication().Epoch()
	for _, tc := range []struct {
		name    string
		holders []Holder
	}{
		{"no holder", nil},
		{"a holder of notes only", []Holder{{Scope: notes, Epoch: epoch, Seq: last}}},
		{"a holder of another epoch", []Holder{{Epoch: [16]byte{1}, Seq: last}}},
		{"a holder from before the write", []Holder{{Epoch: epoch, Seq: last - 2}}},
	} {
		ch, err := b.Replication().SetScope(notes, ScopeOptions{DryRun: true, Holders: tc.holders})
		if err != nil || ch.Dropped != 4 || ch.Unsent != 1 {
			t.Errorf("%s: dry run %+v %v, want 4 dropped, 1 unsent", tc.name, ch, err)
		}
		_, err = b.Replication().SetScope(notes, ScopeOptions{Holders: tc.holders})
		if !errors.Is(err, ErrUnsent) || !strings.Contains(err.Error(), "--force") {
			t.Errorf("%s: narrowing over an unsent write: %v", tc.name, err)
		}
		if r, err := b.Get("photos", "mine"); err != nil || !strings.Contains(string(r.Value), "phone") {
			t.Fatalf("%s: the unsent photo after a refused narrowing: %v %v", tc.name, r, err)
		}
	}
	ch, err := b.Replication().SetScope(notes, ScopeOptions{Holders: []Holder{{Epoch: epoch, Seq: last}}})
	if err != nil || ch.Dropped != 4 || ch.Unsent != 0 {
		t.Fatalf("narrowing once a device holds everything: %+v %v", ch, err)
	}
	if _, err := b.Get("photos", "mine"); !errors.Is(err, ErrOutOfScope) {
		t.Fatalf("photo after narrowing: %v", err)
	}

	// Force drops an unsent write.
	if _, err := b.Replication().SetScope(Scope{}, ScopeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Put("photos", "second", []byte(`{"by":"phone"}`)); err != nil {
		t.Fatal(err)
	}
	ch, err = b.Replication().SetScope(notes, ScopeOptions{Force: true})
	if err != nil || ch.Unsent != 1 {
		t.Fatalf("forced narrowing: %+v %v", ch, err)
	}
	mustVerifyClose(t, b)
}
