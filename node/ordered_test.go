package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/node/session"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// idsAfter counts the envelopes st holds up to sequence upto of records whose ids come
// after after.
func idsAfter(t *testing.T, st *store.Store, after merkle.ID, upto uint64) int {
	t.Helper()
	n := 0
	for first := false; ; {
		last, any, err := st.Replication().OrderedUpTo(after, first, upto, 1000, func(r *store.HeldRecord) error {
			n += len(r.Raw)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !any {
			return n
		}
		after = last
	}
}

// An initial sync in record-id order that ends part-way (here at a session byte cap)
// resumes after the last record applied, without sending any applied record again; what
// the sender wrote meanwhile below that record arrives by sequence in the next session;
// and the two stores end equal.
func TestOrderedSyncResumes(t *testing.T) {
	const records = 3000
	a, b := pairFresh(t, records, 200)
	b.sessionMaxBytes = 200 << 10 // about 600 records of 200 bytes a session
	snap, err := a.st.Replication().LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.syncWith(ctxT(t, 60*time.Second), a.id)
	if !errors.Is(err, session.ErrSessionCapped) {
		t.Fatalf("first session: %v, want the byte cap", err)
	}
	pr := b.progress.get(a.id)
	cursorSnap, cursor := pr.Cursor()
	if pr.Seq != 0 || cursorSnap != snap {
		t.Fatalf("progress after the capped session %+v: want a cursor at a's sequence %d", pr, snap)
	}
	held, _ := b.List("bulk", "")
	if len(held) == 0 || len(held) >= records {
		t.Fatalf("first session applied %d of %d records", len(held), records)
	}

	// a writes meanwhile: new records and new versions of old ones, on both sides of the
	// cursor.
	for i := range 100 {
		if err := a.Put("bulk", fmt.Sprintf("late%03d", i), []byte(`{"late":true}`)); err != nil {
			t.Fatal(err)
		}
		if err := a.Put("bulk", fmt.Sprintf("r%07d", i*29), []byte(`{"changed":true}`)); err != nil {
			t.Fatal(err)
		}
	}
	b.sessionMaxBytes = 0
	now, _ := a.st.Replication().LastSeq()
	want := idsAfter(t, a.st, cursor, now)
	res, err := b.syncWith(ctxT(t, 60*time.Second), a.id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != "ordered/none" && res.Mode != "ordered/ordered" {
		t.Fatalf("resumed session mode %s", res.Mode)
	}
	// Only records after the cursor travel (a leaves out b's own envelopes, echoes).
	if res.Received == 0 || res.Received > want {
		t.Fatalf("resumed session received %d envelopes, want at most the %d of records after the cursor", res.Received, want)
	}
	if pr := b.progress.get(a.id); pr.Seq != snap || pr.Snap != 0 {
		t.Fatalf("progress after the resumed session %+v, want a's first snapshot %d", pr, snap)
	}
	// a knows b holds its store up to the first snapshot only (not up to a's hello of the
	// resumed session: b lacks the writes below the cursor since).
	eventually(t, "a's mark of what b holds", func() error {
		hs := a.holders()
		if len(hs) != 1 || hs[0].Seq != snap {
			return fmt.Errorf("holders %+v, want b at the first snapshot %d", hs, snap)
		}
		return nil
	})
	// The next session goes by sequence from the first snapshot: the writes below the
	// cursor arrive, and the stores agree.
	res, err = b.syncWith(ctxT(t, 60*time.Second), a.id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != "fast/fast" && res.Mode != "fast/none" {
		t.Fatalf("third session mode %s", res.Mode)
	}
	ra, _ := a.st.Replication().Root()
	rb, _ := b.st.Replication().Root()
	if ra != rb {
		t.Fatalf("roots differ after the resume: a %d records, b %d", ra.Count, rb.Count)
	}
	all, _ := b.List("bulk", "")
	if len(all) != records+100 {
		t.Fatalf("b holds %d records, want %d", len(all), records+100)
	}
	verifyClean(t, b)
}

// pairFresh returns a device holding records records of about 200 bytes and a device
// that just joined it and applies applyBatch envelopes per transaction, both started
// without device loops and connected.
func pairFresh(t *testing.T, records, applyBatch int) (a, b *Node) {
	t.Helper()
	return pairFilled(t, applyBatch, func(st *store.Store) { fill(t, st, records, 200) })
}

// pairFilled is pairFresh with the source's records written by fill.
func pairFilled(t *testing.T, applyBatch int, fill func(*store.Store)) (a, b *Node) {
	t.Helper()
	a, err := Init(context.Background(), testConfig(t, "a"), "a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	a.manual = true
	mustStart(t, a)
	fill(a.st)
	code, _, err := a.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "b")
	cfg.ApplyBatch = applyBatch
	b, err = Join(ctxT(t, 30*time.Second), cfg, code, "b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	b.manual = true
	mustStart(t, b)
	if err := b.Host().Connect(ctxT(t, 10*time.Second), a.Host().Peerstore().PeerInfo(a.id)); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// A member that sends an initial sync in id order out of order, twice, or beyond the
// records its hello claims ends the session; the target applies nothing of it and counts
// the bound.
func TestHostileOrderedStream(t *testing.T) {
	nodes := newMesh(t, 1)
	a := nodes[0]
	m := newHostile(t, a, "m")
	if _, err := m.syncWith(ctxT(t, 30*time.Second), a.id); err != nil { // each knows the other's store
		t.Fatal(err)
	}
	mdev := m.self.ID
	env := func(i int) []byte {
		return m.seal("notes", fmt.Sprint("o", i), `{}`, version(mdev, resolve.VersionVector{mdev: uint64(100 + i)}), 0)
	}
	var envs [][]byte
	for i := range 6 {
		envs = append(envs, env(i))
	}
	idOf := func(raw []byte) merkle.ID {
		id, err := store.EnvelopeID(raw)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	slices.SortFunc(envs, func(x, y []byte) int { a, b := idOf(x), idOf(y); return bytes.Compare(a[:], b[:]) })
	cases := []struct {
		name    string
		batches [][][]byte
		claim   uint64
		counter func() uint64
	}{
		{"ids going down", [][][]byte{{envs[1], envs[0]}}, 6, a.bounded.unasked.Load},
		{"an envelope twice", [][][]byte{{envs[0], envs[1], envs[1]}}, 6, a.bounded.unasked.Load},
		{"a batch repeating the last record", [][][]byte{{envs[0], envs[1]}, {envs[1], envs[2]}}, 6, a.bounded.unasked.Load},
		{"more records than claimed", [][][]byte{{envs[0], envs[1], envs[2]}}, 2, a.bounded.claim.Load},
	}
	for _, c := range cases {
		// The target holds nothing of m's store yet (its epoch, sequence 0): an initial
		// sync, in id order between two version-5 devices.
		if err := a.progress.save(m.id, progress{Epoch: m.st.Replication().Epoch()}); err != nil {
			t.Fatal(err)
		}
		before := c.counter()
		sess, err := m.openSync(ctxT(t, 10*time.Second), func(h *wire.Hello) { h.RootFP[0] ^= 1; h.RootCount = c.claim; h.LastSeq = 1000 })
		if err != nil {
			t.Fatal(err)
		}
		sent := 0
		for _, b := range c.batches {
			sess.batch(0, 0, b...)
			sent += len(b)
		}
		sess.end(uint64(sent))
		if !sess.ended(10 * time.Second) {
			t.Errorf("%s: the session did not end", c.name)
		}
		sess.close()
		eventually(t, c.name+": counted", func() error {
			if got := c.counter(); got != before+1 {
				return fmt.Errorf("counted %d, want %d", got, before+1)
			}
			return nil
		})
		for i := range 6 {
			if _, err := a.Get("notes", fmt.Sprint("o", i)); !isNotFound(err) {
				t.Fatalf("%s: record o%d: %v, want not found", c.name, i, err)
			}
		}
	}
}
