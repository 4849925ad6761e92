package node

import (
	"sync"
	"time"

	"github.com/meshsync/meshsync/store"
)

// contactClock is this device's last contact: the start of its last completed session
// with another device (store.Replication.NoteContact), which its hello carries and which
// bounds how far back a tombstone collection may reach (store/gc.go).
//
// A session that moved no envelope either way (a reconnect with nothing to send) keeps its
// contact in memory only, unless the stored one is older than contactStep: writing it
// was a commit on each side of every such session. Close writes the exact value, and
// so does a node's tombstone collection before it reads it. What a crash loses is at most
// contactStep of a session that changed nothing, and an older last contact is always the
// safe side: the collection's cut-off can only move earlier (it keeps more tombstones),
// and a hello with an older contact can only make a device that was away for about the
// tombstone lifetime reconcile by Merkle summary or resync fully where it might have
// merged.
type contactClock struct {
	st    *store.Store
	step  time.Duration
	mu    sync.Mutex
	last  time.Time // the latest contact, in memory
	saved time.Time // the stored one
}

// contactStepMax caps contactStep; the step is otherwise a thousandth of the tombstone
// lifetime (2.2 hours at the default 90 days, so 1 hour).
const contactStepMax = time.Hour

func newContactClock(st *store.Store, ttl time.Duration) *contactClock {
	c := &contactClock{st: st, step: min(contactStepMax, ttl/1000)}
	c.saved = st.Replication().LastContact()
	c.last = c.saved
	return c
}

// get is the last contact, as the hello says it.
func (c *contactClock) get() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// note records a completed session that started at t; moved says it moved envelopes
// either way. It writes the store only when that is needed (see contactClock).
func (c *contactClock) note(t time.Time, moved bool) error {
	c.mu.Lock()
	if !t.After(c.last) {
		c.mu.Unlock()
		return nil
	}
	c.last = t
	write := moved || c.saved.IsZero() || t.Sub(c.saved) >= c.step
	c.mu.Unlock()
	if !write {
		return nil
	}
	return c.flush()
}

// flush writes the last contact when the store holds an older one.
func (c *contactClock) flush() error {
	c.mu.Lock()
	t, saved := c.last, c.saved
	c.mu.Unlock()
	if !t.After(saved) {
		return nil
	}
	if err := c.st.Replication().NoteContact(t); err != nil { // it never moves back
		return err
	}
	c.mu.Lock()
	if t.After(c.saved) {
		c.saved = t
	}
	c.mu.Unlock()
	return nil
}
