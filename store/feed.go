package store

import (
	"sync"
	"sync/atomic"
)

// Subscription delivers record changes after they commit. It owns no goroutine: changes
// are handed over by the committing writer without blocking it. A subscriber that falls
// more than its buffer behind misses changes and sees Missed grow; it should then re-read
// what it shows.
type Subscription struct {
	// C receives changes; it is closed by Close or when the store closes.
	C      <-chan Change
	c      chan Change
	missed atomic.Uint64
	f      *feed
	once   sync.Once
}

// Missed counts the changes dropped because C was full.
func (s *Subscription) Missed() uint64 { return s.missed.Load() }

// Close stops delivery and closes C. It is safe to call more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.f.mu.Lock()
		delete(s.f.subs, s)
		s.f.mu.Unlock()
		close(s.c)
	})
}

type feed struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Subscribe returns a subscription with room for buffer pending changes (default 256).
func (s *Store) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = 256
	}
	c := make(chan Change, buffer)
	sub := &Subscription{C: c, c: c, f: &s.feed}
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	if s.feed.closed {
		sub.once.Do(func() { close(c) })
		return sub
	}
	if s.feed.subs == nil {
		s.feed.subs = map[*Subscription]struct{}{}
	}
	s.feed.subs[sub] = struct{}{}
	return sub
}

func (f *feed) publish(changes []Change) {
	if len(changes) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs {
		for _, c := range changes {
			select {
			case sub.c <- c:
			default:
				sub.missed.Add(1)
			}
		}
	}
}

func (f *feed) closeAll() {
	f.mu.Lock()
	subs := f.subs
	f.subs = nil
	f.closed = true
	f.mu.Unlock()
	for sub := range subs {
		sub.once.Do(func() { close(sub.c) })
	}
}
