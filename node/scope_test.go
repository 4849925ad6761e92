package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshsync/meshsync/store"
)

// appRecords counts the records a node's store holds in application collections (by its
// collection trees: reserved ones have the tag's top bit set).
func appRecords(t *testing.T, n *Node) (records, collections int) {
	t.Helper()
	roots, err := n.Store().Replication().Roots()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roots {
		if !r.Tag.Reserved() {
			records += int(r.Root.Count)
			collections++
		}
	}
	return records, collections
}

// TestScopedPhone: a laptop holds notes, photos and prefs; a phone joins scoped to notes
// and a blind replica carries everything. The phone's store holds the notes and nothing
// else, a later note reaches it and a later photo does not, the replica carries every
// record, the laptop sees the phone's scope, and widening the scope brings the photos.
func TestScopedPhone(t *testing.T) {
	laptop := mustStart(t, func() *Node {
		n, err := Init(context.Background(), testConfig(t, "laptop"), "laptop")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}())
	for i := range 5 {
		for _, c := range []string{"notes", "photos", "prefs"} {
			if err := laptop.Put(c, fmt.Sprint("k", i), []byte(fmt.Sprintf(`{"v":"%s-%d"}`, c, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	code, _, err := laptop.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	phone, err := Join(ctxT(t, 30*time.Second), testConfig(t, "phone"), code, "phone")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.Close() })
	notes, _ := store.NewScope("notes")
	if _, err := phone.SetScope(notes, false); err != nil {
		t.Fatal(err)
	}
	mustStart(t, phone)
	rcode, _, err := laptop.InviteReplica(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rcfg := testConfig(t, "box")
	rcfg.Passphrase = []byte("the replica's own passphrase")
	box, err := Join(ctxT(t, 30*time.Second), rcfg, rcode, "box")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { box.Close() })
	mustStart(t, box)

	eventually(t, "the phone has the notes", func() error { return hasValue(phone, "notes", "k4", `{"v":"notes-4"}`) })
	if err := laptop.Put("photos", "later", []byte(`{"v":"photo"}`)); err != nil {
		t.Fatal(err)
	}
	if err := laptop.Put("notes", "later", []byte(`{"v":"note"}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a later note reaches the phone", func() error { return hasValue(phone, "notes", "later", `{"v":"note"}`) })
	eventually(t, "the replica carries everything", func() error {
		lr, _ := laptop.Store().Replication().Root()
		rr, _ := box.Store().Replication().Root()
		if rr.Count < lr.Count {
			return fmt.Errorf("replica holds %d records, laptop %d", rr.Count, lr.Count)
		}
		return nil
	})
	waitSynced(t, phone)
	if recs, colls := appRecords(t, phone); recs != 6 || colls != 1 {
		t.Fatalf("the phone scoped to notes holds %d application records in %d collections, want the 6 notes", recs, colls)
	}
	if _, err := phone.Get("photos", "k1"); err == nil {
		t.Fatal("the phone reads a photo outside its scope")
	}
	eventually(t, "the laptop sees the phone's scope", func() error {
		for _, d := range laptop.Devices() {
			if d.Name == "phone" && slices.Equal(d.Scope, []string{"notes"}) {
				return nil
			}
		}
		return fmt.Errorf("devices %+v", laptop.Devices())
	})

	wide, _ := store.NewScope("notes", "photos")
	ch, err := phone.SetScope(wide, false)
	if err != nil || !ch.Widened {
		t.Fatalf("widen: %+v %v", ch, err)
	}
	eventually(t, "widening brings the photos", func() error {
		if err := hasValue(phone, "photos", "later", `{"v":"photo"}`); err != nil {
			return err
		}
		return hasValue(phone, "photos", "k0", `{"v":"photos-0"}`)
	})
	if recs, colls := appRecords(t, phone); recs != 12 || colls != 2 {
		t.Errorf("after widening the phone holds %d records in %d collections, want 12 in 2", recs, colls)
	}
}
