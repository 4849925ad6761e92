package node

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// PairProtocol is the libp2p protocol id of pairing. It is the only protocol a peer that
// is not a device of the mesh may open, and only while an invite is open.
//
//	J → I  {proof, name}          proof = HMAC-SHA256(secret, label ‖ inviter id ‖ joiner id)
//	I → J  {mesh_key, devices}    or {replica_token, devices} for a replica invite, or {error}
//	J → I  {device_id}            after the joiner created its store
//	I → J  {ok}                   the joiner's device record is written
//
// The joiner dials the inviter's peer id from the code, so the secure channel
// authenticates the inviter; the proof binds the secret to both peer ids.
const PairProtocol = "/meshsync/pair/1.0.0"

// MaxInviteFailures is how many wrong secrets kill an invite.
const MaxInviteFailures = 3

// DefaultInviteExpiry is the lifetime of an invite when Invite is given 0.
const DefaultInviteExpiry = 10 * time.Minute

// MaxInviteExpiry is the longest lifetime an invite may have: a code is a key to the mesh
// for as long as it lives, and may sit in a chat log or a screenshot.
const MaxInviteExpiry = 24 * time.Hour

// pairMsg is every pairing message; each step uses some of the fields. It travels as
// JSON in one TypePair frame of at most wire.MaxPairFrame bytes.
type pairMsg struct {
	Proof   []byte `json:"proof,omitempty"`
	Name    string `json:"name,omitempty"`
	MeshKey []byte `json:"mesh_key,omitempty"`
	// Token replaces MeshKey when the invite makes a blind replica.
	Token    *store.ReplicaToken `json:"replica_token,omitempty"`
	Devices  []Device            `json:"devices,omitempty"`
	DeviceID string              `json:"device_id,omitempty"`
	OK       bool                `json:"ok,omitempty"`
	Error    string              `json:"error,omitempty"`
}

func decodePairMsg(b []byte) (*pairMsg, error) {
	var m pairMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: pairing message: %v", ErrProtocol, err)
	}
	if m.Token != nil && m.Token.Valid() != nil {
		return nil, fmt.Errorf("%w: pairing message carries a malformed replica token", ErrProtocol)
	}
	if len(m.Proof) > 64 || len(m.Name) > 256 || len(m.MeshKey) > 64 || len(m.DeviceID) > store.MaxDeviceIDSize || len(m.Devices) > 1024 || len(m.Error) > 512 {
		return nil, fmt.Errorf("%w: pairing message field too large", ErrProtocol)
	}
	for _, d := range m.Devices {
		if d.ID == "" || d.PeerID == "" || len(d.ID) > store.MaxDeviceIDSize {
			return nil, fmt.Errorf("%w: pairing message names a device without id or peer id", ErrProtocol)
		}
	}
	return &m, nil
}

func writePair(rw *frameRW, m *pairMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return rw.write(wire.TypePair, b)
}

func readPair(rw *frameRW) (*pairMsg, error) {
	b, err := rw.expect(wire.TypePair)
	if err != nil {
		return nil, err
	}
	return decodePairMsg(b)
}

func pairProof(secret [wire.SecretSize]byte, inviter, joiner peer.ID) []byte {
	m := hmac.New(sha256.New, secret[:])
	m.Write([]byte("meshsync/v1/pair"))
	m.Write([]byte(inviter))
	m.Write([]byte{0})
	m.Write([]byte(joiner))
	return m.Sum(nil)
}

// inviteBox holds the one open invite of a node.
type inviteBox struct {
	mu  sync.Mutex
	cur *openInvite
}

type openInvite struct {
	secret   [wire.SecretSize]byte
	expires  time.Time
	failures int
	used     bool
	busy     bool // a joiner is being served
	replica  bool // the joiner becomes a blind replica
}

func (b *inviteBox) open(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cur
	return c != nil && !c.used && c.failures < MaxInviteFailures && now.Before(c.expires)
}

// claim reserves the open invite for one joiner.
func (b *inviteBox) claim(now time.Time) (*openInvite, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cur
	switch {
	case c == nil || c.used || c.failures >= MaxInviteFailures:
		return nil, ErrInviteRefused
	case !now.Before(c.expires):
		return nil, ErrInviteExpired
	case c.busy:
		return nil, fmt.Errorf("%w: another device is joining", ErrInviteRefused)
	}
	c.busy = true
	return c, nil
}

// release ends a claim: ok consumes the invite, !ok counts a failure.
func (b *inviteBox) release(c *openInvite, ok, wrongSecret bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c.busy = false
	if ok {
		c.used = true
	}
	if wrongSecret {
		c.failures++
	}
}

// Invite opens an invite valid for expires (DefaultInviteExpiry when 0, at most
// MaxInviteExpiry: longer is store.ErrInvalid) and returns its code. A node has one open
// invite at a time: a new one replaces the previous. The code works once and dies after
// MaxInviteFailures wrong secrets.
func (n *Node) Invite(expires time.Duration) (code string, until time.Time, err error) {
	return n.invite(expires, false)
}

// InviteReplica is Invite for a blind replica: the machine that joins with the code
// receives a replica token and the device list (peer ids, roles, addresses), never the
// mesh key, and is recorded with RoleReplica.
func (n *Node) InviteReplica(expires time.Duration) (code string, until time.Time, err error) {
	return n.invite(expires, true)
}

func (n *Node) invite(expires time.Duration, replica bool) (code string, until time.Time, err error) {
	if n.blind {
		return "", time.Time{}, fmt.Errorf("invite: %w", store.ErrBlind)
	}
	if expires <= 0 {
		expires = DefaultInviteExpiry
	}
	if expires > MaxInviteExpiry {
		return "", time.Time{}, fmt.Errorf("invite: %w: a lifetime of %s is longer than the maximum of %gh", store.ErrInvalid, expires, MaxInviteExpiry.Hours())
	}
	addrs := n.inviteAddrs()
	if len(addrs) == 0 {
		return "", time.Time{}, fmt.Errorf("invite: %w", ErrNotStarted)
	}
	inv := &wire.Invite{Peer: n.id, Addrs: addrs, Expires: n.cfg.Now().Add(expires).Truncate(time.Second)}
	if _, err := rand.Read(inv.Secret[:]); err != nil {
		return "", time.Time{}, err
	}
	code, err = inv.Encode()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("invite: %w", err)
	}
	n.invites.mu.Lock()
	n.invites.cur = &openInvite{secret: inv.Secret, expires: inv.Expires, replica: replica}
	n.invites.mu.Unlock()
	return code, inv.Expires, nil
}

// CancelInvite closes the open invite, if any.
func (n *Node) CancelInvite() {
	n.invites.mu.Lock()
	n.invites.cur = nil
	n.invites.mu.Unlock()
}

// inviteAddrs picks at most 8 listen addresses, LAN and public ones before loopback.
func (n *Node) inviteAddrs() []ma.Multiaddr {
	h := n.hostNow()
	if h == nil {
		return nil
	}
	addrs := slices.Clone(h.Addrs())
	slices.SortStableFunc(addrs, func(a, b ma.Multiaddr) int {
		la, lb := manet.IsIPLoopback(a), manet.IsIPLoopback(b)
		switch {
		case la == lb:
			return 0
		case lb:
			return -1
		}
		return 1
	})
	return addrs[:min(len(addrs), 8)]
}

// handlePair serves a joiner while an invite is open.
func (n *Node) handlePair(s network.Stream) {
	p := s.Conn().RemotePeer()
	r, ok := n.enter()
	if !ok {
		s.Reset()
		return
	}
	defer r.wg.Done()
	inv, err := n.invites.claim(n.cfg.Now())
	if err != nil {
		s.Reset()
		n.dropStranger(p)
		return
	}
	ok, wrong, err := n.servePair(r.ctx, s, p, inv)
	n.invites.release(inv, ok, wrong)
	if err != nil {
		n.log.Info("pairing failed", "peer", shortID(p), "err", err)
		s.Reset()
		n.dropStranger(p)
		return
	}
	n.log.Info("device paired", "peer", shortID(p))
	s.Close()
}

func (n *Node) servePair(ctx context.Context, s network.Stream, p peer.ID, inv *openInvite) (ok, wrongSecret bool, err error) {
	// The joiner derives its store key (Argon2id) between the offer and the confirm.
	const storeInitAllowance = 30 * time.Second
	ctx, cancel := context.WithTimeout(ctx, 3*n.cfg.StepTimeout+storeInitAllowance)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	rw := &frameRW{s: s, step: n.cfg.StepTimeout, limit: wire.MaxPairFrame}
	req, err := readPair(rw)
	if err != nil {
		return false, false, err
	}
	if !hmac.Equal(req.Proof, pairProof(inv.secret, n.id, p)) {
		writePair(rw, &pairMsg{Error: "wrong invite code"})
		return false, true, fmt.Errorf("%w: wrong secret", ErrInviteRefused)
	}
	// From here on the invite is spent, whatever happens (the claim keeps others out).
	offer := &pairMsg{MeshKey: n.st.Keys().MeshKeyForPairing(), Devices: n.Devices()}
	role := RoleDevice
	if inv.replica {
		tok, err := n.st.Keys().ReplicaToken()
		if err != nil {
			return true, false, err
		}
		role, offer.MeshKey, offer.Token, offer.Devices = RoleReplica, nil, &tok, nil
		for _, d := range n.Devices() {
			offer.Devices = append(offer.Devices, memberView(d))
		}
	}
	if err := writePair(rw, offer); err != nil {
		return true, false, err
	}
	rw.step = n.cfg.StepTimeout + storeInitAllowance
	conf, err := readPair(rw)
	if err != nil {
		return true, false, err
	}
	rw.step = n.cfg.StepTimeout
	if !validDeviceID(conf.DeviceID) {
		return true, false, fmt.Errorf("%w: device id %q is not 16 hex digits", ErrProtocol, conf.DeviceID)
	}
	// A joiner must not take over another device's record (and with it its peer id).
	for _, d := range n.Devices() {
		if d.ID == conf.DeviceID {
			return true, false, fmt.Errorf("%w: device id %s is already in the mesh", ErrProtocol, conf.DeviceID)
		}
	}
	name := req.Name
	if name == "" {
		name = "device-" + shortID(p)
	}
	key, err := signingKeyOf(p)
	if err != nil {
		return true, false, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	ad, err := n.st.Authority().Admit(resolve.DeviceID(conf.DeviceID), key)
	if err != nil {
		return true, false, err
	}
	dev := Device{ID: conf.DeviceID, PeerID: p, Name: name, Role: role, Added: n.cfg.Now().UTC(), Key: key, Admission: &ad}
	if err := putDevice(n.st, dev); err != nil {
		return true, false, err
	}
	if err := n.devicesChanged(); err != nil {
		return true, false, err
	}
	return true, false, writePair(rw, &pairMsg{OK: true})
}

// dropStranger closes the connections of a peer that is not a device.
func (n *Node) dropStranger(p peer.ID) {
	if _, ok := n.isMember(p); ok {
		return
	}
	h := n.hostNow()
	if h != nil {
		h.Network().ClosePeer(p)
	}
}

// Join joins the mesh of an invite: it connects to the inviting device, proves the code,
// receives the mesh key and the device list, creates the store in cfg.Dir (which must hold
// none yet) and returns the node, not started. With an invite made by InviteReplica the
// store is a blind replica's (store.InitReplica) and the node's Blind reports true. Errors: ErrBadInvite (a typo),
// ErrInviteExpired, ErrInviteRefused (used, revoked, wrong), store.ErrExists.
func Join(ctx context.Context, cfg Config, code, deviceName string) (*Node, error) {
	cfg = cfg.withDefaults()
	inv, err := wire.ParseInvite(code)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if !cfg.Now().Before(inv.Expires) {
		return nil, fmt.Errorf("join: %w (it expired at %s)", ErrInviteExpired, inv.Expires.Format(time.RFC3339))
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, store.FileName)); err == nil {
		return nil, fmt.Errorf("join: %s: %w", cfg.Dir, store.ErrExists)
	}
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	h, err := joinHost(sk)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	defer h.Close()
	inv.Addrs = append(inv.Addrs, viaRelays(cfg.Relays, inv.Addrs)...)
	var st *store.Store
	err = pairWith(ctx, h, inv, deviceName, cfg.StepTimeout, func(m *pairMsg) (string, error) {
		o := cfg.storeOptions(deviceName)
		if o.SigningKey, err = rawKey(sk); err != nil {
			return "", err
		}
		switch {
		case m.Token != nil:
			st, err = store.InitReplica(cfg.Dir, cfg.Passphrase, *m.Token, o)
		case len(m.MeshKey) != 32:
			return "", fmt.Errorf("%w: mesh key of %d bytes", ErrProtocol, len(m.MeshKey))
		default:
			o.MeshKey = m.MeshKey
			st, err = store.Init(cfg.Dir, cfg.Passphrase, o)
		}
		if err != nil {
			return "", err
		}
		if m.Token == nil {
			if err := st.Authority().AddAnchors(inviterMembers(m.Devices)); err != nil {
				return "", err
			}
		}
		devs := m.Devices
		for i := range devs {
			if devs[i].PeerID == inv.Peer {
				for _, a := range inv.Addrs {
					devs[i].Addrs = append(devs[i].Addrs, a.String())
				}
			}
		}
		name := localBootstrap
		if st.Blind() {
			name = localReplicaMembers
		}
		if err := st.Local().Put(name, devs); err != nil {
			return "", err
		}
		return string(st.Device().ID), nil
	})
	if err != nil {
		if st != nil {
			st.Close()
			os.Remove(filepath.Join(cfg.Dir, store.FileName))
		}
		return nil, fmt.Errorf("join: %w", err)
	}
	n, err := newNode(cfg, st)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("join: %w", err)
	}
	return n, nil
}

// inviterMembers are the devices a joiner trusts without proof: the members its inviter
// named over the authenticated pairing channel, each under the key of its peer id.
func inviterMembers(devs []Device) map[resolve.DeviceID]ed25519.PublicKey {
	out := map[resolve.DeviceID]ed25519.PublicKey{}
	for _, d := range devs {
		if d.Removed || d.Role != RoleDevice {
			continue
		}
		if key, err := signingKeyOf(d.PeerID); err == nil {
			out[resolve.DeviceID(d.ID)] = key
		}
	}
	return out
}

// joinHost is the short-lived host a joiner pairs from: the device's future identity, no
// listening, and the relay transport, so that an invite whose addresses are relayed (an
// inviter behind a NAT) can be reached: pairing moves a few kilobytes, well within a
// public relay's limits.
func joinHost(sk crypto.PrivKey) (host.Host, error) {
	rm, err := newResourceManager()
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(append(baseOptions(sk, rm), libp2p.NoListenAddrs, libp2p.EnableRelay())...)
	if err != nil {
		rm.Close()
		return nil, err
	}
	return h, nil
}

// pairWith runs the joiner's side of pairing on h. create receives the offer, creates the
// store and returns the new device id.
func pairWith(ctx context.Context, h host.Host, inv *wire.Invite, name string, step time.Duration, create func(*pairMsg) (string, error)) error {
	h.Peerstore().AddAddrs(inv.Peer, inv.Addrs, peerstore.TempAddrTTL)
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "meshsync: pairing is small"), inv.Peer, PairProtocol)
	if err != nil {
		var dial *swarm.DialError
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%w: no answer from the inviting device at %s before the deadline", ErrPairTimeout, triedAddrs(inv))
		case errors.As(err, &dial):
			// No address led to the inviting device (nothing answered, or another peer id).
			return fmt.Errorf("%w: tried %s: %s", ErrInviterUnreachable, triedAddrs(inv), oneLine(err))
		}
		// Reached, and it closed the connection: its gate admits no joiner now (the invite
		// was used, closed, replaced, or locked after wrong codes).
		return fmt.Errorf("%w: the inviting device closed the connection (%s)", ErrInviteRefused, oneLine(err))
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	rw := &frameRW{s: s, step: step, limit: wire.MaxPairFrame}
	if err := writePair(rw, &pairMsg{Proof: pairProof(inv.Secret, inv.Peer, h.ID()), Name: name}); err != nil {
		return pairFailed(err)
	}
	offer, err := readPair(rw)
	if err != nil {
		return pairFailed(err)
	}
	if offer.Error != "" {
		return fmt.Errorf("%w: %s", ErrInviteRefused, offer.Error)
	}
	id, err := create(offer)
	if err != nil {
		return err
	}
	if err := writePair(rw, &pairMsg{DeviceID: id}); err != nil {
		return err
	}
	res, err := readPair(rw)
	if err != nil {
		return err
	}
	if !res.OK {
		return fmt.Errorf("%w: %s", ErrInviteRefused, res.Error)
	}
	s.Close()
	return nil
}

// viaRelays are the circuit addresses through the joiner's own relays (Config.Relays)
// that the invite does not name already: an inviter that keeps a reservation on one of
// them is reached through it, whatever the invite says.
func viaRelays(relays []string, have []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, r := range relays {
		a, err := ma.NewMultiaddr(strings.TrimSuffix(r, "/") + "/p2p-circuit")
		if err != nil || slices.ContainsFunc(have, a.Equal) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// pairFailed names why a pairing exchange broke off: no answer in time, or the inviting
// device ended it (the invite used, closed or replaced, or the code wrong).
func pairFailed(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: the inviting device stopped answering (%s)", ErrPairTimeout, oneLine(err))
	}
	return fmt.Errorf("%w: %s", ErrInviteRefused, oneLine(err))
}

// triedAddrs lists the addresses an invite names, for an error.
func triedAddrs(inv *wire.Invite) string {
	if len(inv.Addrs) == 0 {
		return "no address (the invite names none)"
	}
	as := make([]string, len(inv.Addrs))
	for i, a := range inv.Addrs {
		as[i] = a.String()
	}
	return strings.Join(as, ", ")
}

// oneLine folds a multi-line error (libp2p lists every failed dial on its own line).
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// validDeviceID reports whether id has the form store.Init gives device ids: 16 lower-case
// hex digits.
func validDeviceID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// InviteReach says how far an invite code can be used from: whether it names an address
// another network can dial (public, or through a relay), and the addresses it names. A
// code that names only LAN or loopback addresses works on the inviter's network alone.
func InviteReach(code string) (beyondLAN bool, addrs []ma.Multiaddr, err error) {
	inv, err := wire.ParseInvite(code)
	if err != nil {
		return false, nil, err
	}
	for _, a := range inv.Addrs {
		if manet.IsPublicAddr(a) || isRelayed(a) {
			beyondLAN = true
		}
	}
	return beyondLAN, inv.Addrs, nil
}
