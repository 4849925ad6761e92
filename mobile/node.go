package mobile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// startTimeout bounds bringing the network up; joinTimeout bounds pairing.
const (
	startTimeout = 30 * time.Second
	joinTimeout  = 2 * time.Minute
)

// policyName is the device-local (never synced) store value holding the sync policy.
const policyName = "mobile/sync-policy"

// Node is one device of a mesh, embedded in an app. Its methods are safe to call from any
// thread. Open, Create and Join return it with the store open and the network down; Start
// brings the network up as far as the sync policy allows, Stop takes everything down
// (store included), Close ends it.
//
// Start, Stop, Close, SyncNow, Export and Import may block for a second or more (the
// passphrase key derivation, a sync, a backup): call them off the main thread. The other
// methods return within milliseconds.
type Node struct {
	dir       string
	pass      []byte
	opts      options
	afterFunc func(time.Duration, func()) timer // time.AfterFunc; tests replace it
	made      bool                              // made by Open, Create or Join (not the binding's "new Node()")
	kdf       store.KDFParams                   // KDF of a new store; zero: the store's default (tests and benchmarks set it)

	tmu sync.Mutex // serializes Start, Stop, Close and the network transitions

	mu       sync.RWMutex // guards the fields below; data calls hold it for reading
	inner    *node.Node   // nil while stopped or closed
	net      bool         // inner's network is up
	want     bool         // Start was called, and Stop not since
	closed   bool
	sig      signals
	dirty    bool // sig.policy changed while stopped: persist at the next open
	timer    timer
	gen      uint64 // generation of the armed timer
	listener Listener
	fw       *forwarder
	lastErr  string
	self     identity

	transitions atomic.Int64 // network starts and stops
}

// timer is the part of *time.Timer the node uses.
type timer interface{ Stop() bool }

// identity names this device; it stays readable while the node is stopped.
type identity struct {
	deviceID, name string
	peerID         peer.ID
}

// Exists reports whether dir holds a meshsync store, to choose between Open and Create or
// Join.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, store.FileName))
	return err == nil
}

// Open opens the store in dir with passphrase. opts is a JSON object, or "" for the
// defaults:
//
//	{
//	  "listen": ["/ip4/0.0.0.0/tcp/4747"],  // libp2p listen addresses (default: TCP and QUIC on 4747)
//	  "mdns": true,                         // find devices on the local network (default true)
//	  "debounce_ms": 2000,                  // how long a phone signal must hold (default 2000)
//	  "background_sync": false              // keep syncing in the background (default false)
//	}
//
// Errors: CodeNoStore, CodeWrongPassphrase, CodeLocked, CodeInvalid (opts).
func Open(dir, passphrase, opts string) (*Node, error) {
	m, err := newNode(dir, passphrase, opts)
	if err != nil {
		return nil, err
	}
	if !Exists(dir) {
		return nil, wrap(fmt.Errorf("open %s: %w", dir, errNoStore))
	}
	inner, err := node.Open(context.Background(), m.config())
	if err != nil {
		return nil, wrap(fmt.Errorf("open %s: %w", dir, err))
	}
	return m.attachNew(inner)
}

// Create creates a new mesh in dir (which must hold no store yet) with this device, named
// deviceName, as its first member. opts is as for Open. Errors: CodeExists, CodeInvalid.
func Create(dir, passphrase, deviceName, opts string) (*Node, error) {
	return create(dir, passphrase, deviceName, opts, store.KDFParams{})
}

// create is Create with the KDF parameters of the new store (zero: the default).
func create(dir, passphrase, deviceName, opts string, kdf store.KDFParams) (*Node, error) {
	m, err := newNode(dir, passphrase, opts)
	if err != nil {
		return nil, err
	}
	m.kdf = kdf
	inner, err := node.Init(context.Background(), m.config(), deviceName)
	if err != nil {
		return nil, wrap(fmt.Errorf("create %s: %w", dir, err))
	}
	return m.attachNew(inner)
}

// Join joins the mesh of an invite code (from Invite on a device of the mesh, or
// `meshsync pair`): it connects to the inviting device, which must be reachable, and
// creates the store in dir. opts is as for Open. It blocks for up to two minutes. Errors:
// CodeBadInvite, CodeInviteExpired, CodeInviteRefused, CodeExists, CodeTimeout.
func Join(dir, passphrase, code, deviceName, opts string) (*Node, error) {
	m, err := newNode(dir, passphrase, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	inner, err := node.Join(ctx, m.config(), code, deviceName)
	if err != nil {
		return nil, wrap(fmt.Errorf("join: %w", err))
	}
	return m.attachNew(inner)
}

// JoinShort joins the mesh of a short code (from InviteShort or `meshsync pair --short`):
// it looks for the inviting device on the LAN by mDNS, or dials peer when it is not empty
// (one of the addrs InviteShort returned), runs the PAKE and creates the store in dir.
// opts is as for Open. It blocks for up to two minutes. Errors: CodeBadInvite (not a
// short code, or a word not in the list), CodeInviteRefused (a wrong code, or the invite
// closed), CodeExists, CodeTimeout.
func JoinShort(dir, passphrase, code, peer, deviceName, opts string) (*Node, error) {
	if !node.IsShortCode(code) {
		return nil, wrap(fmt.Errorf("join: %w: %q is not a short code (4-garden-orbit-pencil); pass a long code to Join", node.ErrBadInvite, code))
	}
	m, err := newNode(dir, passphrase, opts)
	if err != nil {
		return nil, err
	}
	cfg := m.config()
	if peer != "" {
		cfg.JoinPeers = []string{peer}
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	inner, err := node.Join(ctx, cfg, code, deviceName)
	if err != nil {
		return nil, wrap(fmt.Errorf("join: %w", err))
	}
	return m.attachNew(inner)
}

func newNode(dir, passphrase, opts string) (*Node, error) {
	o, err := parseOptions(opts)
	if err != nil {
		return nil, wrap(err)
	}
	if dir == "" || passphrase == "" {
		return nil, wrap(fmt.Errorf("%w: dir and passphrase must not be empty", errInvalid))
	}
	m := &Node{dir: dir, pass: []byte(passphrase), opts: o, sig: defaultSignals(), made: true}
	m.sig.background = o.BackgroundSync
	m.afterFunc = func(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }
	return m, nil
}

func (m *Node) config() node.Config {
	return node.Config{Dir: m.dir, Passphrase: m.pass, ListenAddrs: m.opts.Listen, EnableMDNS: m.opts.mdns(),
		Store: store.Options{KDF: m.kdf}}
}

func (m *Node) attachNew(inner *node.Node) (*Node, error) {
	m.mu.Lock()
	m.attachLocked(inner)
	fw := m.fw
	m.mu.Unlock()
	fw.start()
	return m, nil
}

// attachLocked makes inner the node's inner node and prepares (but does not start) a
// forwarder for the listener. The caller holds mu and starts m.fw once it has released it.
func (m *Node) attachLocked(inner *node.Node) {
	m.inner = inner
	m.net = false
	st := inner.States()
	m.self = identity{deviceID: st.DeviceID, name: st.Name, peerID: st.PeerID}
	if m.dirty {
		if err := inner.Store().Local().Put(policyName, m.sig.policy); err == nil {
			m.dirty = false
		}
	} else {
		var p string
		if ok, err := inner.Store().Local().Get(policyName, &p); err == nil && ok && checkPolicy(p) == nil {
			m.sig.policy = p
		}
	}
	m.fw = newForwarder(m, inner, m.listener)
}

// Start brings the network up, as far as the sync policy and the phone signals allow
// (States says why it stays down). After Stop it first reopens the store. It is a no-op
// when already started.
func (m *Node) Start() error {
	m.tmu.Lock()
	defer m.tmu.Unlock()
	m.mu.Lock()
	if m.closed || !m.made {
		m.mu.Unlock()
		return wrap(errClosed)
	}
	m.want = true
	stopped := m.inner == nil
	m.mu.Unlock()
	if stopped {
		inner, err := node.Open(context.Background(), m.config())
		if err != nil {
			return wrap(fmt.Errorf("start: reopen %s: %w", m.dir, err))
		}
		m.attachNew(inner)
	}
	return m.applyLocked()
}

// Stop takes the node down: the network, every goroutine of the node and the store (so
// the database file is unlocked, as iOS requires of a suspended app that shares it). Data
// calls then fail with CodeStopped until Start. A stopped node holds no socket and no
// goroutine. Do not call Stop or Close from a Listener callback.
func (m *Node) Stop() error {
	m.tmu.Lock()
	defer m.tmu.Unlock()
	return m.stopLocked()
}

func (m *Node) stopLocked() error {
	m.mu.Lock()
	m.want = false
	m.cancelTimerLocked()
	old, fw := m.inner, m.fw
	m.inner, m.fw, m.net = nil, nil, false
	m.mu.Unlock()
	var err error
	if old != nil {
		err = old.Close()
		m.transitions.Add(1)
	}
	fw.wait()
	return wrap(err)
}

// Close stops the node and forgets its passphrase; the Node is unusable afterwards. It is
// safe to call more than once.
func (m *Node) Close() error {
	m.tmu.Lock()
	defer m.tmu.Unlock()
	err := m.stopLocked()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		clear(m.pass)
		m.listener = nil
	}
	return err
}

// applyLocked brings the network to what the signals ask for, at once. The caller holds
// tmu.
func (m *Node) applyLocked() error {
	m.mu.Lock()
	m.cancelTimerLocked()
	run, _ := decide(m.sig)
	run = run && m.want && m.inner != nil && !m.closed
	inner, up, fw := m.inner, m.net, m.fw
	m.mu.Unlock()
	switch {
	case run && !up:
		return m.netUp(inner)
	case !run && up:
		return m.netDown()
	}
	fw.kickState()
	return nil
}

func (m *Node) netUp(inner *node.Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err := inner.Start(ctx)
	m.mu.Lock()
	fw := m.fw
	if err != nil {
		m.lastErr = "start network: " + err.Error()
	} else {
		m.net, m.lastErr = true, ""
		m.transitions.Add(1)
	}
	m.mu.Unlock()
	fw.kickState()
	return wrap(err)
}

// netDown takes the network down (node.Node.Stop); the store stays open and data calls
// go on meanwhile.
func (m *Node) netDown() error {
	m.mu.Lock()
	inner, fw := m.inner, m.fw
	m.net = false
	m.mu.Unlock()
	err := inner.Stop()
	m.mu.Lock()
	if err != nil {
		m.lastErr = "stop network: " + err.Error()
	}
	m.mu.Unlock()
	m.transitions.Add(1)
	fw.kickState()
	return wrap(err)
}

// armLocked schedules applying the signals after d, unless they already match the
// network's state. The caller holds mu.
func (m *Node) armLocked(d time.Duration) {
	run, _ := decide(m.sig)
	run = run && m.want && m.inner != nil
	if run == m.net {
		m.cancelTimerLocked() // a flap that came back: nothing to do
		m.fw.kickState()
		return
	}
	m.cancelTimerLocked()
	gen := m.gen
	m.timer = m.afterFunc(d, func() { m.fire(gen) })
	m.fw.kickState()
}

func (m *Node) cancelTimerLocked() {
	m.gen++
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
}

// fire applies the signals when the timer of generation gen is still the armed one.
func (m *Node) fire(gen uint64) {
	m.tmu.Lock()
	defer m.tmu.Unlock()
	m.mu.RLock()
	current := gen == m.gen && !m.closed
	m.mu.RUnlock()
	if current {
		m.applyLocked()
	}
}

// signal changes the phone signals and schedules applying them.
func (m *Node) signal(fn func(*signals), d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(&m.sig)
	if !m.closed && m.made {
		m.armLocked(d)
	}
}

// SetForeground tells the node whether the app is in the foreground. In the background
// the network goes down (after the debounce) unless the "background_sync" option is set
// or a SyncNow is running.
func (m *Node) SetForeground(foreground bool) {
	m.signal(func(s *signals) { s.foreground = foreground }, m.opts.debounce())
}

// SetMetered tells the node whether the current network is metered (mobile data, a
// hotspot). Under the "wifi-only" policy the network goes down while it is.
func (m *Node) SetMetered(metered bool) {
	m.signal(func(s *signals) { s.metered = metered }, m.opts.debounce())
}

// SetCharging tells the node whether the phone is charging. Under the "charging-only"
// policy the network is up only while it is. The node assumes "not charging" until told.
func (m *Node) SetCharging(charging bool) {
	m.signal(func(s *signals) { s.charging = charging }, m.opts.debounce())
}

// SetSyncPolicy sets this device's sync policy: "always", "wifi-only", "charging-only" or
// "paused". It is kept in the store (not synced to other devices) and applied at once, in
// the background: watch States or OnState for the effect. Errors: CodeInvalid.
func (m *Node) SetSyncPolicy(policy string) error {
	if err := checkPolicy(policy); err != nil {
		return wrap(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || !m.made {
		return wrap(errClosed)
	}
	m.sig.policy = policy
	m.dirty = true
	if m.inner != nil {
		if err := m.inner.Store().Local().Put(policyName, policy); err != nil {
			return wrap(fmt.Errorf("save sync policy: %w", err))
		}
		m.dirty = false
	}
	m.armLocked(0)
	return nil
}

// SyncPolicy returns this device's sync policy.
func (m *Node) SyncPolicy() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sig.policy
}

// SyncNow syncs with every device of the mesh and waits up to timeoutSeconds for them.
// It brings the network up even in the background (for an iOS background task or an
// Android worker), and lets it go down again after the debounce; the policy still holds
// (CodePaused). The node must be started. Errors: CodePaused, CodeStopped,
// CodeUnreachable (some devices could not be reached), CodeTimeout.
func (m *Node) SyncNow(timeoutSeconds int64) error {
	m.mu.Lock()
	if err := m.usableLocked(); err != nil {
		m.mu.Unlock()
		return err
	}
	if !m.want {
		m.mu.Unlock()
		return wrap(fmt.Errorf("sync now: %w", errStopped))
	}
	m.sig.bursts++
	m.mu.Unlock()
	defer m.signal(func(s *signals) { s.bursts-- }, m.opts.debounce())

	m.tmu.Lock()
	m.applyLocked()
	m.tmu.Unlock()

	m.mu.RLock()
	inner, up := m.inner, m.net
	_, reason := decide(m.sig)
	m.mu.RUnlock()
	if !up {
		if reason == "" {
			reason = "the network did not start"
		}
		return wrap(fmt.Errorf("sync now: %w (%s)", errPaused, reason))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(max(timeoutSeconds, 1))*time.Second)
	defer cancel()
	return wrap(inner.WaitSynced(ctx))
}

// usableLocked reports why data calls cannot run. The caller holds mu.
func (m *Node) usableLocked() error {
	switch {
	case m.closed || !m.made:
		return wrap(errClosed)
	case m.inner == nil:
		return wrap(errStopped)
	}
	return nil
}

// with runs fn on the inner node, holding mu for reading.
func (m *Node) with(fn func(n *node.Node) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.usableLocked(); err != nil {
		return err
	}
	return wrap(fn(m.inner))
}

// PeerID returns this device's libp2p peer id (also while stopped).
func (m *Node) PeerID() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.self.peerID.String()
}

// DeviceID returns this device's id in the mesh, as listed by Devices.
func (m *Node) DeviceID() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.self.deviceID
}
