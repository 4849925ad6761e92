package node

import (
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/store"
)

// Scope returns the collections this device holds (store.Scope).
func (n *Node) Scope() store.Scope { return n.st.Replication().Scope() }

// SetScope makes this device hold the collections of sc (and every reserved one). A wider
// scope makes every peer send the collections now held: the progress kept with each is
// forgotten, so the next session reconciles by summary, and a session starts with every
// connected peer now. A narrower one drops the records of the collections left out, on
// this device only (no delete is written or sent), and refuses (store.ErrUnsent) to drop
// a write made here that no other device holding that collection is known to have, unless
// opts.Force; with opts.DryRun nothing changes and the result says what would be dropped.
// The device record carries the new scope, so that the other devices show it.
func (n *Node) SetScope(sc store.Scope, opts store.ScopeOptions) (store.ScopeChange, error) {
	if n.blind {
		return store.ScopeChange{}, fmt.Errorf("set scope: %w", store.ErrBlind)
	}
	opts.Holders = n.holders()
	ch, err := n.st.Replication().SetScope(sc, opts)
	if err != nil || opts.DryRun {
		return ch, err
	}
	if ch.Widened {
		if err := n.progress.resetAll(n.devicePeers()); err != nil {
			return ch, fmt.Errorf("set scope: forget sync progress: %w", err)
		}
	}
	if err := n.recordScope(sc); err != nil && !errors.Is(err, store.ErrClosed) {
		return ch, fmt.Errorf("set scope: record it in this device's record: %w", err)
	}
	if ch.Widened {
		n.kickAll()
	}
	return ch, nil
}

// recordScope writes sc into this device's record when it differs.
func (n *Node) recordScope(sc store.Scope) error {
	for _, d := range n.devices.Load().list {
		if d.ID == string(n.self.ID) && !d.Removed {
			if slices.Equal(d.Scope, sc.Collections) {
				return nil
			}
			d.Scope = slices.Clone(sc.Collections)
			return putDevice(n.st, d)
		}
	}
	return nil
}

// devicePeers returns the peer ids of the other devices and replicas in the list.
func (n *Node) devicePeers() []peer.ID {
	var out []peer.ID
	for _, d := range n.devices.Load().list {
		if d.ID != string(n.self.ID) && d.PeerID != "" {
			out = append(out, d.PeerID)
		}
	}
	return out
}

// kickAll asks every device loop to sync soon.
func (n *Node) kickAll() {
	for _, p := range n.devicePeers() {
		n.kick(p)
	}
}
