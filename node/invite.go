package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/store"
)

// MaxInviteFailures is how many wrong secrets kill an invite.
const MaxInviteFailures = 3

// DefaultInviteExpiry is the lifetime of an invite when Invite is given 0.
const DefaultInviteExpiry = 10 * time.Minute

// MaxInviteExpiry is the longest lifetime an invite may have: a code is a key to the mesh
// for as long as it lives, and may sit in a chat log or a screenshot.
const MaxInviteExpiry = 24 * time.Hour

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
