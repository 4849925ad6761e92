package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/meshsync/meshsync/store"
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
	// Direct is, while the device is reached only through a relay, how this device tries
	// to make the path direct (hole punching): the state, the failed attempts, the last
	// error and the next attempt. Nil otherwise.
	Direct *DirectTry `json:"direct,omitempty"`
	// Addr is the last address a dial to the device succeeded on.
	Addr     string    `json:"addr,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	LastSync time.Time `json:"last_sync,omitzero"`
	// PendingIn and PendingOut estimate the envelopes still to receive from and send to the
	// device, counted in store sequence numbers (an upper bound: a record written twice
	// counts twice); -1 when unknown (no session with the device since this node started).
	PendingIn  int64 `json:"pending_in"`
	PendingOut int64 `json:"pending_out"`
	// Conflicts counts the open conflicts (store.Conflicts) that involve the device: it
	// wrote one of the concurrent versions or sent one of them.
	Conflicts int `json:"conflicts"`
	// Changed is when Status last changed.
	Changed time.Time `json:"changed,omitzero"`
	// InitialSync is how far a session that brings this device everything the other one
	// holds has come (a first sync, or one after a long absence), while it runs.
	InitialSync *InitialSync `json:"initial_sync,omitempty"`
}

// InitialSync is the progress of a session in which this device receives a device's whole
// store: Received envelopes applied so far of about Total (the other device's record
// count; a record with open conflicts holds several envelopes, so Received may pass it).
type InitialSync struct {
	Received int64     `json:"received"`
	Total    int64     `json:"total"`
	Started  time.Time `json:"started"`
}

// States is the node's status snapshot: this device, where it stands with every other
// device, and health warnings. It is what `meshsync status` shows; its JSON field names
// are a stable schema (fields may be added, none renamed).
type States struct {
	// DeviceID, Name and PeerID identify this device.
	DeviceID string  `json:"device_id"`
	Name     string  `json:"name"`
	PeerID   peer.ID `json:"peer_id"`
	// Overall sums up the devices: Syncing while any session runs, then Conflict while
	// conflicts are open, Error when a device's last session failed, UpToDate when at
	// least one device is in sync (or this is the only device), Offline otherwise.
	Overall Status `json:"overall"`
	// Devices lists every other current device, sorted by name.
	Devices []DeviceState `json:"devices"`
	// Conflicts counts the records with concurrent versions (store.Conflicts).
	Conflicts int `json:"conflicts"`
	// ClockSkew is how far ahead of this device's clock a remote clock was seen, beyond
	// the store's bound (0 when none; see store.Store.ClockSkew).
	ClockSkew time.Duration `json:"clock_skew_ns,omitempty"`
	// Refused counts connections refused by the gate since the node started.
	Refused uint64 `json:"refused"`
	// Warnings are the health problems a person should know about, worst first.
	Warnings []Warning `json:"warnings,omitempty"`
	// FullResync is the last full resync of this device (after an absence longer than
	// the mesh keeps tombstones), while it is less than a week old.
	FullResync *FullResync `json:"full_resync,omitempty"`
	// Invite is this device's latest invite while wrong codes were tried against it, and
	// for an hour after it closed.
	Invite *InviteState `json:"invite,omitempty"`
}

// Warning is one health problem of a node.
type Warning struct {
	Kind    string `json:"kind"` // one of the Warn… constants
	Message string `json:"message"`
}

// Kinds of Warning.
const (
	// WarnConflicts: records have open conflicts (list them with store.Conflicts, or
	// `meshsync conflicts`).
	WarnConflicts = "conflicts"
	// WarnClockSkew: another device's clock runs ahead of this one beyond the bound.
	WarnClockSkew = "clock_skew"
	// WarnSyncError: the last session with a device failed.
	WarnSyncError = "sync_error"
	// WarnFullResync: this device was away longer than the mesh keeps tombstones and
	// resynced fully from another device (see States.FullResync).
	WarnFullResync = "full_resync"
	// WarnInviteFailures: wrong codes were tried against this device's invite (shown
	// for an hour after it closed); after MaxInviteFailures the invite closed.
	WarnInviteFailures = "invite_failures"
)

// StateEvent is one change of a device's state.
type StateEvent struct {
	Device  DeviceState `json:"device"`
	Overall Status      `json:"overall"`
	// Note tells of something that happened with the device beyond a state change,
	// such as "full resync after 91 days away".
	Note string `json:"note,omitempty"`
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
	states     map[peer.ID]*DeviceState
	attempts   map[peer.ID]attempt
	conflicts  map[string][]peer.ID // open conflicts → the other devices involved
	seqs       map[peer.ID]*seqInfo
	dirty      map[peer.ID]bool    // changed since persisted (written by flush, urgent or Close)
	urgent     bool                // a dirty state must be written now (a new address)
	flushArmed bool                // flush is running
	flush      *time.Timer         // armed while a state is dirty: fires stateFlushDelay later
	held       map[string]heldMark // what each device holds of this store (held.go)
	heldDirty  bool                // held changed since it was persisted
	note       string              // the Note of the events update sends (fullResync)

	subMu sync.Mutex
	subs  map[*StateSubscription]struct{}
}

type attempt struct {
	at  time.Time
	err error
}

// seqInfo is what the tracker knows of the sequence numbers exchanged with a device since
// the node started, for the pending estimates.
type seqInfo struct {
	sent, theirs           uint64 // our sequence the device holds; the device's last sequence
	sentKnown, theirsKnown bool
}

func newTracker(n *Node) *tracker {
	return &tracker{
		n: n, ops: make(chan func(), 256), done: make(chan struct{}),
		states: map[peer.ID]*DeviceState{}, attempts: map[peer.ID]attempt{},
		conflicts: map[string][]peer.ID{}, seqs: map[peer.ID]*seqInfo{}, dirty: map[peer.ID]bool{},
		subs: map[*StateSubscription]struct{}{}, flush: stoppedTimer(),
	}
}

// stoppedTimer is a timer that has not been started.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// stateFlushDelay is how long a changed state may stay in memory only. A session's
// status changes (Offline, Syncing, UpToDate), its times and the held marks are written
// together this long after the first of them, and at Close, not one commit each: a
// reconnect with nothing to send then writes nothing while it runs. What a crash loses
// this way is harmless: the states after a restart start from an older last sync, last
// seen and status (a session follows the start at once and corrects them), and older held
// marks make narrowing the scope refuse more (held.go), never less. A new remembered
// address is written at once (urgent): the next start dials it.
const stateFlushDelay = 30 * time.Second

func (t *tracker) run(ctx context.Context) {
	t.loadConflicts("", nil)
	defer func() {
		close(t.done)
		t.flush.Stop()
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
		case <-t.flush.C:
			t.persist()
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
		if ok, err := t.n.st.Local().Get(stateName(d.ID), &saved); err == nil && ok && saved.PeerID == p {
			*s = saved
			s.Connected, s.Direct = false, nil
			if s.Status == StatusSyncing { // the session ended with the process
				s.Status = StatusOffline
			}
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
	switch {
	case t.dirty[p] && t.urgent:
		t.urgent = false
		t.persist()
	case len(t.dirty) > 0 || t.heldDirty:
		t.armFlush()
	}
	if last, err := t.n.st.Replication().LastSeq(); err == nil {
		t.fillPending(s, last)
	}
	ev := StateEvent{Device: *s, Overall: t.overall(), Note: t.note}
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

// persist writes every dirty state, with the held marks, in one commit.
func (t *tracker) persist() {
	values := map[string]any{}
	for p := range t.dirty {
		if s := t.states[p]; s != nil && s.DeviceID != "" {
			values[stateName(s.DeviceID)] = s
		}
	}
	if t.heldDirty {
		values[heldName] = t.held
	}
	if len(values) > 0 {
		if err := t.n.st.Local().PutAll(values); err != nil {
			t.armFlush() // try again later (a closed store: Close gives up)
			return
		}
	}
	clear(t.dirty)
	t.heldDirty = false
	t.flushArmed = false
}

// persistHeld persists the held marks now when they changed (with the dirty states, in
// the same commit): when the network stops, a store read without a running node
// (Holders) sees what the devices hold. Unchanged marks write nothing.
func (t *tracker) persistHeld() {
	t.call(func() {
		if t.heldDirty {
			t.persist()
		}
	})
}

// armFlush makes the tracker persist the dirty states stateFlushDelay from now, unless
// that is already planned.
func (t *tracker) armFlush() {
	if !t.flushArmed {
		t.flushArmed = true
		t.flush.Reset(stateFlushDelay)
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
	for _, ps := range t.conflicts {
		if slices.Contains(ps, p) {
			c++
		}
	}
	return c
}

// loadConflicts rebuilds the open conflicts from the store (store.Conflicts): each is
// attributed to the other devices that wrote one of its versions and, for the ids in
// ids, to from (the device that sent them). Devices whose count changed are settled
// again. It runs on the tracker goroutine.
func (t *tracker) loadConflicts(from peer.ID, ids []string) {
	if t.n.blind {
		return // a replica cannot tell a conflict from concurrent versions it cannot open
	}
	cs, err := t.n.st.Conflicts().List()
	if err != nil {
		t.n.log.Warn("list conflicts", "err", err)
		return
	}
	byDevice := map[string]peer.ID{}
	for _, d := range t.n.devices.Load().list {
		if d.PeerID != t.n.id {
			byDevice[d.ID] = d.PeerID
		}
	}
	next := make(map[string][]peer.ID, len(cs))
	for _, c := range cs {
		id := c.ID.String()
		ps := slices.Clone(t.conflicts[id])
		add := func(p peer.ID) {
			if p != "" && !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
		if slices.Contains(ids, id) {
			add(from)
		}
		for _, v := range c.Versions {
			add(byDevice[string(v.Version.Device)])
		}
		next[id] = ps
	}
	t.conflicts = next
	for p := range t.n.devices.Load().byPeer {
		if _, ok := t.n.isMember(p); !ok {
			continue
		}
		if s := t.state(p); s.Conflicts != t.conflictCount(p) || s.Status == StatusConflict && s.Conflicts == 0 {
			t.update(p, func(s *DeviceState) {
				if s.Status == StatusConflict || s.Status == StatusUpToDate {
					t.settled(s)
				} else {
					s.Conflicts = t.conflictCount(p)
				}
			})
		}
	}
}

func (t *tracker) seq(p peer.ID) *seqInfo {
	si := t.seqs[p]
	if si == nil {
		si = &seqInfo{}
		t.seqs[p] = si
	}
	return si
}

// fillPending sets s's pending estimates from what is known of the sequence numbers;
// ourLast is this store's last sequence number.
func (t *tracker) fillPending(s *DeviceState, ourLast uint64) {
	s.PendingIn, s.PendingOut = -1, -1
	si := t.seqs[s.PeerID]
	if si == nil {
		return
	}
	if si.sentKnown {
		s.PendingOut = int64(ourLast - min(si.sent, ourLast))
	}
	if si.theirsKnown {
		held := t.n.progress.get(s.PeerID).Seq
		s.PendingIn = int64(si.theirs - min(held, si.theirs))
	}
}

func (t *tracker) settled(s *DeviceState) {
	if s.Conflicts = t.conflictCount(s.PeerID); s.Conflicts > 0 {
		s.Status = StatusConflict
	} else {
		s.Status = StatusUpToDate
	}
	s.Reason, s.NextRetry = "", time.Time{}
}

// connected records a new connection to p: limited when p is reached only through
// relays, punched when it is a direct connection made by hole punching (its address is
// then not remembered for the next start).
func (t *tracker) connected(p peer.ID, dir network.Direction, addr ma.Multiaddr, limited, punched bool) {
	now := t.n.cfg.Now().UTC()
	t.do(func() {
		t.update(p, func(s *DeviceState) {
			s.Connected, s.LastSeen = true, now
			s.Relayed = limited || isRelayed(addr)
			if dir == network.DirOutbound && addr != nil && !s.Relayed && !punched && s.Addr != addr.String() {
				s.Addr = addr.String()
				t.dirty[p], t.urgent = true, true
			}
			if punched && s.Addr != "" {
				// The remembered address did not reach the device (it needed a punch):
				// an older release remembered punched ones, dialled at every start.
				if a, err := ma.NewMultiaddr(s.Addr); err == nil && manet.IsPublicAddr(a) {
					s.Addr = ""
					t.dirty[p], t.urgent = true, true
				}
			}
		})
	})
}

func (t *tracker) disconnected(p peer.ID) {
	now := t.n.cfg.Now().UTC()
	t.do(func() {
		if t.n.liveConnected(p) {
			return // a newer connection is up: this notice arrived late
		}
		t.update(p, func(s *DeviceState) {
			s.Connected, s.LastSeen, s.Direct = false, now, nil
			if s.Status != StatusError {
				s.Status = StatusOffline
			}
		})
	})
}

// offline records a failed dial: the device is Offline, with the reason and the time of
// the next attempt.
func (t *tracker) offline(p peer.ID, err error, next time.Time) {
	now := t.n.cfg.Now()
	t.do(func() {
		t.attempts[p] = attempt{at: now, err: err}
		t.update(p, func(s *DeviceState) {
			s.Status, s.Reason, s.NextRetry, s.Connected = StatusOffline, err.Error(), next.UTC(), false
		})
	})
}

// direct records how this device tries to make the path to p direct (nil: not relayed).
func (t *tracker) direct(p peer.ID, d *DirectTry) {
	t.do(func() {
		if _, member := t.n.isMember(p); !member {
			return // a late word from the loop of a removed device
		}
		t.update(p, func(s *DeviceState) { s.Direct = d })
	})
}

func (t *tracker) sessionStart(p peer.ID) {
	t.do(func() {
		t.update(p, func(s *DeviceState) { s.Status = StatusSyncing })
	})
}

// initialProgress reports that the initial sync with p received received envelopes of
// about total.
func (t *tracker) initialProgress(p peer.ID, received, total int64, started time.Time) {
	t.do(func() {
		t.update(p, func(s *DeviceState) {
			s.InitialSync = &InitialSync{Received: received, Total: max(total, received), Started: started.UTC()}
		})
	})
}

func (t *tracker) sessionEnd(p peer.ID, res *sessionResult, err error, next time.Time) {
	now := t.n.cfg.Now()
	t.do(func() {
		t.state(p).InitialSync = nil
		t.attempts[p] = attempt{at: now, err: err}
		if res != nil && len(res.Conflicts) > 0 {
			ids := make([]string, len(res.Conflicts))
			for i, id := range res.Conflicts {
				ids[i] = id.String()
			}
			t.loadConflicts(p, ids)
		}
		if err == nil && res != nil {
			si := t.seq(p)
			si.sent, si.sentKnown = max(si.sent, res.MyLastSeq), true
			si.theirs, si.theirsKnown = max(si.theirs, res.PeerLastSeq), true
			t.noteHeld(p, res.MyLastSeq)
		}
		t.update(p, func(s *DeviceState) {
			s.LastSeen = now.UTC()
			if err != nil {
				s.Status, s.Reason, s.NextRetry = StatusError, sessionReason(err), next.UTC()
				return
			}
			s.LastSync = now.UTC()
			t.settled(s)
			t.dirty[p] = true
		})
	})
}

// pushed records that p holds (or sent) our envelopes up to sequence done.
func (t *tracker) pushed(p peer.ID, done uint64) {
	now := t.n.cfg.Now().UTC()
	t.do(func() {
		si := t.seq(p)
		si.sent, si.sentKnown = max(si.sent, done), true
		t.noteHeld(p, done)
		t.update(p, func(s *DeviceState) { s.LastSeen = now })
	})
}

// received records a pushed batch from p that ends at p's sequence to.
func (t *tracker) received(p peer.ID, to uint64, conflicts []string) {
	now := t.n.cfg.Now().UTC()
	t.do(func() {
		si := t.seq(p)
		si.theirs, si.theirsKnown = max(si.theirs, to), true
		if len(conflicts) > 0 {
			t.loadConflicts(p, conflicts)
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
			for _, p := range t.conflicts[id] {
				touched[p] = true
			}
			delete(t.conflicts, id)
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

// liveConnected reports whether the host has a connection to p now.
// It takes no lock of the node: the tracker goroutine calls it, and holders of n.mu wait
// for the tracker.
func (n *Node) liveConnected(p peer.ID) bool {
	h := n.hostNow()
	if h == nil {
		return false
	}
	c := h.Network().Connectedness(p)
	return c == network.Connected || c == network.Limited
}

// reloadConflicts rebuilds the open conflicts from the store.
func (t *tracker) reloadConflicts() { t.do(func() { t.loadConflicts("", nil) }) }

func (t *tracker) removed(p peer.ID) {
	t.do(func() {
		delete(t.states, p)
		delete(t.attempts, p)
		delete(t.seqs, p)
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
	out := States{DeviceID: string(t.n.self.ID), Name: t.n.self.Name, PeerID: t.n.id}
	last, lastErr := t.n.st.Replication().LastSeq()
	ok := t.call(func() {
		for p := range t.n.devices.Load().byPeer {
			if _, ok := t.n.isMember(p); ok {
				s := t.state(p)
				if lastErr == nil {
					t.fillPending(s, last)
				}
				s.Connected = t.n.liveConnected(p)
				out.Devices = append(out.Devices, *s)
			}
		}
		out.Overall = t.overall()
		out.Conflicts = len(t.conflicts)
	})
	if !ok {
		out.Overall = StatusOffline
	}
	if d, ok := t.n.devices.Load().byPeer[t.n.id]; ok {
		out.Name = d.Name
	}
	out.Refused = t.refusal.Load()
	out.ClockSkew = t.n.st.Replication().ClockSkew()
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
	out.FullResync = t.n.recentFullResync()
	if inv := t.n.InviteState(); inv.Failures > 0 && (inv.Open || t.n.cfg.Now().Sub(inv.ClosedAt) < time.Hour) {
		out.Invite = &inv
	}
	out.Warnings = warnings(out)
	return out
}

// warnings derives the health warnings of a snapshot, worst first.
func warnings(st States) []Warning {
	var ws []Warning
	if st.Conflicts > 0 {
		ws = append(ws, Warning{WarnConflicts, fmt.Sprintf("%d records have open conflicts: list them with `meshsync conflicts`", st.Conflicts)})
	}
	if st.ClockSkew > 0 {
		ws = append(ws, Warning{WarnClockSkew, fmt.Sprintf("another device's clock runs %v ahead of this one beyond the allowed bound: check its date and time", st.ClockSkew.Round(time.Second))})
	}
	if f := st.FullResync; f != nil {
		ws = append(ws, Warning{WarnFullResync, fmt.Sprintf("%s: took everything from %s and dropped %d records deleted elsewhere meanwhile (%s)", f, f.With, f.Forgotten, f.At.Format(time.RFC3339))})
	}
	if inv := st.Invite; inv != nil && inv.Failures > 0 {
		msg := fmt.Sprintf("a wrong code was tried against the open invite: %d of %d tries used (it closes after the last)", inv.Failures, MaxInviteFailures)
		if inv.Closed == "failures" {
			msg = fmt.Sprintf("the invite closed after %d wrong codes at %s: check the code with the person joining and run `meshsync pair` again", inv.Failures, inv.ClosedAt.Format(time.RFC3339))
		}
		ws = append(ws, Warning{WarnInviteFailures, msg})
	}
	for _, d := range st.Devices {
		if d.Status == StatusError {
			msg := fmt.Sprintf("sync with %s failed: %s", d.Name, d.Reason)
			if !d.NextRetry.IsZero() {
				msg += fmt.Sprintf(" (retry at %s)", d.NextRetry.Format(time.RFC3339))
			}
			ws = append(ws, Warning{WarnSyncError, msg})
		}
	}
	return ws
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

// sessionReason is the Reason of a failed session: a full disk (the received records could
// not be stored) is named as such, with what to do.
func sessionReason(err error) string {
	if errors.Is(err, store.ErrDiskFull) {
		return "disk full: free space on this device's disk; sync resumes by itself"
	}
	return err.Error()
}
