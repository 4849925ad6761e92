package node

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshsync/meshsync/store"
)

// Bounds on what one device may make this node hold or do (issue 15, finding 5). A
// member, or a blind replica, can still send a lot; it can no longer make the node hold
// more than a few frames and one apply group per allowed session.
//
// What one session holds and receives is bounded in package session: it applies every
// session.DefaultApplyBytes (16 MiB) besides cfg.ApplyBatch envelopes, and the receiving
// pipeline (pipeline.go) holds readAhead frames, the group being gathered and applyAhead+1
// groups with the writer, so one session holds about 50 MiB at most, and ends after
// session.DefaultMaxBytes (2 GiB; a 1M-record initial sync of 1 KiB records carries about
// 1.2 GiB), applying what arrived; the next session continues from there.

// maxInbound is how many streams of one protocol (sync, push) one device may have open
// towards this node at once. A device runs one session and one push stream towards each
// device at a time; the second slot covers a stream that ended on its side while this
// side still reads it. Streams beyond it are reset before anything is read.
const maxInbound = 2

// inboundLimit counts the streams each device holds open per protocol. The zero value is
// ready to use.
type inboundLimit struct {
	mu   sync.Mutex
	open map[inboundKey]int
	// refused counts the streams reset for being over maxInbound.
	refused atomic.Uint64
}

type inboundKey struct {
	p     peer.ID
	proto protocol.ID
}

// acquire takes a slot for a stream of proto from p. When it reports true, the caller
// calls release when the stream ends.
func (l *inboundLimit) acquire(p peer.ID, proto protocol.ID) (release func(), ok bool) {
	k := inboundKey{p, proto}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[k] >= maxInbound {
		l.refused.Add(1)
		return nil, false
	}
	if l.open == nil {
		l.open = map[inboundKey]int{}
	}
	l.open[k]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.open[k]--; l.open[k] <= 0 {
			delete(l.open, k)
		}
	}, true
}

// violations counts the sessions and push streams that ended because the peer broke a
// bound, by reason, since the node started.
type violations struct {
	unasked  atomic.Uint64 // Merkle session: an envelope the reconciliation did not ask for
	claim    atomic.Uint64 // fast path or push: a batch beyond the range the sender claimed
	capped   atomic.Uint64 // the session reached its byte cap (session.DefaultMaxBytes)
	counters atomic.Uint64 // envelopes refused for counters beyond store.MaxCounter
}

// noteRejected counts the envelopes a store refused for their counters.
func (v *violations) noteRejected(rs []store.Rejected) {
	for _, r := range rs {
		if errors.Is(r.Err, store.ErrCounterRange) {
			v.counters.Add(1)
		}
	}
}
