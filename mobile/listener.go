package mobile

import (
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/view"
	"github.com/meshsync/meshsync/store"
)

// Listener receives the node's events. The node calls it from one background goroutine,
// one call at a time, in order; a slow callback delays the next ones (and, past a buffer
// of 256 changes, changes are dropped and reported as OnChange("", "", false, false)).
// A callback may call the Node's data methods, but not Stop or Close.
type Listener interface {
	// OnChange reports that a record changed: written here (local) or received from
	// another device. deleted reports that it now reads as deleted. An empty collection
	// means changes were missed: read again what you show.
	OnChange(collection, key string, deleted, local bool)
	// OnState reports the node's new state, the JSON document States returns. It is
	// called once when the listener is set, on every sync state change and every change
	// of the network's state (started, paused and why).
	OnState(stateJSON string)
	// OnConflict reports a record with concurrent versions after a change, the JSON
	// document of one element of Conflicts. Its "open" field is true when the conflict
	// waits for a decision (ResolveConflict).
	OnConflict(conflictJSON string)
}

// SetListener sets the listener of the node's events, replacing the previous one; nil
// removes it. It survives Stop and Start.
func (m *Node) SetListener(l Listener) {
	m.mu.Lock()
	if m.closed || !m.made {
		m.mu.Unlock()
		return
	}
	old := m.fw
	m.listener = l
	m.fw = nil
	if m.inner != nil {
		m.fw = newForwarder(m, m.inner, l)
	}
	fw := m.fw
	m.mu.Unlock()
	old.halt()
	fw.start()
}

// forwarder delivers the events of one inner node to one listener on its own goroutine.
// A nil *forwarder does nothing.
type forwarder struct {
	m       *Node
	inner   *node.Node
	l       Listener
	changes *store.Subscription
	states  *node.StateSubscription
	kick    chan struct{} // the mobile state changed
	stop    chan struct{} // closed by halt
	done    chan struct{} // closed when run returns
	missed  uint64
}

// newForwarder subscribes to inner's events for l; nil when l is nil. Call start to
// begin delivery.
func newForwarder(m *Node, inner *node.Node, l Listener) *forwarder {
	if l == nil {
		return nil
	}
	return &forwarder{m: m, inner: inner, l: l,
		changes: inner.Subscribe(256), states: inner.SubscribeStates(64),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (f *forwarder) start() {
	if f != nil {
		go f.run()
	}
}

// wait returns when the forwarder has ended; it ends when its node closes.
func (f *forwarder) wait() {
	if f != nil {
		<-f.done
	}
}

// halt ends the forwarder even though its node stays open, and waits for it.
func (f *forwarder) halt() {
	if f != nil {
		close(f.stop)
		f.changes.Close()
		f.states.Close()
		f.wait()
	}
}

// kickState asks for an OnState call.
func (f *forwarder) kickState() {
	if f == nil {
		return
	}
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *forwarder) run() {
	defer close(f.done)
	f.l.OnState(f.m.statesJSON())
	changes, states := f.changes.C, f.states.C
	for changes != nil || states != nil {
		select {
		case <-f.stop:
			return
		case c, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			if n := f.changes.Missed(); n != f.missed {
				f.missed = n
				f.l.OnChange("", "", false, false)
			}
			f.l.OnChange(c.Collection, c.Key, c.Deleted, c.Local)
			if c.Conflict {
				if ci, err := f.inner.Store().Conflicts().Get(c.Collection + "/" + c.Key); err == nil {
					if js, err := marshal(view.FromConflict(ci)); err == nil {
						f.l.OnConflict(js)
					}
				}
			}
		case _, ok := <-states:
			if !ok {
				states = nil
				continue
			}
			f.drainStates()
			f.l.OnState(f.m.statesJSON())
		case <-f.kick:
			f.l.OnState(f.m.statesJSON())
		}
	}
}

// drainStates drops the state events already queued: one OnState shows them all.
func (f *forwarder) drainStates() {
	for {
		select {
		case _, ok := <-f.states.C:
			if !ok {
				return
			}
		default:
			return
		}
	}
}
