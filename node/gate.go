package node

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// sessionGate lets a device loop wait while the device it syncs with is being served a
// session it opened itself. A session syncs both ways, so a second one beside it would
// carry the same envelopes again: two devices that meet (a pairing above all) both open a
// session within moments, and the one that starts while the other runs would stream a
// whole initial sync a second time, doubling its time. Once the served one ended well,
// the loop's session is not needed (it would find nothing to send, and show the device
// as syncing once more); after one that failed, it follows.
//
// Two sessions opened at the same moment, before either side saw the other's, still
// both run: neither can tell in time, and refusing one would show as an error.
type sessionGate struct {
	mu      sync.Mutex
	serving map[peer.ID]*servedSessions
}

type servedSessions struct {
	n    int
	ok   bool          // the last of them to end succeeded (read once idle is closed)
	idle chan struct{} // closed when n returns to 0
}

// serve counts a session p opened and returns what ends it, with whether it succeeded.
func (g *sessionGate) serve(p peer.ID) (end func(ok bool)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.serving == nil {
		g.serving = map[peer.ID]*servedSessions{}
	}
	s := g.serving[p]
	if s == nil {
		s = &servedSessions{idle: make(chan struct{})}
		g.serving[p] = s
	}
	s.n++
	var once sync.Once
	return func(ok bool) {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			s.ok = ok
			if s.n--; s.n == 0 {
				close(s.idle)
				delete(g.serving, p)
			}
		})
	}
}

// wait returns once no session p opened is being served, or with ctx's error. served
// reports that it waited for such sessions and the last of them succeeded: that session
// synced both ways, and the push streams carry what was written since.
func (g *sessionGate) wait(ctx context.Context, p peer.ID) (served bool, err error) {
	for {
		g.mu.Lock()
		s := g.serving[p]
		g.mu.Unlock()
		if s == nil {
			return served, nil
		}
		select {
		case <-s.idle:
			served = s.ok
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}
