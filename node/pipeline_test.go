package node

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/meshsync/meshsync/store"
)

// A bulk transfer reads its later frames into the bodies of frames whose group was
// committed, and what it stores is still every record as written: each value, the
// envelopes the Merkle tree hashed and the index agree. A body given back before its
// group committed would store another frame's bytes.
func TestRecycledFramesKeepEnvelopes(t *testing.T) {
	const records = 6000
	value := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, bytes.Repeat([]byte{'a' + byte(i%26)}, 900)))
	}
	// A group per frame of about 1 MiB: about six groups.
	a, b := pairFilled(t, 300, func(st *store.Store) {
		if err := st.Update(func(tx *store.Tx) error {
			for i := range records {
				if err := tx.Put("bulk", fmt.Sprintf("r%05d", i), value(i)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	res, err := b.syncWith(ctxT(t, 60*time.Second), a.id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Received < records || res.framesReused == 0 {
		t.Fatalf("received %d envelopes, %d frames into recycled bodies: want %d and some", res.Received, res.framesReused, records)
	}
	for i := range records {
		r, err := b.Get("bulk", fmt.Sprintf("r%05d", i))
		if err != nil {
			t.Fatalf("record %d on b: %v", i, err)
		}
		if !bytes.Equal(r.Value, value(i)) {
			t.Fatalf("record %d on b reads %.40q", i, r.Value)
		}
	}
	verifyClean(t, b) // the envelopes stored hash to what the tree holds
	// b wrote its own records since (its device record): a takes them, and the two agree.
	if _, err := a.syncWith(ctxT(t, 60*time.Second), b.id); err != nil {
		t.Fatal(err)
	}
	ra, _ := a.st.Replication().Root()
	rb, _ := b.st.Replication().Root()
	if ra != rb {
		t.Fatalf("roots differ: a %d records, b %d", ra.Count, rb.Count)
	}
}

// A device loop that comes to sync with a device while serving that device's own session
// waits for it to end, and needs no session of its own once it ended well, where it
// would otherwise stream the rest of the initial sync a second time beside the first.
func TestLoopWaitsForServedSession(t *testing.T) {
	const records = 20000
	a, b := pairFresh(t, records, 100) // small groups: a session of many commits
	served := make(chan *sessionResult, 1)
	go func() {
		res, err := b.syncWith(ctxT(t, 120*time.Second), a.id)
		if err != nil {
			t.Error(err)
		}
		served <- res
	}()
	eventually(t, "a serving b's session", func() error {
		a.serving.mu.Lock()
		defer a.serving.mu.Unlock()
		if a.serving.serving[b.id] == nil {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	_, res, err := a.attempt(ctxT(t, 120*time.Second), a.Host(), b.id, func(uint64) {})
	if err != nil {
		t.Fatal(err)
	}
	first := <-served
	if first == nil || first.Received < records {
		t.Fatalf("b's session received %+v, want all %d records", first, records)
	}
	// b's session synced both ways and ended well: a's loop needs no session of its own
	// (without the gate it ran one beside b's and sent the records again).
	if res != nil {
		t.Fatalf("a's loop ran its own session after b's (sent %d envelopes)", res.Sent)
	}
}
