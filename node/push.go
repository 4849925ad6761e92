package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/node/session"
)

// PushProtocol is the libp2p protocol id of a push stream: a long-lived stream from a
// device to each connected device that carries new envelopes as they commit.
//
//	S → R  PushOpen{epoch}
//	S → R  Batch{From, To, envelopes}     R → S  Ack{To, applied}     (repeated)
//
// Batches are in the sender's sequence order, so the receiver advances its progress for
// the sender as it applies them (in the same store transaction); a batch that does not
// start where its progress stands (a gap) is still applied, and the receiver schedules a
// sync session to fill the gap. An idle sender sends a batch without envelopes every
// PushIdle/2 to keep the stream alive; it also carries the ranges that held only
// envelopes the receiver sent (echoes, never sent back). A batch holds at most one
// envelope per number of its range, a device holds at most maxInbound push streams
// towards a node, and an envelope the store refuses (other than for a key not held yet)
// ends the stream.
const PushProtocol = "/meshsync/push/1.0.0"

// pushTo sends this store's new envelopes to p, starting after sequence from, until ctx
// ends or the stream fails.
//
// A range whose envelopes all came from p (echoes) is not sent on its own: the next
// batch covers it (its From stays at what p acknowledged), or the keepalive does.
func (n *Node) pushTo(ctx context.Context, p peer.ID, from uint64) error {
	sub := n.st.Subscribe(1024)
	defer sub.Close()
	h := n.hostNow()
	if h == nil {
		return ErrNotStarted
	}
	s, err := h.NewStream(n.dataCtx(ctx, p), p, PushProtocol)
	if err != nil {
		return fmt.Errorf("open push stream: %w", err)
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	rw := &frameRW{s: s, step: n.cfg.StepTimeout, limit: 64}
	if err := rw.write(wire.TypePushOpen, (&wire.PushOpen{Epoch: n.st.Replication().Epoch()}).Marshal()); err != nil {
		return fmt.Errorf("push open: %w", err)
	}
	keepalive := time.NewTimer(n.cfg.PushIdle / 2)
	defer keepalive.Stop()
	acked, scanned := from, from // what p acknowledged; what this loop has looked at
	send := func(b *wire.Batch) error {
		if err := rw.write(wire.TypeBatch, b.Marshal()); err != nil {
			return fmt.Errorf("push: %w", err)
		}
		ab, err := rw.expect(wire.TypeAck)
		if err != nil {
			return fmt.Errorf("push ack: %w", err)
		}
		ack, err := wire.UnmarshalAck(ab)
		if err != nil || ack.To != b.To {
			return fmt.Errorf("%w: bad push ack", ErrProtocol)
		}
		acked = b.To
		keepalive.Reset(n.cfg.PushIdle / 2)
		return nil
	}
	for {
		upto, err := n.st.Replication().LastSeq()
		if err != nil {
			return err
		}
		if upto <= scanned {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case _, ok := <-sub.C:
				if !ok {
					return ErrClosed
				}
			case <-keepalive.C:
				if err := send(&wire.Batch{From: acked, To: scanned}); err != nil {
					return err
				}
				continue
			}
			if n.cfg.PushDelay > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(n.cfg.PushDelay):
				}
			}
			for len(sub.C) > 0 {
				<-sub.C
			}
			continue
		}
		envs, last, err := session.Collect(storeSource{st: n.st}, scanned, upto, n.progress.pushFilter(p))
		if err != nil {
			return err
		}
		if last == scanned {
			last = upto // everything in between was superseded by later envelopes
		}
		scanned = last
		if len(envs) > 0 {
			if err := send(&wire.Batch{From: acked, To: last, Envelopes: envs}); err != nil {
				return err
			}
		} // else echoes only: p has them
		n.track.pushed(p, scanned)
	}
}

// handlePush receives a push stream from another device.
func (n *Node) handlePush(s network.Stream) {
	p, r, done, ok := n.admit(s, "push", PushProtocol)
	if !ok {
		return
	}
	defer done()
	stop := context.AfterFunc(r.ctx, func() { s.Reset() })
	defer stop()
	if err := n.receivePush(s, p); err != nil {
		n.log.Debug("push stream ended", "from", shortID(p), "err", err)
		s.Reset()
		return
	}
	s.Close()
}

func (n *Node) receivePush(s network.Stream, p peer.ID) error {
	rw := &frameRW{s: s, step: n.cfg.StepTimeout, limit: wire.MaxFrame}
	b, err := rw.expect(wire.TypePushOpen)
	if err != nil {
		return err
	}
	open, err := wire.UnmarshalPushOpen(b)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	for {
		// A push stream may stay idle for long; the whole frame must still arrive in time.
		rw.step = n.cfg.PushIdle
		b, err := rw.expect(wire.TypeBatch)
		if err != nil {
			return err
		}
		rw.step = n.cfg.StepTimeout
		batch, err := wire.UnmarshalBatch(b)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		// A batch holds at most one envelope per sequence number of its range.
		if uint64(len(batch.Envelopes)) > batch.To-batch.From {
			n.bounded.claim.Add(1)
			return fmt.Errorf("%w: push batch (%d, %d] of %d envelopes", ErrProtocol, batch.From, batch.To, len(batch.Envelopes))
		}
		applied := 0
		var conflicts []string
		var pr *progress
		if batch.To > batch.From {
			next, ok := n.progress.planRange(p, open.Epoch, batch.From, batch.To)
			if ok {
				pr = &next
			} else {
				n.kick(p) // a gap: a session fills it
			}
		}
		if len(batch.Envelopes) > 0 {
			ar, err := n.applyFrom(p, n.st.Replication().Prepare(batch.Envelopes, 1), pr, false)
			if err != nil {
				return err
			}
			n.bounded.noteRejected(ar.Rejected)
			switch rc := rejections(ar.Rejected); {
			case rc.bad > 0:
				return fmt.Errorf("%w: %d pushed envelopes refused", ErrProtocol, rc.bad)
			case rc.later > 0:
				n.kick(p) // envelopes under a key this device does not hold yet: a session fetches them again
			}
			applied = ar.Added
			for _, c := range ar.Changes {
				if c.Conflict {
					conflicts = append(conflicts, c.ID.String())
				}
			}
			n.track.received(p, batch.To, conflicts)
		} else if pr != nil {
			n.progress.set(p, *pr, false) // echoes only: written with the next transaction
		}
		if err := rw.write(wire.TypeAck, (&wire.Ack{To: batch.To, Applied: uint64(applied)}).Marshal()); err != nil {
			return err
		}
	}
}

// peerDisconnected tells p's device loop that its last connection closed.
func (n *Node) peerDisconnected(p peer.ID) {
	if pl := n.peerLoop(p); pl != nil {
		pl.disconnected()
	}
}

// kick asks p's device loop to sync soon.
func (n *Node) kick(p peer.ID) {
	if pl := n.peerLoop(p); pl != nil {
		pl.kickNow()
	}
}

// peerLoop is p's device loop in the running network, if any.
func (n *Node) peerLoop(p peer.ID) *peerLoop {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.net.Load(); r != nil {
		return r.peers[p]
	}
	return nil
}
