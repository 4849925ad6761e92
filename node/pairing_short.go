package node

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node/internal/cpace"
	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/store"
)

// PairShortProtocol is the libp2p protocol id of pairing by short code. Like
// PairProtocol, a stranger may open it only while a short invite is open.
//
//	J → I  {nonce, pake: Ya}             in clear
//	I → J  {pake: Yb, confirm}           in clear; confirm = HMAC(k_confirm, "inviter")
//	J → I  sealed {proof, name}          proof = PairProtocol's, under a secret from the ISK
//	I → J  sealed {mesh_key | replica_token, devices}
//	J → I  sealed {device_id}
//	I → J  sealed {ok}
//
// Ya and Yb are CPace messages (node/internal/cpace, CPACE-RISTR255-SHA512) with the code
// as the password, and CI and sid bound by cpace.Bind to this protocol id, both peer ids
// as each side sees them on its authenticated connection (joiner first) and the joiner's
// nonce. From the ISK, HKDF-SHA-512 derives the inviter's confirmation key, the proof
// secret and one ChaCha20-Poly1305 key per direction (the message counter is the nonce).
//
// A joiner with a wrong code gets Yb and a confirmation it cannot check any other guess
// against (that would need the inviter's secret scalar) and stops; the inviter counts
// every run in which it sent Yb and received no valid proof as a failed attempt, and the
// invite closes after MaxInviteFailures of them. A man in the middle sees two
// connections with its own peer id on each, so the two sides bind different CIs: it gets
// one guess on each side, and both fail.
const PairShortProtocol = "/meshsync/pair-short/1.0.0"

// MaxShortInviteExpiry is the longest (and the default) lifetime of a short invite: 33
// bits are safe for one guess per attempt and three attempts, not for a code that waits.
const MaxShortInviteExpiry = 10 * time.Minute

// shortNonceSize is the size of the joiner's nonce, which makes each run's sid unique.
const shortNonceSize = 16

// shortFindTimeout is how long a joiner looks for the device of a short code before it
// gives up as unreachable.
const shortFindTimeout = 90 * time.Second

// ShortInvite is an open invite by short code.
type ShortInvite struct {
	// Code is what a person reads aloud: "4-garden-orbit-pencil".
	Code string `json:"code"`
	// Expires is when the invite closes (it also closes after MaxInviteFailures wrong
	// codes).
	Expires time.Time `json:"expires"`
	// Addrs are the inviting device's addresses, each ending in /p2p/<peer id>: what
	// `join CODE --peer ADDR` takes where discovery cannot find the device.
	Addrs []string `json:"addrs"`
}

// InviteShort opens an invite by short code, valid for expires (MaxShortInviteExpiry
// when 0, and at most that: longer is store.ErrInvalid) and for MaxInviteFailures
// failed attempts in all. It replaces any open invite. While the node runs, the invite is
// announced on the LAN by mDNS (Config.EnableMDNS) under a name derived from the
// nameplate, and on the DHT under a key derived from the whole code and the day.
func (n *Node) InviteShort(expires time.Duration) (ShortInvite, error) {
	if n.blind {
		return ShortInvite{}, fmt.Errorf("invite: %w", store.ErrBlind)
	}
	if expires <= 0 {
		expires = MaxShortInviteExpiry
	}
	if expires > MaxShortInviteExpiry {
		return ShortInvite{}, fmt.Errorf("invite: %w: a short code lives at most %s, not %s (use a long code for longer)", store.ErrInvalid, MaxShortInviteExpiry, expires)
	}
	r, ok := n.enter()
	if !ok {
		return ShortInvite{}, fmt.Errorf("invite: %w", ErrNotStarted)
	}
	sc, err := wire.NewShortCode(rand.Reader)
	if err != nil {
		r.wg.Done()
		return ShortInvite{}, err
	}
	until := n.cfg.Now().Add(expires).Truncate(time.Second)
	ctx, cancel := context.WithDeadline(r.ctx, until)
	n.invites.replace(&openInvite{prs: []byte(sc.String()), expires: until, short: true, stop: cancel})
	go n.announceInvite(ctx, r, shortLookup(sc))
	return ShortInvite{Code: sc.String(), Expires: until, Addrs: n.InviteAddrs()}, nil
}

// InviteAddrs are the addresses this device can be paired at, each ending in /p2p/<peer
// id>, in the order it prefers them (public, LAN, loopback); relayed ones among them when
// it keeps relay reservations. Empty while the network is down.
func (n *Node) InviteAddrs() []string {
	out := []string{}
	for _, a := range n.inviteAddrs() {
		out = append(out, a.String()+"/p2p/"+n.id.String())
	}
	return out
}

// IsShortCode reports whether code has the shape of a short code (a number and words,
// "4-garden-orbit-pencil") rather than of a long one; Join tells them apart the same way.
func IsShortCode(code string) bool { return wire.LooksShort(code) }

// shortKeys are the keys one CPace run derives.
type shortKeys struct {
	confirm             []byte // the inviter's confirmation
	secret              [wire.SecretSize]byte
	toInviter, toJoiner []byte
}

func deriveShortKeys(isk []byte) (shortKeys, error) {
	var k shortKeys
	key := func(label string, size int) ([]byte, error) {
		return hkdf.Key(sha512.New, isk, nil, "meshsync/v1/pair-short/"+label, size)
	}
	mk, err := key("confirm-inviter", 32)
	if err != nil {
		return k, err
	}
	m := hmac.New(sha256.New, mk)
	m.Write([]byte("inviter"))
	k.confirm = m.Sum(nil)
	sec, err := key("proof", wire.SecretSize)
	if err != nil {
		return k, err
	}
	copy(k.secret[:], sec)
	if k.toInviter, err = key("joiner-to-inviter", 32); err != nil {
		return k, err
	}
	k.toJoiner, err = key("inviter-to-joiner", 32)
	return k, err
}

// shortBind is the CPace binding of a run between joiner and inviter.
func shortBind(code []byte, joiner, inviter peer.ID, nonce []byte) cpace.Inputs {
	b := cpace.Bind(PairShortProtocol, []byte(joiner), []byte(inviter), nonce)
	return cpace.Inputs{PRS: code, CI: b.CI, SID: b.SID}
}

// handlePairShort serves a joiner with a short code while a short invite is open.
func (n *Node) handlePairShort(s network.Stream) {
	n.serveInvite(s, true, n.servePairShort)
}

func (n *Node) servePairShort(ctx context.Context, s network.Stream, p peer.ID, inv *openInvite) (ok, wrongCode bool, err error) {
	pc, done := servingPair(ctx, s, 5*n.cfg.StepTimeout+storeInitAllowance, n.cfg.StepTimeout)
	defer done()
	req, err := pc.read()
	if err != nil {
		return false, false, err
	}
	if len(req.Nonce) != shortNonceSize || len(req.PAKE) == 0 {
		return false, false, fmt.Errorf("%w: a short-code opening without nonce or PAKE message", ErrProtocol)
	}
	st, msg, err := cpace.Start(cpace.Responder, shortBind(inv.prs, p, n.id, req.Nonce), rand.Reader)
	if err != nil {
		return false, false, err
	}
	isk, _, err := st.Finish(req.PAKE)
	if err != nil {
		// Not a valid element: no key was derived from it, nothing was learnt.
		return false, false, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	keys, err := deriveShortKeys(isk)
	if err != nil {
		return false, false, err
	}
	// From here the joiner holds a share bound to one guess of the code: unless it proves
	// the key, the attempt failed, whatever else happens.
	if err := pc.write(&pairMsg{PAKE: msg, Confirm: keys.confirm}); err != nil {
		return false, true, err
	}
	if err := pc.seal(keys.toJoiner, keys.toInviter); err != nil {
		return false, true, err
	}
	proof, err := pc.read()
	if err != nil {
		return false, true, fmt.Errorf("%w: no valid proof (a wrong code, or a man in the middle): %v", ErrInviteRefused, err)
	}
	if !hmac.Equal(proof.Proof, pairProof(keys.secret, n.id, p)) {
		return false, true, fmt.Errorf("%w: wrong proof", ErrInviteRefused)
	}
	return n.serveOffer(pc, p, inv, proof.Name)
}

// pairShort runs the joiner's side of pairing by short code: it tries cfg.JoinPeers,
// then each device that discovery finds, until one pairs.
func pairShort(ctx context.Context, h host.Host, cfg Config, sc wire.ShortCode, name string, rnd io.Reader, create createFunc) error {
	peers, err := parseAddrInfos("--peer", cfg.JoinPeers)
	if err != nil {
		return fmt.Errorf("%w: %v (give the address with its /p2p/<peer id>, as pair --short --json prints it)", ErrBadInvite, err)
	}
	code := []byte(sc.String())
	lastErr := error(nil)
	try := func(pi peer.AddrInfo) (done bool, err error) {
		err = pairShortWith(ctx, h, pi, code, name, cfg.StepTimeout, rnd, create)
		if err == nil {
			return true, nil
		}
		lastErr = err
		// An unreachable or silent device: try the next one. A refusal (a wrong code, most
		// likely: the device that announced the nameplate held the PAKE) or anything else
		// (the store could not be created) ends the join, without spending the attempts of
		// other devices that may share the nameplate.
		return !(errors.Is(err, ErrInviterUnreachable) || errors.Is(err, ErrPairTimeout)), err
	}
	seen := map[peer.ID]bool{}
	for _, pi := range peers {
		seen[pi.ID] = true
		if done, err := try(pi); done {
			return err
		}
	}
	if len(peers) > 0 {
		return lastErr // --peer: no discovery
	}
	fctx, cancel := context.WithTimeout(ctx, shortFindTimeout)
	defer cancel()
	found := make(chan peer.AddrInfo)
	go findInviter(fctx, h, cfg, shortLookup(sc), found)
	defer func() {
		cancel()
		for range found { // findInviter ends with fctx
		}
	}()
	for pi := range found {
		if seen[pi.ID] {
			continue
		}
		seen[pi.ID] = true
		if done, err := try(pi); done {
			return err
		}
	}
	if lastErr != nil {
		return lastErr
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: no device with short code %d-… answered before the deadline", ErrPairTimeout, sc.Nameplate)
	}
	return fmt.Errorf("%w: no device with an open short code %d-… was found on the LAN (mDNS) or the DHT; give its address with --peer (pair --short --json lists them)", ErrInviterUnreachable, sc.Nameplate)
}

// pairShortWith runs one attempt with the device at target.
func pairShortWith(ctx context.Context, h host.Host, target peer.AddrInfo, code []byte, name string, step time.Duration, rnd io.Reader, create createFunc) error {
	pc, done, err := openPairChan(ctx, h, target, PairShortProtocol, step)
	if err != nil {
		return err
	}
	defer done()
	nonce := make([]byte, shortNonceSize)
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return err
	}
	st, msg, err := cpace.Start(cpace.Initiator, shortBind(code, h.ID(), target.ID, nonce), rnd)
	if err != nil {
		return err
	}
	if err := pc.write(&pairMsg{Nonce: nonce, PAKE: msg}); err != nil {
		return pairFailed(err)
	}
	resp, err := pc.read()
	if err != nil {
		return pairFailed(err)
	}
	if resp.Error != "" {
		return fmt.Errorf("%w: %s", ErrInviteRefused, resp.Error)
	}
	isk, _, err := st.Finish(resp.PAKE)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	keys, err := deriveShortKeys(isk)
	if err != nil {
		return err
	}
	if !hmac.Equal(resp.Confirm, keys.confirm) {
		return fmt.Errorf("%w: the code does not match (check it with the inviting device: each wrong try uses up one of its %d attempts)", ErrInviteRefused, MaxInviteFailures)
	}
	if err := pc.seal(keys.toInviter, keys.toJoiner); err != nil {
		return err
	}
	if err := pc.write(&pairMsg{Proof: pairProof(keys.secret, target.ID, h.ID()), Name: name}); err != nil {
		return pairFailed(err)
	}
	if err := finishPair(pc, target, create); err != nil {
		return err
	}
	pc.rw.s.Close()
	return nil
}
