package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/store"
)

// RoleReplica is the role of a blind replica: a member that stores and forwards envelopes
// and takes part in reconciliation but holds no mesh key (see store.InitReplica).
const RoleReplica = "replica"

// MembersProtocol is the libp2p protocol id by which a device tells a blind replica the
// current device list (peer ids, roles, addresses, removals; no names): the replica cannot
// read the synced device list, and needs it to know whom to admit and dial.
//
//	D → R  Members{devices}      one frame; the replica closes the stream
const MembersProtocol = "/meshsync/members/1.0.0"

// localReplicaMembers is where a blind replica keeps the device list it was told.
const localReplicaMembers = "replica-members"

// maxMembersFrame bounds one members message.
const maxMembersFrame = 256 << 10

// membersMsg is the members message. Discovery carries the mesh's current discovery keys
// (store.DiscoveryKeys), newest first: a replica holds no epoch key to derive them from,
// and needs them to announce itself where the devices look (a replica of an older
// meshsync ignores the field and stays at epoch 0's key).
type membersMsg struct {
	Devices   []Device             `json:"devices"`
	Discovery []store.DiscoveryKey `json:"discovery,omitempty"`
}

// memberView strips what a replica need not know (names, times, keys) from a device
// record; a removal keeps its point, so that the replica refuses what the removed device
// writes after it.
func memberView(d Device) Device {
	return Device{ID: d.ID, PeerID: d.PeerID, Role: d.Role, Addrs: d.Addrs, Removed: d.Removed, RemovalPoint: d.RemovalPoint}
}

// decodeMembers parses a members message from a device, with every size checked.
func decodeMembers(b []byte) ([]Device, error) {
	if len(b) > maxMembersFrame {
		return nil, fmt.Errorf("%w: members message of %d bytes", ErrProtocol, len(b))
	}
	var m membersMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: members message: %v", ErrProtocol, err)
	}
	if len(m.Devices) > 1024 {
		return nil, fmt.Errorf("%w: members message lists %d devices", ErrProtocol, len(m.Devices))
	}
	out := make([]Device, 0, len(m.Devices))
	for _, d := range m.Devices {
		if !validDeviceID(d.ID) || d.PeerID == "" || d.PeerID.Validate() != nil {
			return nil, fmt.Errorf("%w: members message names a device without a valid id or peer id", ErrProtocol)
		}
		if d.Role != RoleDevice && d.Role != RoleReplica {
			return nil, fmt.Errorf("%w: members message gives device %s the unknown role %q", ErrProtocol, d.ID, d.Role)
		}
		if len(d.Addrs) > 16 {
			d.Addrs = d.Addrs[:16]
		}
		out = append(out, memberView(d))
	}
	return out, nil
}

// mergeMembers folds what a device said into the list a replica holds: new devices are
// added, addresses follow the newest word, and a removal is never undone.
func mergeMembers(held, told []Device) []Device {
	out := slices.Clone(held)
	for _, d := range told {
		i := slices.IndexFunc(out, func(h Device) bool { return h.ID == d.ID })
		if i < 0 {
			out = append(out, d)
			continue
		}
		removed := out[i].Removed || d.Removed
		if out[i].RemovalPoint != nil { // the first point heard stands (as in RevokeDevice)
			d.RemovalPoint = out[i].RemovalPoint
		}
		if len(d.Addrs) == 0 {
			d.Addrs = out[i].Addrs
		}
		if out[i].PeerID != d.PeerID { // a record cannot change hands
			d.PeerID = out[i].PeerID
		}
		out[i] = d
		out[i].Removed = removed
	}
	slices.SortFunc(out, func(a, b Device) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// proofKey is the key of the hello proofs exchanged with p: the replica key between a
// device and a blind replica (and on a replica), the pairing subkey between devices.
func (n *Node) proofKey(p peer.ID) []byte {
	if n.blind {
		return n.replicaKey
	}
	if d, ok := n.devices.Load().byPeer[p]; ok && d.Role == RoleReplica {
		return n.replicaKey
	}
	return n.pairKey
}

// Blind reports whether this node is a blind replica.
func (n *Node) Blind() bool { return n.blind }

// afterSession runs on a device after a good session with p: a replica hears the device
// list, and its record learns the addresses it was reached at.
func (n *Node) afterSession(ctx context.Context, p peer.ID) {
	if n.blind {
		return
	}
	d, ok := n.isMember(p)
	if !ok || d.Role != RoleReplica {
		return
	}
	n.recordReplicaAddrs(d)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.StepTimeout)
	defer cancel()
	if err := n.sendMembers(ctx, p); err != nil {
		n.log.Info("tell replica the device list", "replica", shortID(p), "err", err)
	}
}

// recordReplicaAddrs writes the addresses a replica listens on (as identify reported
// them) into its device record, so that every device can dial it.
func (n *Node) recordReplicaAddrs(d Device) {
	hst := n.Host()
	if hst == nil {
		return
	}
	var as []string
	for _, a := range listenAddrs(hst.Peerstore(), d.PeerID) {
		if s := a.String(); !isRelayed(a) && len(as) < 8 {
			as = append(as, s)
		}
	}
	slices.Sort(as)
	as = slices.Compact(as)
	if len(as) == 0 || slices.Equal(as, d.Addrs) {
		return
	}
	// Only the device that admitted a replica may write its record (store/authority.go).
	if d.Admission == nil || d.Admission.By != n.self.ID {
		return
	}
	d.Addrs = as
	if err := putDevice(n.st, d); err != nil {
		n.log.Warn("record replica addresses", "err", err)
		return
	}
	// The snapshot now, not when the change feed brings the write: the identify of the
	// replica's next connection (one per transport) would otherwise write it again.
	if err := n.reloadDevices(); err != nil && !errors.Is(err, store.ErrClosed) {
		n.log.Warn("reload device list", "err", err)
	}
}

// listenAddrs are the addresses p says it listens on: those of its signed peer record
// (identify), not every address the peerstore holds (which includes the old ones of its
// device record). Without a record yet, the peerstore's.
func listenAddrs(ps peerstore.Peerstore, p peer.ID) []ma.Multiaddr {
	if cab, ok := peerstore.GetCertifiedAddrBook(ps); ok {
		if env := cab.GetPeerRecord(p); env != nil {
			if rec, err := env.Record(); err == nil {
				if pr, ok := rec.(*peer.PeerRecord); ok && len(pr.Addrs) > 0 {
					return pr.Addrs
				}
			}
		}
	}
	return ps.Addrs(p)
}

// sendMembers tells replica p the current device list.
func (n *Node) sendMembers(ctx context.Context, p peer.ID) error {
	h := n.Host()
	if h == nil {
		return ErrNotStarted
	}
	var m membersMsg
	for _, d := range n.Devices() {
		m.Devices = append(m.Devices, memberView(d))
	}
	keys, err := n.st.Keys().DiscoveryKeys()
	if err != nil {
		return err
	}
	m.Discovery = keys
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	s, err := h.NewStream(n.dataCtx(ctx, p), p, MembersProtocol)
	if err != nil {
		return fmt.Errorf("open members stream: %w", err)
	}
	defer s.Reset()
	rw := &frameRW{s: s, step: n.cfg.StepTimeout, limit: 16}
	if err := rw.write(wire.TypeMembers, b); err != nil {
		return fmt.Errorf("send members: %w", err)
	}
	s.CloseWrite()
	// The replica closes the stream once the list is saved.
	s.SetReadDeadline(time.Now().Add(n.cfg.StepTimeout))
	var one [1]byte
	s.Read(one[:])
	return nil
}

// handleMembers serves a device telling this replica the device list.
func (n *Node) handleMembers(s network.Stream) {
	p, _, done, ok := n.admit(s, "members", MembersProtocol)
	if !ok {
		return
	}
	defer done()
	if d, _ := n.isMember(p); d.Role != RoleDevice {
		s.Reset() // only devices, which read the synced list, speak for the mesh
		return
	}
	rw := &frameRW{s: s, step: n.cfg.StepTimeout, limit: maxMembersFrame}
	b, err := rw.expect(wire.TypeMembers)
	if err == nil {
		err = n.applyMembers(b)
	}
	if err != nil {
		n.log.Info("members message refused", "from", shortID(p), "err", err)
		s.Reset()
		return
	}
	s.Close()
}

// applyMembers merges a members message into the replica's list and reloads the gate.
func (n *Node) applyMembers(b []byte) error {
	told, err := decodeMembers(b)
	if err != nil {
		return err
	}
	var held []Device
	if _, err := n.st.Local().Get(localReplicaMembers, &held); err != nil {
		return err
	}
	if err := n.adoptDiscoveryKeys(b); err != nil {
		return err
	}
	next := mergeMembers(held, told)
	if slices.EqualFunc(next, held, func(a, b Device) bool {
		return a.ID == b.ID && a.PeerID == b.PeerID && a.Role == b.Role && a.Removed == b.Removed && slices.Equal(a.Addrs, b.Addrs) &&
			(a.RemovalPoint == nil) == (b.RemovalPoint == nil)
	}) {
		return nil
	}
	if err := n.st.Local().Put(localReplicaMembers, next); err != nil {
		return err
	}
	return n.devicesChanged()
}

// adoptDiscoveryKeys keeps the discovery keys of a members message (a device that sends
// none is of an older meshsync).
func (n *Node) adoptDiscoveryKeys(b []byte) error {
	var m struct {
		Discovery []store.DiscoveryKey `json:"discovery"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%w: members message: %v", ErrProtocol, err)
	}
	if len(m.Discovery) == 0 {
		return nil
	}
	if _, err := n.st.Keys().AdoptDiscoveryKeys(m.Discovery); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		return err
	}
	return nil
}

// loadReplicaMembers is loadDevices on a blind replica.
func loadReplicaMembers(st *store.Store) ([]Device, error) {
	var out []Device
	if _, err := st.Local().Get(localReplicaMembers, &out); err != nil {
		return nil, fmt.Errorf("load the replica's device list: %w", err)
	}
	return out, nil
}
