package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/resolve"
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
	if _, err := phone.SetScope(notes, store.ScopeOptions{}); err != nil {
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
	ch, err := phone.SetScope(wide, store.ScopeOptions{})
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

// TestNarrowingWaitsForAnotherDevice: a phone that wrote a photo while offline refuses to
// narrow its scope to notes (the photo would be lost: no other device has it yet), says
// so in the dry run, and keeps the photo; once the laptop has it, narrowing drops it here
// and the laptop keeps it. What the laptop holds survives the phone's restart.
func TestNarrowingWaitsForAnotherDevice(t *testing.T) {
	nodes := newMesh(t, 2)
	laptop, phone := nodes[0], nodes[1]
	if err := phone.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := phone.Put("photos", "offline", []byte(`{"v":"only on the phone"}`)); err != nil {
		t.Fatal(err)
	}
	notes, _ := store.NewScope("notes")
	ch, err := phone.SetScope(notes, store.ScopeOptions{DryRun: true})
	if err != nil || ch.Unsent != 1 {
		t.Fatalf("dry run while the photo is on the phone only: %+v %v", ch, err)
	}
	if _, err := phone.SetScope(notes, store.ScopeOptions{}); !errors.Is(err, store.ErrUnsent) {
		t.Fatalf("narrowing over the unsent photo: %v", err)
	}
	if err := hasValue(phone, "photos", "offline", `{"v":"only on the phone"}`); err != nil {
		t.Fatalf("after the refused narrowing: %v", err)
	}
	mustStart(t, phone)
	eventually(t, "the laptop has the photo", func() error { return hasValue(laptop, "photos", "offline", `{"v":"only on the phone"}`) })
	eventually(t, "the phone knows the laptop has it", func() error {
		ch, err := phone.SetScope(notes, store.ScopeOptions{DryRun: true})
		if err == nil && ch.Unsent != 0 {
			err = fmt.Errorf("%d unsent", ch.Unsent)
		}
		return err
	})
	if err := phone.Stop(); err != nil { // persists what the tracker learned
		t.Fatal(err)
	}
	holders, err := Holders(phone.Store())
	if err != nil || len(holders) != 1 || holders[0].Seq == 0 {
		t.Fatalf("persisted holders: %+v %v", holders, err)
	}
	if _, err := phone.SetScope(notes, store.ScopeOptions{}); err != nil {
		t.Fatalf("narrowing once the laptop holds the photo: %v", err)
	}
	if err := hasValue(laptop, "photos", "offline", `{"v":"only on the phone"}`); err != nil {
		t.Fatalf("the laptop after the phone narrowed: %v", err)
	}
}

// TestHostilePushOutsideScope: a member that ignores a phone's scope and pushes it photos,
// by push and on the sync fast path, gets them acknowledged and dropped: the phone's store
// never holds a record outside its scope.
func TestHostilePushOutsideScope(t *testing.T) {
	nodes := newMesh(t, 2)
	phone := nodes[0]
	notes, _ := store.NewScope("notes")
	if _, err := phone.SetScope(notes, store.ScopeOptions{}); err != nil {
		t.Fatal(err)
	}
	m := newHostile(t, phone, "m")
	mdev := m.self.ID
	if _, err := m.syncWith(ctxT(t, 30*time.Second), phone.id); err != nil {
		t.Fatal(err)
	}
	sess, err := m.openSync(ctxT(t, 10*time.Second), func(h *wire.Hello) { h.RootFP[0] ^= 1; h.LastSeq += 1 })
	if err != nil {
		t.Fatal(err)
	}
	from := sess.theirs.KnownSeq
	sess.batch(from, from+1, m.seal("photos", "synced", `{"canary":"out-of-scope"}`, version(mdev, resolve.VersionVector{mdev: 1}), 0))
	sess.end(1)
	sess.ended(2 * time.Second) // an honest end: the target waits for Done, and the test goes on
	sess.close()

	push, err := m.openPush(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	push.batch(from+1, from+3,
		m.seal("photos", "pushed", `{"canary":"out-of-scope"}`, version(mdev, resolve.VersionVector{mdev: 2}), 0),
		m.seal("notes", "pushed", `{"v":1}`, version(mdev, resolve.VersionVector{mdev: 3}), 0))
	if _, b, err := push.readFrame(); err != nil {
		t.Fatalf("push: %v", err)
	} else if _, err := wire.UnmarshalAck(b); err != nil {
		t.Fatalf("push ack: %v", err)
	}
	push.close()

	if err := hasValue(phone, "notes", "pushed", `{"v":1}`); err != nil {
		t.Errorf("the in-scope note pushed beside the photo: %v", err)
	}
	if recs, colls := appRecords(t, phone); colls != 1 {
		t.Errorf("the phone holds %d records in %d application collections, want notes only", recs, colls)
	}
}
