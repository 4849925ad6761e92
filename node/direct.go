package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Making relayed paths direct. libp2p's hole punching (DCUtR) tries once, when a relayed
// connection comes in, and only if both hosts know a public address of their own by then.
// Two daemons that start at about the same time miss that moment (the one dialled first
// has no public address yet: "protocols not supported: [/libp2p/dcutr]"), and the path
// then stays relayed until the relay ends the connection. So each device loop has a
// second goroutine (directLoop) that, while its device is connected only through relays,
// asks the host's hole-punch service to try again on the schedule of directPlan.

// captureHolePunch is a hole-punch option that hands the host's service to *dst: libp2p
// builds the service inside the host and does not expose it otherwise.
func captureHolePunch(dst **holepunch.Service) holepunch.Option {
	return func(s *holepunch.Service) error {
		*dst = s
		return nil
	}
}

// forgetPublicAddrs drops p's public addresses other than relayed ones from ps, once p is
// reached only through a relay. They did not make a direct path (a device behind a NAT
// remembered from its last direct connection, whose router drops what it did not ask
// for), and libp2p's hole punching dials them first: a dial that hangs on the same pair
// of ports the punch then needs makes the punch leave from another port, which the NAT
// does not expect. The punch learns the device's current public addresses itself.
func forgetPublicAddrs(ps peerstore.Peerstore, p peer.ID) {
	for _, a := range ps.Addrs(p) {
		if !isRelayed(a) && manet.IsPublicAddr(a) {
			ps.SetAddr(p, a, 0)
		}
	}
}

// closeOutboundRelayed closes the relayed connections this node dialled to p while one
// that p dialled is up. DCUtR runs on a connection the starting side received (the other
// side resets it otherwise), and libp2p opens its stream on whichever connection it ranks
// best: with both up, half the attempts ended "stream reset by remote".
func closeOutboundRelayed(nw network.Network, p peer.ID) {
	conns := nw.ConnsToPeer(p)
	in := slices.ContainsFunc(conns, func(c network.Conn) bool {
		return c.Stat().Direction == network.DirInbound && isRelayed(c.RemoteMultiaddr())
	})
	if !in {
		return
	}
	for _, c := range conns {
		if c.Stat().Direction == network.DirOutbound && isRelayed(c.RemoteMultiaddr()) {
			c.Close()
		}
	}
}

// holePunchSettle is how long the hole-punch protocol must have been registered before
// this node asks the service for an attempt: the service opens its attempts right after it
// registers the protocol, and Service.DirectConnect blocks without a context until then.
const holePunchSettle = time.Second

// directCond reads from r's host how p is connected and whether both sides run hole
// punching. settle is when this host's hole punching counts as running, while it does not
// yet (zero otherwise).
func (n *Node) directCond(r *netRun, p peer.ID, now time.Time) (c directCond, settle time.Time) {
	h := r.host
	conns := h.Network().ConnsToPeer(p)
	in, out := false, false
	for _, cn := range conns {
		if !cn.Stat().Limited && !isRelayed(cn.RemoteMultiaddr()) {
			return directCond{}, time.Time{}
		}
		if cn.Stat().Direction == network.DirInbound {
			in = true
		} else {
			out = true
		}
	}
	// DCUtR starts on the side that received a relayed connection. When both dialled,
	// both could: two punches at once, in opposite directions, dial the same pairs of
	// addresses and ports, and the second dial of a pair leaves from another port (the
	// NAT then drops it). Only the device with the smaller peer id starts them (and
	// closes the relayed connection it dialled first: closeOutboundRelayed).
	c.initiator = in && (!out || n.id < p)
	c.relayedOnly = len(conns) > 0
	if !c.relayedOnly {
		return c, time.Time{}
	}
	if slices.Contains(h.Mux().Protocols(), holepunch.Protocol) {
		r.holePunchSeen.CompareAndSwap(0, now.UnixNano())
		ready := time.Unix(0, r.holePunchSeen.Load()).Add(holePunchSettle)
		if c.ownReady = !now.Before(ready); !c.ownReady {
			settle = ready
		}
	}
	if ps, err := h.Peerstore().SupportsProtocols(p, holepunch.Protocol); err == nil && len(ps) > 0 {
		c.peerReady = true
	}
	return c, settle
}

// kickDirect wakes p's direct loop (any device's when p is empty).
func (n *Node) kickDirect(r *netRun, p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for q, pl := range r.peers {
		if p == "" || q == p {
			select {
			case pl.direct <- struct{}{}:
			default:
			}
		}
	}
}

// watchDirect wakes the direct loops when something they wait for may have happened: a
// connection to a device came or went, this host started hole punching (it learnt a
// public address), a device announced it.
func (n *Node) watchDirect(ctx context.Context, r *netRun) {
	sub, err := r.host.EventBus().Subscribe([]any{new(event.EvtLocalProtocolsUpdated), new(event.EvtPeerProtocolsUpdated), new(event.EvtPeerConnectednessChanged)})
	if err != nil {
		n.log.Warn("hole punching: no host events", "err", err)
		return
	}
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch e := e.(type) {
			case event.EvtLocalProtocolsUpdated:
				if slices.Contains(e.Added, holepunch.Protocol) {
					n.kickDirect(r, "")
				}
			case event.EvtPeerProtocolsUpdated:
				if slices.Contains(e.Added, holepunch.Protocol) {
					n.kickDirect(r, e.Peer)
				}
			case event.EvtPeerConnectednessChanged:
				n.kickDirect(r, e.Peer)
			}
		}
	}
}

// directLoop runs pl's device's directPlan on r: it looks at the connection when woken or
// when the plan says, starts the attempts the plan asks for, and tells the state tracker
// and, once direct, the device loop (so that sessions and the push stream move to the
// direct connection).
func (n *Node) directLoop(ctx context.Context, r *netRun, pl *peerLoop) {
	var plan directPlan
	var shown *DirectTry
	timer := time.NewTimer(0)
	defer timer.Stop()
	var done chan error
	defer func() {
		if done != nil {
			<-done // the host's Close ends the attempt
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-pl.direct:
		case err := <-done:
			done = nil
			busy := errors.Is(err, holepunch.ErrHolePunchActive)
			plan.done(n.cfg.Now(), err, busy, rand.Float64())
			if err == nil {
				n.log.Info("path made direct", "with", shortID(pl.p))
				pl.kickNow()
			} else if !busy {
				n.log.Debug("hole punching failed", "with", shortID(pl.p), "attempts", plan.try.Attempts, "err", err)
			}
		}
		now := n.cfg.Now()
		cond, settle := n.directCond(r, pl.p, now)
		if plan.look(now, cond, rand.Float64()) {
			ch := make(chan error, 1)
			done = ch
			n.log.Debug("hole punching", "with", shortID(pl.p), "attempt", plan.try.Attempts+1)
			forgetPublicAddrs(r.host.Peerstore(), pl.p)
			closeOutboundRelayed(r.host.Network(), pl.p)
			go func() { ch <- r.holePunch.DirectConnect(pl.p) }()
		}
		if st := plan.state(); !sameDirect(st, shown) {
			shown = st
			n.track.direct(pl.p, st)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		next := plan.next
		if !settle.IsZero() && (next.IsZero() || settle.Before(next)) {
			next = settle
		}
		if !next.IsZero() {
			timer.Reset(max(next.Sub(now), 0))
		}
	}
}

func sameDirect(a, b *DirectTry) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.State == b.State && a.Attempts == b.Attempts && a.LastError == b.LastError && a.Next.Equal(b.Next)
}
