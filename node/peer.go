package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// peerLoop is the goroutine that owns the relationship with one other device: dialling,
// sync sessions as the initiator, the push stream towards it, backoff and anti-entropy.
type peerLoop struct {
	p      peer.ID
	kick   chan struct{} // sync now
	push   chan uint64   // make sure a push stream runs, starting after this sequence
	gone   chan struct{} // the last connection to the device closed
	direct chan struct{} // look at the path again (direct.go)
	served chan struct{} // a session the device opened succeeded
	cancel context.CancelFunc
}

// disconnected tells the loop that its device's last connection closed: the push stream
// is stopped and the device redialled after a retry delay, then with backoff.
func (pl *peerLoop) disconnected() {
	select {
	case pl.gone <- struct{}{}:
	default:
	}
}

func (pl *peerLoop) kickNow() {
	select {
	case pl.kick <- struct{}{}:
	default:
	}
}

// servedSession tells the loop that a session the device opened succeeded. A session
// moves what each side lacks both ways, so the loop's own planned attempt (a retry after
// the device went away, most often) is not needed now: the next one comes after the
// anti-entropy interval. Without this, a device that reconnected had two sessions, its
// own and then this side's retry.
func (pl *peerLoop) servedSession() {
	select {
	case pl.served <- struct{}{}:
	default:
	}
}

func (pl *peerLoop) ensurePush(from uint64) {
	select {
	case pl.push <- from:
	default:
	}
}

// reconcilePeersLocked starts a loop in r for every current device and stops the loops of
// devices that were removed. n.mu is held.
func (n *Node) reconcilePeersLocked(r *netRun) {
	if n.manual {
		return
	}
	for p := range n.devices.Load().byPeer {
		if _, ok := n.isMember(p); !ok || r.peers[p] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(r.ctx)
		pl := &peerLoop{p: p, kick: make(chan struct{}, 1), push: make(chan uint64, 1), gone: make(chan struct{}, 1), direct: make(chan struct{}, 1), served: make(chan struct{}, 1), cancel: cancel}
		r.peers[p] = pl
		r.wg.Add(1)
		go func() { defer r.wg.Done(); n.runPeer(ctx, r.host, pl) }()
		if r.holePunch != nil {
			r.wg.Add(1)
			go func() { defer r.wg.Done(); n.directLoop(ctx, r, pl) }()
		}
	}
	for p, pl := range r.peers {
		if _, ok := n.isMember(p); !ok {
			pl.cancel()
			delete(r.peers, p)
			n.track.removed(p)
		}
	}
}

// jitter returns d scaled by a random factor in [1-f, 1+f].
func jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*rand.Float64()))
}

func (n *Node) runPeer(ctx context.Context, h host.Host, pl *peerLoop) {
	var pushDone chan error
	var pushCancel context.CancelFunc
	var pushRelayed bool // the push stream runs over a relayed connection
	stopPush := func() {
		if pushCancel != nil {
			pushCancel()
			<-pushDone
			pushDone, pushCancel = nil, nil
		}
	}
	defer stopPush()
	startPush := func(from uint64) {
		ok, limited := n.canBulk(pl.p)
		if pushDone != nil || !ok {
			return
		}
		pushRelayed = limited
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		pushDone, pushCancel = done, cancel
		go func() { done <- n.pushTo(pctx, pl.p, from) }()
	}
	var backoff time.Duration
	timer := time.NewTimer(jitter(100*time.Millisecond, 0.5))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pl.kick:
			if pushRelayed && hasDirect(h.Network(), pl.p) {
				// The path turned direct (direct.go): the session that follows starts
				// the push stream again, over the direct connection.
				stopPush()
			}
		case <-timer.C:
		case <-pl.gone:
			stopPush()
			// Redial after a retry delay, not at once: a device that went away because
			// it restarted dials us as it comes back, and two dials at the same moment
			// between two fixed ports (libp2p dials TCP from its listen port) are one
			// TCP simultaneous open that both sides take for their own outbound
			// connection: the Noise handshake fails on both, and libp2p's dial backoff
			// then held the returning device up for seconds (7–9 s seen in the bench,
			// where the reconnecting device keeps its port).
			timer.Reset(jitter(n.cfg.RetryMin, 0.5))
			continue
		case from := <-pl.push:
			startPush(from)
			continue
		case <-pl.served:
			backoff = 0
			if h.Network().Connectedness(pl.p) != network.Connected {
				// The device left after its session: a notice that arrives after the
				// loss of its connection must not put off the redial by the
				// anti-entropy interval (the device would show its last error for
				// minutes instead of Offline).
				timer.Reset(jitter(n.cfg.RetryMin, 0.5))
				continue
			}
			timer.Reset(jitter(n.cfg.AntiEntropy, 0.25))
			continue
		case err := <-pushDone:
			pushCancel()
			pushDone, pushCancel = nil, nil
			if ctx.Err() != nil {
				return
			}
			n.log.Debug("push stream ended", "to", shortID(pl.p), "err", err)
			timer.Reset(jitter(n.cfg.RetryMin, 0.5))
			continue
		}
		derr := n.dial(ctx, h, pl, startPush)
		if ctx.Err() != nil {
			return
		}
		next, res, err := time.Duration(0), (*sessionResult)(nil), derr
		if derr == nil {
			next, res, err = n.attempt(ctx, h, pl.p, startPush)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			backoff = min(max(2*backoff, n.cfg.RetryMin), n.cfg.RetryMax)
			next = jitter(backoff, 0.5)
			at := n.cfg.Now().Add(next)
			var de *dialError
			if errors.As(err, &de) {
				n.log.Debug("dial failed", "to", shortID(pl.p), "err", err, "retry", next)
				n.track.offline(pl.p, de.err, at)
			} else {
				n.track.sessionEnd(pl.p, res, err, at)
				n.log.Info("sync failed", "with", shortID(pl.p), "err", err, "retry", next)
			}
		} else {
			backoff = 0
		}
		timer.Reset(next)
	}
}

// dialError is a failed dial: the device is offline rather than in error.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dial connects to pl's device unless a connection is up. While it dials, the loop
// still starts the push stream an inbound session asks for: a device that just came back
// on a new address (a daemon started after `meshsync join`) dials us first, and the dial
// to its old addresses (a QUIC handshake to a closed port times out after seconds) must
// not hold up the push of our next change. Such a connection also ends the dial.
func (n *Node) dial(ctx context.Context, h host.Host, pl *peerLoop, startPush func(uint64)) error {
	if h.Network().Connectedness(pl.p) == network.Connected {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, min(n.cfg.StepTimeout, 15*time.Second))
	defer cancel()
	dialed := make(chan error, 1)
	go func() { dialed <- h.Connect(dctx, peer.AddrInfo{ID: pl.p}) }()
	for {
		select {
		case err := <-dialed:
			if err != nil && h.Network().Connectedness(pl.p) != network.Connected {
				return &dialError{err}
			}
			return nil
		case from := <-pl.push:
			startPush(from)
			if h.Network().Connectedness(pl.p) == network.Connected {
				cancel() // the device reached us: its connection serves
			}
		}
	}
}

// attempt dials p if needed and runs one session. It returns the delay before the next
// planned attempt on success; on failure the caller reports the state with the time of
// the retry it plans.
func (n *Node) attempt(ctx context.Context, h host.Host, p peer.ID, startPush func(uint64)) (time.Duration, *sessionResult, error) {
	next := jitter(n.cfg.AntiEntropy, 0.25)
	if h.Network().Connectedness(p) != network.Connected {
		dctx, cancel := context.WithTimeout(ctx, min(n.cfg.StepTimeout, 15*time.Second))
		err := h.Connect(dctx, peer.AddrInfo{ID: p})
		cancel()
		if err != nil {
			return 0, nil, &dialError{err}
		}
	}
	// No data over a public relay's limited connection: wait for hole punching.
	if err := n.awaitDataPath(ctx, p); err != nil {
		return 0, nil, err
	}
	// Not beside a session the device opened with this one (gate.go): after it, and not at
	// all when it synced both ways (it recorded its outcome and started the push stream).
	served, err := n.serving.wait(ctx, p)
	if err != nil {
		return 0, nil, err
	}
	if served {
		return next, nil, nil
	}
	n.track.sessionStart(p)
	res, err := n.syncWith(ctx, p)
	if err != nil {
		return 0, res, err
	}
	n.track.sessionEnd(p, res, nil, time.Time{})
	n.log.Debug("synced", "with", shortID(p), "mode", res.Mode, "sent", res.Sent, "received", res.Received, "took", res.Duration)
	startPush(res.MyLastSeq)
	n.afterSession(ctx, p)
	return next, res, nil
}

// feedLoop watches the store's change feed (n.feed, subscribed at Open): a changed device
// list reloads the gate and the device loops; a record whose conflict closed leaves the
// conflict counts. What changed while the network was down waits in the subscription
// and is handled when the next run's feedLoop starts.
func (n *Node) feedLoop(ctx context.Context) {
	sub := n.feed
	var reload <-chan time.Time // a conflict listing is due
	if sub.Missed() != n.feedMissed {
		// Changes overflowed the subscription while the network was down.
		n.feedMissed = sub.Missed()
		if err := n.devicesChanged(); err != nil && !errors.Is(err, ErrClosed) {
			n.log.Warn("reload device list", "err", err)
		}
		reload = time.After(0)
	}
	for {
		var batch []changeInfo
		select {
		case <-ctx.Done():
			if reload != nil {
				n.track.reloadConflicts() // the listing was due: do not lose it to a Stop
			}
			return
		case <-reload:
			reload = nil
			n.track.reloadConflicts()
			continue
		case c, ok := <-sub.C:
			if !ok {
				return
			}
			batch = append(batch, changeInfo{membershipChange(c.Collection), c.ID.String(), c.Conflict})
		}
		for len(sub.C) > 0 {
			c, ok := <-sub.C
			if !ok {
				break
			}
			batch = append(batch, changeInfo{membershipChange(c.Collection), c.ID.String(), c.Conflict})
		}
		devs, lost := false, false
		if m := sub.Missed(); m != n.feedMissed {
			n.feedMissed, devs, lost = m, true, true
		}
		var closed []string
		for _, c := range batch {
			devs = devs || c.devices
			if !c.conflict {
				closed = append(closed, c.id)
			}
		}
		members := n.devices.Load().membership()
		if devs {
			if err := n.devicesChanged(); err != nil && !errors.Is(err, ErrClosed) {
				n.log.Warn("reload device list", "err", err)
			}
		}
		if len(closed) > 0 {
			n.track.conflictsClosed(closed)
		}
		// Listing the conflicts reads the whole record index: only when changes were missed or
		// a device came or went, not when a device record changed its addresses (every
		// reconnect on a new port does), which made each reconnect cost O(records). A bulk
		// transfer misses changes at every batch: one listing per conflictReload at most.
		if (lost || devs && n.devices.Load().membership() != members) && reload == nil {
			reload = time.After(conflictReload)
		}
	}
}

// conflictReload is how long after missed changes the open conflicts are listed again
// from the store (a listing reads the whole record index).
const conflictReload = 2 * time.Second

type changeInfo struct {
	devices  bool
	id       string
	conflict bool
}
