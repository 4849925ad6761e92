package node

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// DevicesCollection is the reserved collection holding the device list: one record per
// device id. It syncs like any other record, so every device learns of a new or removed one.
const DevicesCollection = store.DevicesCollection

// RoleDevice is the role of an ordinary device holding the mesh key.
const RoleDevice = "device"

// Device is one member of the mesh, as recorded in DevicesCollection.
type Device struct {
	ID        string    `json:"id"`
	PeerID    peer.ID   `json:"peer"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Addrs     []string  `json:"addrs,omitempty"` // last known listen addresses
	Added     time.Time `json:"added"`
	Removed   bool      `json:"removed,omitempty"`
	RemovedAt time.Time `json:"removed_at,omitzero"`
	// RemovalPoint is where the removed device's accepted writes end (set by the device
	// that removed it; see store.RevokeDevice).
	RemovalPoint *store.RemovalPoint `json:"removal_point,omitempty"`
	// KeyAgreement is the device's public key-agreement key (age X25519), to which new key
	// epochs are granted (rotation.go).
	KeyAgreement string `json:"kx,omitempty"`
	// Key is the device's Ed25519 signing key, the public key of PeerID; Admission is the
	// signature of the member that admitted it (store/authority.go). Both are in every
	// version of the record.
	Key       []byte           `json:"key,omitempty"`
	Admission *store.Admission `json:"admission,omitempty"`
	// Scope lists the collections the device holds (empty: all; see store.Scope).
	Scope []string `json:"scope,omitempty"`
}

// Removed, RemovedAt and RemovalPoint are what the store's signed removal records say
// (store.Member), filled in when the list is loaded; a record's own fields of those names
// were written by releases before signatures and are read only to upgrade such a store.

// localBootstrap holds the device list a joiner received at pairing, used until the first
// sync brings the real one.
const localBootstrap = "bootstrap-devices"

// localRemoved lists every peer id this device has seen removed.
const localRemoved = "removed-peers"

func putDevice(st *store.Store, d Device) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return st.Update(func(tx *store.Tx) error { return tx.PutReserved(DevicesCollection, d.ID, b) })
}

// deviceSet is an immutable snapshot of the device list.
type deviceSet struct {
	byPeer map[peer.ID]Device
	list   []Device // every record, removed ones too, sorted by name then id
}

func (s *deviceSet) member(p peer.ID) (Device, bool) {
	d, ok := s.byPeer[p]
	return d, ok && !d.Removed
}

// loadDevices reads the device list: the records of the devices the signed records admit
// (store.Members), with their removal as those records say, and the peer id of each taken
// from its signing key, never from the record's own word. Until its first sync, a device
// that just joined lists the members its inviter named (localBootstrap).
func loadDevices(st *store.Store) ([]Device, error) {
	if st.Blind() {
		return loadReplicaMembers(st)
	}
	members, err := st.Authority().Members()
	if err != nil {
		return nil, err
	}
	recs, err := st.List(DevicesCollection, "")
	if err != nil {
		return nil, err
	}
	byID := map[string]Device{}
	for _, r := range recs {
		var d Device
		if err := json.Unmarshal(r.Value, &d); err != nil || d.ID != r.Key {
			continue // a record this version cannot read is ignored, not fatal
		}
		byID[d.ID] = d
	}
	var boot []Device
	if ok, err := st.Local().Get(localBootstrap, &boot); err == nil && ok {
		for _, b := range boot {
			if _, ok := byID[b.ID]; !ok {
				byID[b.ID] = b
			}
		}
	}
	var out []Device
	for _, m := range members {
		d, ok := byID[string(m.ID)]
		if !ok {
			continue // admitted, but its record has not arrived: nothing to show or dial
		}
		pid, err := peerIDOf(m.Key)
		if err != nil {
			continue
		}
		d.PeerID, d.Key = pid, m.Key
		d.Removed, d.RemovedAt, d.RemovalPoint = m.Removed, time.Time{}, nil
		if m.Removed {
			cut := m.Cut
			d.RemovedAt, d.RemovalPoint = m.RemovedAt.Time(), &cut
		}
		out = append(out, d)
	}
	return out, nil
}

// peerIDOf is the libp2p peer id of an Ed25519 signing key.
func peerIDOf(key []byte) (peer.ID, error) {
	pk, err := crypto.UnmarshalEd25519PublicKey(key)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pk)
}

// signingKeyOf is the Ed25519 key of a peer id (every device's identity is Ed25519).
func signingKeyOf(p peer.ID) (ed25519.PublicKey, error) {
	pk, err := p.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("peer id %s: %w", p, err)
	}
	raw, err := pk.Raw()
	if err != nil || pk.Type() != crypto.Ed25519 || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("peer id %s: not an Ed25519 identity", p)
	}
	return raw, nil
}

// membership names who is in the mesh (device, peer id, removed), leaving out what a
// device may change about itself (name, addresses): two sets with the same membership
// attribute every conflict alike.
func (s *deviceSet) membership() string {
	var b strings.Builder
	for _, d := range s.list {
		fmt.Fprintf(&b, "%s %s %t\n", d.ID, d.PeerID, d.Removed || s.byPeer[d.PeerID].Removed)
	}
	return b.String()
}

// reloadDevices rebuilds the snapshot from the store. A peer id this device has seen
// removed stays refused, whatever comes later.
func (n *Node) reloadDevices() error {
	n.devMu.Lock()
	defer n.devMu.Unlock()
	devs, err := loadDevices(n.st)
	if err != nil {
		return fmt.Errorf("load device list: %w", err)
	}
	var removed []peer.ID
	if _, err := n.st.Local().Get(localRemoved, &removed); err != nil {
		return fmt.Errorf("load removed peers: %w", err)
	}
	grew := false
	for _, d := range devs {
		if d.Removed && !slices.Contains(removed, d.PeerID) {
			removed = append(removed, d.PeerID)
			grew = true
		}
	}
	if grew {
		if err := n.st.Local().Put(localRemoved, removed); err != nil {
			return fmt.Errorf("save removed peers: %w", err)
		}
	}
	s := &deviceSet{byPeer: map[peer.ID]Device{}, list: devs}
	for _, d := range devs {
		if slices.Contains(removed, d.PeerID) {
			d.Removed = true
		}
		if old, ok := s.byPeer[d.PeerID]; ok && old.Removed {
			continue
		}
		s.byPeer[d.PeerID] = d
	}
	slices.SortFunc(s.list, func(a, b Device) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	n.devices.Store(s)
	return nil
}

// Devices lists the devices of the mesh, this one included; removed devices are listed
// with Removed set.
func (n *Node) Devices() []Device { return slices.Clone(n.devices.Load().list) }

// isMember reports whether p is a current (not removed) device other than this one.
func (n *Node) isMember(p peer.ID) (Device, bool) {
	if p == n.id {
		return Device{}, false
	}
	return n.devices.Load().member(p)
}

// RemoveDevice marks a device removed. Every device refuses it from the moment it learns
// of the removal (this one at once); its connections are closed.
func (n *Node) RemoveDevice(id string) error {
	if n.blind {
		return fmt.Errorf("remove device %s: %w", id, store.ErrBlind)
	}
	var dev Device
	found := false
	for _, d := range n.devices.Load().list {
		if d.ID == id {
			dev, found = d, true
		}
	}
	if !found {
		return fmt.Errorf("remove device %s: %w", id, ErrUnknownDevice)
	}
	if id == string(n.self.ID) || dev.PeerID == n.id {
		return fmt.Errorf("remove device %s: %w", id, ErrSelf)
	}
	if dev.Removed {
		return nil
	}
	// A signed removal record: every device that learns of it refuses the device's
	// later writes, and no later write of it can undo it (store/authority.go).
	if err := n.st.Authority().Remove(resolve.DeviceID(id)); err != nil {
		return fmt.Errorf("remove device %s: %w", id, err)
	}
	if err := n.reloadDevices(); err != nil {
		return fmt.Errorf("remove device %s: %w", id, err)
	}
	// Revoke it and start a new key epoch before anything else is written.
	if err := n.keysChanged(); err != nil {
		return fmt.Errorf("remove device %s: rotate the key: %w", id, err)
	}
	return n.devicesChanged()
}

// devicesChanged reloads the snapshot, closes connections of peers no longer members and
// starts or stops device loops.
func (n *Node) devicesChanged() error {
	if err := n.reloadDevices(); err != nil {
		return err
	}
	if err := n.keysChanged(); err != nil && !errors.Is(err, store.ErrClosed) {
		n.log.Warn("key rotation", "err", err) // retried at the next change of the list
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.net.Load(); r != nil && !n.closed {
		h := r.host
		n.reconcilePeersLocked(r)
		n.seedPeerstore(h)
		n.updateOwnAddrs(h.Addrs())
		// Close removed devices' connections. Strangers stay when the node reaches beyond
		// the LAN: the relay (its reservation carries every relayed connection to a
		// sibling behind a NAT) and DHT peers; the gate already keeps them from the data
		// protocols. On a LAN-only node no stranger has a reason to stay.
		set := n.devices.Load()
		for _, p := range h.Network().Peers() {
			d, known := set.byPeer[p]
			if (known && d.Removed) || (n.cfg.LANOnly && !known && !n.invites.open(n.cfg.Now())) {
				h.Network().ClosePeer(p)
			}
		}
	}
	return nil
}

// updateOwnAddrs records this device's current listen addresses and its scope in its
// device record when they changed, so that other devices can dial it and show its scope.
func (n *Node) updateOwnAddrs(addrs []ma.Multiaddr) {
	var self Device
	ok := false
	for _, d := range n.devices.Load().list {
		if d.ID == string(n.self.ID) {
			self, ok = d, true
		}
	}
	if !ok || self.Removed || n.blind {
		return
	}
	var as []string
	for _, a := range addrs {
		as = append(as, a.String())
	}
	slices.Sort(as)
	scope := n.Scope().Collections
	if slices.Equal(as, self.Addrs) && slices.Equal(scope, self.Scope) {
		return
	}
	self.Addrs, self.Scope = as, slices.Clone(scope)
	if err := putDevice(n.st, self); err != nil {
		if !errors.Is(err, store.ErrClosed) {
			n.log.Warn("record own addresses", "err", err)
		}
		return
	}
	// The snapshot now, not when the change feed brings the write: at Start this runs
	// before the feed is read, the snapshot kept the old addresses, and every later
	// Start wrote the same record again (a commit on each device per reconnect).
	if err := n.reloadDevices(); err != nil && !errors.Is(err, store.ErrClosed) {
		n.log.Warn("reload device list", "err", err)
	}
}

// membershipChange reports whether a change to a record of collection can change the
// device list or the keys: a device record, a removal or a key grant.
func membershipChange(collection string) bool {
	return collection == DevicesCollection || collection == store.RemovalsCollection || collection == store.KeysCollection
}
