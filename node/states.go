package node

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Status is the sync state of a device, or of the node overall.
type Status string

// The sync states.
const (
	// StatusOffline: the device cannot be reached now; NextRetry says when it is tried again.
	StatusOffline Status = "offline"
	// StatusSyncing: a session with the device is running.
	StatusSyncing Status = "syncing"
	// StatusConflict: in sync, but records received from the device have open conflicts.
	StatusConflict Status = "conflict"
	// StatusUpToDate: the last session succeeded and pushes flow.
	StatusUpToDate Status = "up-to-date"
	// StatusError: the last session failed; Reason says why and NextRetry when it is retried.
	StatusError Status = "error"
)

// DeviceState is where this node stands with one other device.
type DeviceState struct {
	DeviceID  string    `json:"device_id"`
	PeerID    peer.ID   `json:"peer_id"`
	Name      string    `json:"name"`
	Status    Status    `json:"status"`
	Reason    string    `json:"reason,omitempty"`
	NextRetry time.Time `json:"next_retry,omitzero"`
	// Connected reports a live connection; Relayed that it goes through a relay
	// (limited) rather than directly.
	Connected bool `json:"connected"`
	Relayed   bool `json:"relayed"`
	// Addr is the last address a dial to the device succeeded on.
	Addr     string    `json:"addr,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	LastSync time.Time `json:"last_sync,omitzero"`
	// PendingIn and PendingOut estimate the envelopes still to receive from and send to the
	// device, counted in store sequence numbers (an upper bound); -1 when unknown.
	PendingIn  int64 `json:"pending_in"`
	PendingOut int64 `json:"pending_out"`
	// Conflicts counts open conflicts on records received from the device.
	Conflicts int `json:"conflicts"`
	// Changed is when Status last changed.
	Changed time.Time `json:"changed,omitzero"`
}

// States is the node's view of every other device.
type States struct {
	Overall   Status        `json:"overall"`
	Devices   []DeviceState `json:"devices"`
	Conflicts int           `json:"conflicts"` // open conflicts seen by this node since it started
	Refused   uint64        `json:"refused"`   // connections refused by the gate since start
}

// StateEvent is one change of a device's state.
type StateEvent struct {
	Device  DeviceState `json:"device"`
	Overall Status      `json:"overall"`
}

// StateSubscription delivers StateEvents. A subscriber that falls more than its buffer
// behind misses events (Missed grows) and should call States.
type StateSubscription struct {
	C      <-chan StateEvent
	c      chan StateEvent
	missed atomic.Uint64
	t      *tracker
	once   sync.Once
}

// Missed counts events dropped because C was full.
func (s *StateSubscription) Missed() uint64 { return s.missed.Load() }

// Close stops delivery and closes C.
func (s *StateSubscription) Close() {
	s.once.Do(func() {
		s.t.subMu.Lock()
		delete(s.t.subs, s)
		s.t.subMu.Unlock()
		close(s.c)
	})
}

// States returns the current state of every other device and the overall state.
func (n *Node) States() States { return n.track.snapshot() }

// SubscribeStates returns a subscription to state changes with room for buffer events.
func (n *Node) SubscribeStates(buffer int) *StateSubscription { return n.track.subscribe(buffer) }

// tracker owns the sync states: one goroutine applies every update in order, persists
// the last state of each device and tells subscribers.
type tracker struct {
	n       *Node
	ops     chan func()
	done    chan struct{}
	refusal atomic.Uint64

	// owned by the run goroutine
	states    map[peer.ID]*DeviceState
	attempts  map[peer.ID]attempt
	conflicts map[string]peer.ID
	dirty     map[peer.ID]bool

	subMu sync.Mutex
	subs  map[*StateSubscription]struct{}
}

type attempt struct {
	at  time.Time
	err error
}

func newTracker(n *Node) *tracker {
	return &tracker{
		n: n, ops: make(chan func(), 256), done: make(chan struct{}),
		states: map[peer.ID]*DeviceState{}, attempts: map[peer.ID]attempt{},
		conflicts: map[string]peer.ID{}, dirty: map[peer.ID]bool{},
		subs: map[*StateSubscription]struct{}{},
	}
}

func (t *tracker) run(ctx context.Context) {
	defer func() {
		close(t.done)
		t.persist()
		t.subMu.Lock()
		for s := range t.subs {
			s.once.Do(func() { close(s.c) })
		}
		t.subs = nil
		t.subMu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case op := <-t.ops:
			op()
		}
	}
}

// do runs fn on the tracker goroutine; after Close it does nothing.
func (t *tracker) do(fn func()) {
	select {
	case t.ops <- fn:
	case <-t.done:
	}
}

// call runs fn on the tracker goroutine and waits for it; it reports false after Close.
func (t *tracker) call(fn func()) bool {
	ran := make(chan struct{})
	t.do(func() { fn(); close(ran) })
	select {
	case <-ran:
		return true
	case <-t.done:
		return false
	}
}

func stateName(id string) string { return "state/" + id }

// state returns p's entry, loading its last persisted state the first time.
func (t *tracker) state(p peer.ID) *DeviceState {
	if s, ok := t.states[p]; ok {
		return s
	}
	d, _ := t.n.devices.Load().byPeer[p]
	s := &DeviceState{DeviceID: d.ID, PeerID: p, Name: d.Name, Status: StatusOffline, PendingIn: -1, PendingOut: -1}
	if d.ID != "" {
		var saved DeviceState
		if ok, err := t.n.st.GetLocal(stateName(d.ID), &saved); err == nil && ok && saved.PeerID == p {
			*s = saved
			s.Connected = false
		}
	}
	s.Name = d.Name
	t.states[p] = s
	return s
}

// update applies fn to p's state and tells subscribers; a status change is persisted.
func (t *tracker) update(p peer.ID, fn func(s *DeviceState)) {
	s := t.state(p)
	before := s.Status
	fn(s)
	if s.Status != before {
		s.Changed = t.n.cfg.Now().UTC()
		t.dirty[p] = true
	}
	if t.dirty[p] {
		t.persistOne(p)
	}
	ev := StateEvent{Device: *s, Overall: t.overall()}
	t.subMu.Lock()
	for sub := range t.subs {
		select {
		case sub.c <- ev:
		default:
			sub.missed.Add(1)
		}
	}
	t.subMu.Unlock()
}

func (t *tracker) persistOne(p peer.ID) {
	s := t.states[p]
	if s == nil || s.DeviceID == "" {
		return
	}
	if err := t.n.st.PutLocal(stateName(s.DeviceID), s); err == nil {
		delete(t.dirty, p)
	}
}

func (t *tracker) persist() {
	for p := range t.states {
		t.persistOne(p)
	}
}

func (t *tracker) overall() Status {
	var any, up, errs bool
	for p, s := range t.states {
		if _, ok := t.n.isMember(p); !ok {
			continue
		}
		any = true
		switch s.Status {
		case StatusSyncing:
			return StatusSyncing
		case StatusError:
			errs = true
		case StatusUpToDate, StatusConflict:
			up = true
		}
	}
	switch {
	case len(t.conflicts) > 0:
		return StatusConflict
	case errs:
		return StatusError
	case up || !any && len(t.n.devices.Load().byPeer) <= 1:
		return StatusUpToDate
	}
	return StatusOffline
}

func (t *tracker) conflictCount(p peer.ID) int {
	c := 0
	for _, q := range t.conflicts {
		if q == p {
			c++
		}
	}
	return c
}

func (t *tracker) settled(s *DeviceState) {
	if s.Conflicts = t.conflictCount(s.PeerID); s.Conflicts > 0 {
		s.Status = StatusConflict
	} else {
		s.Status = StatusUpToDate
	}
	s.Reason, s.NextRetry = "", time.Time{}
}

func (t *tracker) connected(p peer.ID, dir network.Direction, addr ma.Multiaddr, limited bool) {
	now := t.n.cfg.Now().UTC()
	t.do(func() {
		t.update(p, func(s *DeviceState) {
			s.Connected, s.LastSeen = true, now
			s.Relayed = limited || isRelayed(addr)
			if dir == network.DirOutbound && addr != nil && !s.Relayed && s.Addr != addr.String() {
				s.Addr = addr.String()
				t.dirty[p] = true
			}
		})
	})
}

func (t *tracker) disconnected(p peer.ID) {
	now := t.n.cfg.Now().UTC()
	t.do(func() {
		t.update(p, func(s *DeviceState) {
			s.Connected, s.LastSeen = false, now
			if s.Status != StatusError {
				s.Status = StatusOffline
			}
		})
	})
}

func (t *tracker) offline(p peer.ID, err error, next time.Time) {
	now := t.n.cfg.Now()
	t.do(func() {
		t.attempts[p] = attempt{at: now, err: err}
		t.update(p, func(s *DeviceState) {
			s.Status, s.Reason, s.NextRetry, s.Connected = StatusOffline, err.Error(), next.UTC(), false
		})
	})
}

func (t *tracker) sessionStart(p peer.ID) {
	t.do(func() {
		t.update(p, func(s *DeviceState) { s.Status = StatusSyncing })
	})
}

func (t *tracker) sessionEnd(p peer.ID, res *sessionResult, err error, next time.Time) {
	now := t.n.cfg.Now()
	t.do(func() {
		t.attempts[p] = attempt{at: now, err: err}
		if res != nil {
			for _, id := range res.Conflicts {
				t.conflicts[id.String()] = p
			}
		}
		t.update(p, func(s *DeviceState) {
			s.LastSeen = now.UTC()
			if err != nil {
				s.Status, s.Reason, s.NextRetry = StatusError, err.Error(), next.UTC()
				return
			}
			s.LastSync = now.UTC()
			s.PendingIn, s.PendingOut = 0, 0
			t.settled(s)
			t.dirty[p] = true
		})
	})
}

func (t *tracker) pushed(p peer.ID, acked, upto uint64) {
	t.do(func() {
		t.update(p, func(s *DeviceState) {
			s.PendingOut = int64(upto - min(acked, upto))
			s.LastSeen = t.n.cfg.Now().UTC()
		})
	})
}

func (t *tracker) received(p peer.ID, applied int, conflicts []string) {
	now := t.n.cfg.Now().UTC()
	t.do(func() {
		for _, id := range conflicts {
			t.conflicts[id] = p
		}
		t.update(p, func(s *DeviceState) {
			s.LastSeen, s.LastSync = now, now
			if s.Status != StatusSyncing {
				t.settled(s)
			}
		})
	})
}

func (t *tracker) conflictsClosed(ids []string) {
	t.do(func() {
		touched := map[peer.ID]bool{}
		for _, id := range ids {
			if p, ok := t.conflicts[id]; ok {
				delete(t.conflicts, id)
				touched[p] = true
			}
		}
		for p := range touched {
			t.update(p, func(s *DeviceState) {
				if s.Status == StatusConflict || s.Status == StatusUpToDate {
					t.settled(s)
				}
			})
		}
	})
}

func (t *tracker) removed(p peer.ID) {
	t.do(func() {
		delete(t.states, p)
		delete(t.attempts, p)
	})
}

func (t *tracker) refused() { t.refusal.Add(1) }

// rememberedAddrs returns the last working address of every device, from the persisted
// states.
func (t *tracker) rememberedAddrs() map[peer.ID][]string {
	out := map[peer.ID][]string{}
	t.call(func() {
		for p := range t.n.devices.Load().byPeer {
			if p == t.n.id {
				continue
			}
			if s := t.state(p); s.Addr != "" {
				out[p] = []string{s.Addr}
			}
		}
	})
	return out
}

// attemptsSince reports whether every current device has finished an attempt (dial or
// session) since t0, and names the devices whose last attempt failed.
func (t *tracker) attemptsSince(t0 time.Time) (done bool, failed []string) {
	done = true
	t.call(func() {
		for p, d := range t.n.devices.Load().byPeer {
			if _, ok := t.n.isMember(p); !ok {
				continue
			}
			a, ok := t.attempts[p]
			if !ok || a.at.Before(t0) {
				done = false
				return
			}
			if a.err != nil {
				failed = append(failed, d.Name+" ("+a.err.Error()+")")
			}
		}
	})
	slices.Sort(failed)
	return done, failed
}

func (t *tracker) snapshot() States {
	var out States
	ok := t.call(func() {
		for p := range t.n.devices.Load().byPeer {
			if _, ok := t.n.isMember(p); ok {
				out.Devices = append(out.Devices, *t.state(p))
			}
		}
		out.Overall = t.overall()
		out.Conflicts = len(t.conflicts)
	})
	if !ok {
		out.Overall = StatusOffline
	}
	out.Refused = t.refusal.Load()
	slices.SortFunc(out.Devices, func(a, b DeviceState) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		if a.DeviceID < b.DeviceID {
			return -1
		}
		return 1
	})
	return out
}

func (t *tracker) subscribe(buffer int) *StateSubscription {
	if buffer <= 0 {
		buffer = 64
	}
	c := make(chan StateEvent, buffer)
	s := &StateSubscription{C: c, c: c, t: t}
	t.subMu.Lock()
	defer t.subMu.Unlock()
	if t.subs == nil {
		s.once.Do(func() { close(c) })
		return s
	}
	t.subs[s] = struct{}{}
	return s
}
