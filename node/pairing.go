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
	"sync"
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
	manet "github.com/multiformats/go-multiaddr/net"
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

// inviteBox holds the one open invite of a node, and what became of the last one.
type inviteBox struct {
	mu      sync.Mutex
	cur     *openInvite
	last    InviteState
	changed chan struct{} // closed at the next change of last
}

// watch returns a channel closed at the next change of the InviteState.
func (b *inviteBox) watch() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.changed
}

// notifyLocked wakes the watchers; b.mu is held.
func (b *inviteBox) notifyLocked() {
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

type openInvite struct {
	secret   [wire.SecretSize]byte // a long code's
	prs      []byte                // a short code's: the code, the PAKE's password
	short    bool
	expires  time.Time
	failures int
	used     bool
	busy     bool               // a joiner is being served
	replica  bool               // the joiner becomes a blind replica
	stop     context.CancelFunc // ends the announcements (pairing_find.go); may be nil
}

// InviteState says what became of a node's latest invite.
type InviteState struct {
	// Open is true while the invite can still be used.
	Open bool `json:"open"`
	// Short is true for an invite by short code.
	Short bool `json:"short,omitempty"`
	// Failures counts the failed attempts (wrong codes) so far.
	Failures int `json:"failures"`
	// Closed says why an invite is no longer open: "used", "failures" (MaxInviteFailures
	// wrong codes), "expired", or "replaced" (a newer invite or CancelInvite); empty while
	// open or when no invite was made.
	Closed string `json:"closed,omitempty"`
	// Expires is when the invite expires.
	Expires time.Time `json:"expires,omitzero"`
	// ClosedAt is when it was used or closed by wrong codes.
	ClosedAt time.Time `json:"closed_at,omitzero"`
}

// replace opens c in place of the current invite; nil closes it.
func (b *inviteBox) replace(c *openInvite) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur != nil && b.cur.stop != nil {
		b.cur.stop()
	}
	b.cur = c
	b.last = InviteState{Closed: "replaced"}
	if c != nil {
		b.last = InviteState{Open: true, Short: c.short, Expires: c.expires}
	}
	b.notifyLocked()
}

// state is the InviteState at now.
func (b *inviteBox) state(now time.Time) InviteState {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.last
	if st.Open && !now.Before(st.Expires) {
		st.Open, st.Closed = false, "expired"
	}
	return st
}

func (b *inviteBox) open(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cur
	return c != nil && !c.used && c.failures < MaxInviteFailures && now.Before(c.expires)
}

// claim reserves the open invite for one joiner; short says which protocol asks.
func (b *inviteBox) claim(now time.Time, short bool) (*openInvite, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cur
	switch {
	case c == nil || c.used || c.failures >= MaxInviteFailures:
		return nil, ErrInviteRefused
	case c.short != short:
		return nil, fmt.Errorf("%w: the open invite is not of this kind", ErrInviteRefused)
	case !now.Before(c.expires):
		return nil, ErrInviteExpired
	case c.busy:
		return nil, fmt.Errorf("%w: another device is joining", ErrInviteRefused)
	}
	c.busy = true
	return c, nil
}

// release ends a claim at now: ok consumes the invite, wrongSecret counts a failure. It
// returns the failures so far and whether this release closed the invite.
func (b *inviteBox) release(now time.Time, c *openInvite, ok, wrongSecret bool) (failures int, closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c.busy = false
	if ok {
		c.used = true
	}
	if wrongSecret {
		c.failures++
	}
	if b.cur == c {
		b.last.Failures = c.failures
		switch {
		case c.used:
			b.last.Open, b.last.Closed, closed = false, "used", true
		case c.failures >= MaxInviteFailures:
			b.last.Open, b.last.Closed, closed = false, "failures", true
		}
	}
	if closed {
		b.last.ClosedAt = now
		if c.stop != nil {
			c.stop()
		}
	}
	if closed || wrongSecret {
		b.notifyLocked()
	}
	return c.failures, closed
}

// InviteState says whether the node's latest invite is still open, how many failed
// attempts it saw, and why it closed.
func (n *Node) InviteState() InviteState { return n.invites.state(n.cfg.Now()) }

// InviteChanged returns a channel that is closed when the InviteState next changes: an
// invite opened, replaced or cancelled, a wrong code counted, the invite used or closed
// by wrong codes (not its expiry, which InviteState reports when asked).
func (n *Node) InviteChanged() <-chan struct{} { return n.invites.watch() }

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
	until = n.cfg.Now().Add(expires).Truncate(time.Second)
	// The compact code (wire/compact.go): the peer id, a 64-bit secret and one address at
	// most. A device with relays names none: the joiner comes through its own --relay,
	// the DHT or mDNS (pairing_find.go), and the code stays within 60 characters.
	inv := &wire.Invite{Peer: n.id}
	if len(n.cfg.Relays) == 0 {
		for _, a := range addrs {
			if wire.CompactAddr(a) {
				inv.Addrs = []ma.Multiaddr{a}
				break
			}
		}
	}
	if _, err := rand.Read(inv.Secret[:wire.CompactSecretSize]); err != nil {
		return "", time.Time{}, err
	}
	code, err = inv.Encode()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("invite: %w", err)
	}
	inv.Expires = until
	oi := &openInvite{secret: inv.Secret, expires: inv.Expires, replica: replica}
	if r, ok := n.enter(); ok {
		ctx, cancel := context.WithDeadline(r.ctx, inv.Expires)
		oi.stop = cancel
		go n.announceInvite(ctx, r, longLookup(n.id))
	}
	n.invites.replace(oi)
	return code, inv.Expires, nil
}

// CancelInvite closes the open invite, if any.
func (n *Node) CancelInvite() {
	n.invites.replace(nil)
}

// inviteAddrs lists the listen addresses, public ones first, then LAN ones, then
// loopback, TCP before QUIC.
func (n *Node) inviteAddrs() []ma.Multiaddr {
	h := n.hostNow()
	if h == nil {
		return nil
	}
	rank := func(a ma.Multiaddr) int {
		r := 0
		switch {
		case manet.IsPublicAddr(a):
		case manet.IsIPLoopback(a):
			r = 4
		default:
			r = 2
		}
		if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
			r++
		}
		return r
	}
	addrs := slices.Clone(h.Addrs())
	slices.SortStableFunc(addrs, func(a, b ma.Multiaddr) int { return rank(a) - rank(b) })
	return addrs
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

// storeInitAllowance is how long an inviter waits for the joiner's device id: the joiner
// derives its store key (Argon2id) between the offer and the confirm.
const storeInitAllowance = 30 * time.Second

func (n *Node) servePair(ctx context.Context, s network.Stream, p peer.ID, inv *openInvite) (ok, wrongSecret bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 3*n.cfg.StepTimeout+storeInitAllowance)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	pc := newPairChan(s, n.cfg.StepTimeout)
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
	s, err := openPairStream(ctx, h, target, PairProtocol)
	if err != nil {
		return err
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	pc := newPairChan(s, step)
	if err := pc.write(&pairMsg{Proof: pairProof(inv.Secret, inv.Peer, h.ID()), Name: name}); err != nil {
		return pairFailed(err)
	}
	if err := finishPair(pc, target, create); err != nil {
		return err
	}
	s.Close()
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

// AddrsReach reports whether any of addrs (InviteAddrs) can be dialled from another
// network: a public address, or one through a relay.
func AddrsReach(addrs []string) (beyondLAN bool) {
	for _, s := range addrs {
		if a, err := ma.NewMultiaddr(s); err == nil && (manet.IsPublicAddr(a) || isRelayed(a)) {
			return true
		}
	}
	return false
}

// InviteReach says how far an invite code can be used from: whether it names an address
// another network can dial (public, or through a relay), and the addresses it names. A
// compact code names one address at most, and none for a device with relays (whose
// joiners come through their own --relay or the DHT): AddrsReach over InviteAddrs tells
// more.
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
