package node

import (
	"fmt"
	"maps"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/store"
)

// What the other devices are known to hold of this store, so that narrowing the scope
// never drops a write made here that no other device has (store.ErrUnsent). A finished
// session proves the peer holds everything up to the number this side's hello carried
// (session.Result.MyLastSeq); an acknowledged push proves as much up to the pushed number.
// The tracker keeps the marks, and persists a device's with its state.

// heldName is the local value holding the marks: device id → mark.
const heldName = "held"

// heldMark says a device holds this store's envelopes up to Seq of store epoch Epoch (in
// the collections of its scope).
type heldMark struct {
	Epoch [16]byte `json:"epoch"`
	Seq   uint64   `json:"seq"`
}

// loadHeld reads the persisted marks (none when there are none yet).
func loadHeld(st *store.Store) (map[string]heldMark, error) {
	m := map[string]heldMark{}
	if _, err := st.Local().Get(heldName, &m); err != nil {
		return nil, fmt.Errorf("read what other devices hold: %w", err)
	}
	return m, nil
}

// holdersOf turns marks into the store's holders, each with its device's scope; devices
// removed or unknown do not count.
func holdersOf(devs []Device, marks map[string]heldMark) []store.Holder {
	var out []store.Holder
	for _, d := range devs {
		m, ok := marks[d.ID]
		if !ok || d.Removed {
			continue
		}
		sc := store.Scope{}
		if d.Role != RoleReplica {
			sc.Collections = d.Scope
		}
		out = append(out, store.Holder{Scope: sc, Epoch: m.Epoch, Seq: m.Seq})
	}
	return out
}

// Holders returns what the other devices of the mesh of st are known to hold of it, as
// persisted by the node that last ran on it: for a store served without a node.
func Holders(st *store.Store) ([]store.Holder, error) {
	devs, err := loadDevices(st)
	if err != nil {
		return nil, fmt.Errorf("holders: %w", err)
	}
	marks, err := loadHeld(st)
	if err != nil {
		return nil, err
	}
	return holdersOf(devs, marks), nil
}

// holders is Holders with what the tracker learned since it last persisted.
func (n *Node) holders() []store.Holder {
	var marks map[string]heldMark
	if !n.track.call(func() { marks = maps.Clone(n.track.heldMarks()) }) {
		var err error
		if marks, err = loadHeld(n.st); err != nil {
			return nil
		}
	}
	return holdersOf(n.devices.Load().list, marks)
}

// noteHeld raises p's mark to seq of the store's current epoch (on the tracker goroutine).
func (t *tracker) noteHeld(p peer.ID, seq uint64) {
	d, ok := t.n.devices.Load().byPeer[p]
	if !ok || seq == 0 {
		return
	}
	marks := t.heldMarks()
	epoch := t.n.st.Replication().Epoch()
	if m, ok := marks[d.ID]; ok && m.Epoch == epoch && m.Seq >= seq {
		return
	}
	marks[d.ID] = heldMark{Epoch: epoch, Seq: seq}
	t.heldDirty = true
}

// heldMarks returns the marks, loading them the first time (on the tracker goroutine).
func (t *tracker) heldMarks() map[string]heldMark {
	if t.held == nil {
		m, err := loadHeld(t.n.st)
		if err != nil {
			m = map[string]heldMark{}
		}
		t.held = m
	}
	return t.held
}
