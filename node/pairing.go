package node

import (
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/meshsync/meshsync/node/internal/cpace"
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

// pairMsg is every pairing message; each step uses some of the fields. It travels as
// JSON in one TypePair frame of at most wire.MaxPairFrame bytes.
type pairMsg struct {
	// Nonce, PAKE and Confirm are the clear opening of pairing by short code
	// (pairing_short.go); everything after it is sealed.
	Nonce   []byte `json:"nonce,omitempty"`
	PAKE    []byte `json:"pake,omitempty"`
	Confirm []byte `json:"confirm,omitempty"`
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
	if len(m.Nonce) > 32 || len(m.PAKE) > cpace.MaxMessageLen || len(m.Confirm) > 64 || len(m.Proof) > 64 || len(m.Name) > 256 || len(m.MeshKey) > 64 || len(m.DeviceID) > store.MaxDeviceIDSize || len(m.Devices) > 1024 || len(m.Error) > 512 {
		return nil, fmt.Errorf("%w: pairing message field too large", ErrProtocol)
	}
	for _, d := range m.Devices {
		if d.ID == "" || d.PeerID == "" || len(d.ID) > store.MaxDeviceIDSize {
			return nil, fmt.Errorf("%w: pairing message names a device without id or peer id", ErrProtocol)
		}
	}
	return &m, nil
}

// pairChan carries pairing messages on a stream: in clear (the long code: the stream's
// secure channel authenticates the inviter), or sealed under keys from the PAKE (a short
// code: the inviter is whoever knows the code).
type pairChan struct {
	rw         *frameRW
	send, recv cipher.AEAD // nil: in clear
	sent, got  uint64      // message counters, the AEAD nonces
}

func newPairChan(s network.Stream, step time.Duration) *pairChan {
	return &pairChan{rw: &frameRW{s: s, step: step, limit: wire.MaxPairFrame}}
}

// seal turns sealing on: send and recv are the 32-byte ChaCha20-Poly1305 keys of each
// direction.
func (c *pairChan) seal(send, recv []byte) error {
	var err error
	if c.send, err = chacha20poly1305.New(send); err != nil {
		return err
	}
	c.recv, err = chacha20poly1305.New(recv)
	return err
}

func pairNonce(n uint64) []byte {
	var b [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(b[4:], n)
	return b[:]
}

func (c *pairChan) write(m *pairMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if c.send != nil {
		b = c.send.Seal(nil, pairNonce(c.sent), b, nil)
		c.sent++
	}
	return c.rw.write(wire.TypePair, b)
}

// errUnsealed means a sealed pairing message did not open: the two sides hold different
// keys (a wrong code, a man in the middle) or the message was altered.
var errUnsealed = errors.New("a sealed pairing message does not open")

func (c *pairChan) read() (*pairMsg, error) {
	b, err := c.rw.expect(wire.TypePair)
	if err != nil {
		return nil, err
	}
	if c.recv != nil {
		if b, err = c.recv.Open(b[:0], pairNonce(c.got), b, nil); err != nil {
			return nil, errUnsealed
		}
		c.got++
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

// handlePair serves a joiner with a long code while an invite is open.
func (n *Node) handlePair(s network.Stream) {
	n.serveInvite(s, false, n.servePair)
}

// serveInvite claims the open invite for the joiner on s and runs serve, the pairing
// protocol of its kind; it counts a failed attempt, and logs when the invite closes after
// MaxInviteFailures of them.
func (n *Node) serveInvite(s network.Stream, short bool, serve func(context.Context, network.Stream, peer.ID, *openInvite) (ok, wrong bool, err error)) {
	p := s.Conn().RemotePeer()
	r, ok := n.enter()
	if !ok {
		s.Reset()
		return
	}
	defer r.wg.Done()
	inv, err := n.invites.claim(n.cfg.Now(), short)
	if err != nil {
		s.Reset()
		n.dropStranger(p)
		return
	}
	ok, wrong, err := serve(r.ctx, s, p, inv)
	failures, closed := n.invites.release(n.cfg.Now(), inv, ok, wrong)
	if wrong {
		n.log.Warn("pairing: a device tried a wrong code", "peer", shortID(p), "attempt", failures, "of", MaxInviteFailures)
	}
	if closed && !ok {
		n.log.Warn("pairing: the invite closed after too many wrong codes; make a new one", "failures", failures)
	}
	if err != nil {
		n.log.Info("pairing failed", "peer", shortID(p), "err", err)
		s.Reset()
		n.dropStranger(p)
		return
	}
	n.log.Info("device paired", "peer", shortID(p))
	s.Close()
}

// servingPair bounds the inviter's side of one pairing on s to timeout (the stream is
// reset when it passes, or when ctx ends); done releases it.
func servingPair(ctx context.Context, s network.Stream, timeout, step time.Duration) (pc *pairChan, done func()) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	return newPairChan(s, step), func() { stop(); cancel() }
}

// openPairChan opens a pairing stream of proto to target for the joiner, reset when
// ctx ends; done resets it (the exchange is over, or failed).
func openPairChan(ctx context.Context, h host.Host, target peer.AddrInfo, proto protocol.ID, step time.Duration) (pc *pairChan, done func(), err error) {
	s, err := openPairStream(ctx, h, target, proto)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	return newPairChan(s, step), func() { stop(); s.Reset() }, nil
}

// storeInitAllowance is how long an inviter waits for the joiner's device id: the joiner
// derives its store key (Argon2id) between the offer and the confirm.
const storeInitAllowance = 30 * time.Second

func (n *Node) servePair(ctx context.Context, s network.Stream, p peer.ID, inv *openInvite) (ok, wrongSecret bool, err error) {
	pc, done := servingPair(ctx, s, 3*n.cfg.StepTimeout+storeInitAllowance, n.cfg.StepTimeout)
	defer done()
	req, err := pc.read()
	if err != nil {
		return false, false, err
	}
	if !hmac.Equal(req.Proof, pairProof(inv.secret, n.id, p)) {
		pc.write(&pairMsg{Error: "wrong invite code"})
		return false, true, fmt.Errorf("%w: wrong secret", ErrInviteRefused)
	}
	return n.serveOffer(pc, p, inv, req.Name)
}

// serveOffer is the inviter's side of pairing once the joiner proved the code: the offer
// (mesh key or replica token, device list), the joiner's device id, its record. From here
// on the invite is spent, whatever happens (the claim keeps others out).
func (n *Node) serveOffer(pc *pairChan, p peer.ID, inv *openInvite, reqName string) (ok, wrongSecret bool, err error) {
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
	if err := pc.write(offer); err != nil {
		return true, false, err
	}
	pc.rw.step = n.cfg.StepTimeout + storeInitAllowance
	conf, err := pc.read()
	if err != nil {
		return true, false, err
	}
	pc.rw.step = n.cfg.StepTimeout
	if !validDeviceID(conf.DeviceID) {
		return true, false, fmt.Errorf("%w: device id %q is not 16 hex digits", ErrProtocol, conf.DeviceID)
	}
	// A joiner must not take over another device's record (and with it its peer id).
	for _, d := range n.Devices() {
		if d.ID == conf.DeviceID {
			return true, false, fmt.Errorf("%w: device id %s is already in the mesh", ErrProtocol, conf.DeviceID)
		}
	}
	name := reqName
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
	return true, false, pc.write(&pairMsg{OK: true})
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
// none yet) and returns the node, not started. code is a long code (Invite) or a short
// one (InviteShort, "4-garden-orbit-pencil"). With an invite made by InviteReplica the
// store is a blind replica's (store.InitReplica) and the node's Blind reports true.
//
// Join looks for the inviting device at the addresses the code names, at cfg.JoinPeers,
// through each of cfg.Relays, on the LAN by mDNS (cfg.EnableMDNS), and on the DHT
// through cfg.Bootstrap (unless cfg.LANOnly). Errors: ErrBadInvite (a typo),
// ErrInviteExpired, ErrInviteRefused (used, revoked, a wrong code),
// ErrInviterUnreachable, ErrPairTimeout, store.ErrExists.
func Join(ctx context.Context, cfg Config, code, deviceName string) (*Node, error) {
	cfg = cfg.withDefaults()
	var pair func(ctx context.Context, h host.Host, create createFunc) error
	if wire.LooksShort(code) {
		sc, err := wire.ParseShortCode(code)
		if err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
		pair = func(ctx context.Context, h host.Host, create createFunc) error {
			return pairShort(ctx, h, cfg, sc, deviceName, rand.Reader, create)
		}
	} else {
		inv, err := wire.ParseInvite(code)
		if err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
		if !inv.Expires.IsZero() && !cfg.Now().Before(inv.Expires) {
			return nil, fmt.Errorf("join: %w (it expired at %s)", ErrInviteExpired, inv.Expires.Format(time.RFC3339))
		}
		pair = func(ctx context.Context, h host.Host, create createFunc) error {
			return pairLong(ctx, h, cfg, inv, deviceName, create)
		}
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
	var st *store.Store
	err = pair(ctx, h, func(m *pairMsg, inviter peer.AddrInfo) (string, error) {
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
			if devs[i].PeerID == inviter.ID {
				for _, a := range inviter.Addrs {
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

// createFunc receives the offer of the inviting device, creates the store and returns the
// new device id; inviter is the inviting device as the joiner reached it.
type createFunc func(m *pairMsg, inviter peer.AddrInfo) (string, error)

// pairLong runs the joiner's side of pairing by long code: it dials the inviting device at
// the address the code names, at cfg.JoinPeers with its peer id and through each of
// cfg.Relays; when none of them leads to it (or there is none), it looks for the device on
// the LAN and the DHT (pairing_find.go), unless JoinPeers were given.
func pairLong(ctx context.Context, h host.Host, cfg Config, inv *wire.Invite, name string, create createFunc) error {
	peers, err := parseAddrInfos("--peer", cfg.JoinPeers)
	if err != nil {
		return fmt.Errorf("%w: %v (give the address with its /p2p/<peer id>)", ErrBadInvite, err)
	}
	addrs := slices.Clone(inv.Addrs)
	for _, pi := range peers {
		if pi.ID == inv.Peer {
			addrs = append(addrs, pi.Addrs...)
		}
	}
	addrs = append(addrs, viaRelays(cfg.Relays, addrs)...)
	var first error
	if len(addrs) > 0 {
		first = pairWith(ctx, h, inv, addrs, name, cfg.StepTimeout, create)
		if first == nil || !errors.Is(first, ErrInviterUnreachable) || len(peers) > 0 {
			return first
		}
	}
	fctx, cancel := context.WithTimeout(ctx, shortFindTimeout)
	defer cancel()
	found := make(chan peer.AddrInfo)
	go findInviter(fctx, h, cfg, longLookup(inv.Peer), found)
	defer func() {
		cancel()
		for range found { // findInviter ends with fctx
		}
	}()
	for pi := range found {
		if pi.ID == inv.Peer {
			return pairWith(ctx, h, inv, append(addrs, pi.Addrs...), name, cfg.StepTimeout, create)
		}
	}
	if first != nil {
		return first
	}
	return fmt.Errorf("%w: tried %s", ErrInviterUnreachable, triedAddrs(nil))
}

// pairWith runs the joiner's side of pairing by long code on h, with the inviting device
// at addrs.
func pairWith(ctx context.Context, h host.Host, inv *wire.Invite, addrs []ma.Multiaddr, name string, step time.Duration, create createFunc) error {
	target := peer.AddrInfo{ID: inv.Peer, Addrs: addrs}
	pc, done, err := openPairChan(ctx, h, target, PairProtocol, step)
	if err != nil {
		return err
	}
	defer done()
	if err := pc.write(&pairMsg{Proof: pairProof(inv.Secret, inv.Peer, h.ID()), Name: name}); err != nil {
		return pairFailed(err)
	}
	if err := finishPair(pc, target, create); err != nil {
		return err
	}
	pc.rw.s.Close()
	return nil
}

// openPairStream dials the inviting device at target and opens proto, naming what went
// wrong: unreachable, timed out, or refused.
func openPairStream(ctx context.Context, h host.Host, target peer.AddrInfo, proto protocol.ID) (network.Stream, error) {
	h.Peerstore().AddAddrs(target.ID, target.Addrs, peerstore.TempAddrTTL)
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "meshsync: pairing is small"), target.ID, proto)
	if err != nil {
		var dial *swarm.DialError
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%w: no answer from the inviting device at %s before the deadline", ErrPairTimeout, triedAddrs(target.Addrs))
		case errors.As(err, &dial):
			// No address led to the inviting device (nothing answered, or another peer id).
			return nil, fmt.Errorf("%w: tried %s: %s", ErrInviterUnreachable, triedAddrs(target.Addrs), oneLine(err))
		}
		// Reached, and it closed the connection: its gate admits no joiner now (the invite
		// was used, closed, replaced, or locked after wrong codes).
		return nil, fmt.Errorf("%w: the inviting device closed the connection (%s)", ErrInviteRefused, oneLine(err))
	}
	return s, nil
}

// finishPair is the joiner's side once it sent its proof: the offer, the store, the
// device id, the inviter's ok.
func finishPair(pc *pairChan, inviter peer.AddrInfo, create createFunc) error {
	offer, err := pc.read()
	if err != nil {
		return pairFailed(err)
	}
	if offer.Error != "" {
		return fmt.Errorf("%w: %s", ErrInviteRefused, offer.Error)
	}
	id, err := create(offer, inviter)
	if err != nil {
		return err
	}
	if err := pc.write(&pairMsg{DeviceID: id}); err != nil {
		return err
	}
	res, err := pc.read()
	if err != nil {
		return err
	}
	if !res.OK {
		return fmt.Errorf("%w: %s", ErrInviteRefused, res.Error)
	}
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

// triedAddrs lists the addresses a joiner tried, for an error.
func triedAddrs(addrs []ma.Multiaddr) string {
	if len(addrs) == 0 {
		return "no address (the invite names none, and none was found on the LAN, the DHT or a relay given with --relay)"
	}
	as := make([]string, len(addrs))
	for i, a := range addrs {
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
