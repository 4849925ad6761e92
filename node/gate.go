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
// whole initial sync a second time, doubling its time. The loop's session follows once
// the served one ended, and finds nothing left to send.
//
// Two sessions opened at the same moment, before either side saw the other's, still
// both run: neither can tell in time, and refusing one would show as an error.
type sessionGate struct {
	mu      sync.Mutex
	serving map[peer.ID]*servedSessions
}

type servedSessions struct {
	n    int
	idle chan struct{} // closed when n returns to 0
}

// serve counts a session p opened and returns what ends it.
func (g *sessionGate) serve(p peer.ID) (end func()) {
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
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if s.n--; s.n == 0 {
				close(s.idle)
				delete(g.serving, p)
			}
		})
	}
}

// wait returns once no session p opened is being served, or with ctx's error.
func (g *sessionGate) wait(ctx context.Context, p peer.ID) error {
	for {
		g.mu.Lock()
		s := g.serving[p]
		g.mu.Unlock()
		if s == nil {
			return nil
		}
		select {
		case <-s.idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
