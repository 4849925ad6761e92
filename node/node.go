package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshsync/meshsync/store"
)

// Node is one device of a mesh: its store, its libp2p host and the sync engine. Open,
// Init or Join returns a node whose store is usable at once (Put, Get …); Start brings up
// the network and Stop takes it down again, the store staying open; Close ends it all.
// All methods are safe for concurrent use.
type Node struct {
	cfg  Config
	log  *slog.Logger
	st   *store.Store
	key  crypto.PrivKey
	id   peer.ID
	self store.DeviceInfo

	pairKey    []byte // the mesh's pairing subkey: mesh proofs in sync hellos between devices
	replicaKey []byte // the proof key between devices and blind replicas
	blind      bool   // this node is a blind replica (no mesh key)

	// Each piece of state below has one owner (doc.go lists them).
	devMu    sync.Mutex                // serializes reloadDevices, the only writer of devices
	devices  atomic.Pointer[deviceSet] // immutable snapshot, replaced on change
	invites  inviteBox                 // its own lock
	progress *progressTable            // its own lock
	contact  *contactClock             // its own lock (contact.go)
	track    *tracker                  // its goroutine
	feed     *store.Subscription       // the store's changes from Open to Close; read by the running network's feedLoop
	// feedMissed is how many changes of feed were dropped and already answered by a full
	// reload. Owned by the running feedLoop (runs do not overlap: Stop waits for it).
	feedMissed uint64
	inbound    inboundLimit // its own lock (limits.go)
	serving    sessionGate  // its own lock (gate.go)
	versions   peerVersions // its own lock (versions.go)
	rot        rotation     // its own lock (rotation.go)
	bounded    violations   // counters (limits.go)

	mdnsFound atomic.Uint64 // counter: devices of the mesh reported by mDNS

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the goroutines that live as long as the node: the tracker, re-seal

	life sync.Mutex // serializes Start, Stop and Close

	mu     sync.Mutex             // guards closed, the writes of net, and net's peers and mdns
	closed bool                   // Close was called
	net    atomic.Pointer[netRun] // the running network; nil while down. Read without mu.
	manual bool                   // tests, set before Start: no device loops

	// sessionMaxBytes, when set by a test, caps the envelope bytes one session receives
	// (session.Config.MaxBytes) so that a transfer ends part-way at a known point.
	sessionMaxBytes int
	// helloVersion, when set by a test before Start, is the sync version this node speaks
	// and the newest it takes: a node of an older release.
	helloVersion byte
}

// netRun is the network between one Start and the next Stop: the host and everything
// that runs on it. Stop cancels ctx, closes the host and waits for wg.
type netRun struct {
	host   host.Host
	ctx    context.Context // cancelled by Stop (and Close)
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of the run, and running protocol handlers

	dht atomic.Pointer[dht.IpfsDHT] // set once by Start; nil in LAN-only mode

	// holePunch is the host's hole-punch service (nil in LAN-only mode); holePunchSeen
	// is when a direct loop first saw it running (unix ns; direct.go).
	holePunch     *holepunch.Service
	holePunchSeen atomic.Int64

	// Guarded by Node.mu:
	mdns  mdns.Service
	peers map[peer.ID]*peerLoop // a loop per device (peer.go)
}

// Open opens the node over the existing store in cfg.Dir. The network stays down until
// Start.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	st, err := store.Open(cfg.Dir, cfg.Passphrase, cfg.storeOptions(""))
	if err != nil {
		return nil, fmt.Errorf("open node: %w", err)
	}
	n, err := newNode(cfg, st)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open node: %w", err)
	}
	return n, nil
}

// Init creates a new mesh in cfg.Dir (which must hold no store yet) with this device as
// its first member, and returns the node, not started.
func Init(ctx context.Context, cfg Config, deviceName string) (*Node, error) {
	cfg = cfg.withDefaults()
	st, err := store.Init(cfg.Dir, cfg.Passphrase, cfg.storeOptions(deviceName))
	if err != nil {
		return nil, fmt.Errorf("init node: %w", err)
	}
	// newNode writes this device's own record, admitted by itself: the mesh's first member.
	n, err := newNode(cfg, st)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("init node: %w", err)
	}
	return n, nil
}

func newNode(cfg Config, st *store.Store) (*Node, error) {
	sk, err := ensureIdentity(st, cfg.Now())
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, err
	}
	rk, err := st.Keys().Subkey(store.PurposeReplica)
	if err != nil {
		return nil, err
	}
	pk := rk // a blind replica proves with the replica key only
	if !st.Blind() {
		if pk, err = st.Keys().Subkey(store.PurposePairing); err != nil {
			return nil, err
		}
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger.With("peer", shortID(id)), st: st, key: sk, id: id, self: st.Device(),
		pairKey: pk, replicaKey: rk, blind: st.Blind(),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.progress = newProgressTable(st)
	n.contact = newContactClock(st, n.tombstoneTTL())
	if err := n.reloadDevices(); err != nil {
		return nil, err
	}
	// Subscribed before the tracker lists the open conflicts and kept while the network is
	// down: a change made before Start, or between a Stop and the next Start (a conflict
	// resolved, a device removed), is still seen by the next feedLoop.
	n.feed = st.Subscribe(4096)
	n.track = newTracker(n)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.track.run(n.ctx) }()
	return n, nil
}

// Start brings up the libp2p host, the protocol handlers, discovery and the sync loops.
// The ctx is used only while starting. After Stop it starts the network again, over the
// store that stayed open. It is a no-op when the network is up.
func (n *Node) Start(ctx context.Context) error {
	n.life.Lock()
	defer n.life.Unlock()
	n.mu.Lock()
	closed, up := n.closed, n.net.Load() != nil
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if up {
		return nil
	}
	h, hps, err := n.newHost()
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	r := &netRun{host: h, holePunch: hps, peers: map[peer.ID]*peerLoop{}}
	r.ctx, r.cancel = context.WithCancel(n.ctx)
	n.mu.Lock()
	n.net.Store(r)
	n.mu.Unlock()
	n.registerHandlers(h)
	r.wg.Add(3)
	go func() { defer r.wg.Done(); n.feedLoop(r.ctx) }()
	go func() { defer r.wg.Done(); n.watchAddrs(r.ctx, h) }()
	go func() { defer r.wg.Done(); n.collectLoop(r.ctx) }()
	if r.holePunch != nil {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); n.watchDirect(r.ctx, r) }()
	}
	n.mu.Lock()
	n.reconcilePeersLocked(r)
	if n.cfg.EnableMDNS {
		n.startMDNSLocked(r)
	}
	n.mu.Unlock()
	if err := n.startReach(r); err != nil {
		// The node still works on the LAN; say why it does not reach further.
		n.log.Warn("DHT rendezvous disabled", "err", err)
	}
	n.log.Info("node started", "addrs", h.Addrs())
	return nil
}

// Stop takes the network down: discovery, the device loops, every protocol handler and
// the host, and waits for them to end. The store stays open (Put, Get … keep working);
// Start brings the network up again. It is a no-op when the network is down.
func (n *Node) Stop() error {
	n.life.Lock()
	defer n.life.Unlock()
	n.mu.Lock()
	r := n.net.Swap(nil)
	n.mu.Unlock()
	if r == nil {
		return nil
	}
	err := n.stopRun(r)
	n.progress.flush()
	n.track.persistHeld()
	n.log.Info("node stopped")
	return err
}

// stopRun ends a run that is no longer n.net.
func (n *Node) stopRun(r *netRun) error {
	r.cancel()
	n.mu.Lock()
	md := r.mdns
	r.mdns = nil
	n.mu.Unlock()
	if md != nil {
		md.Close()
	}
	if d := r.dht.Load(); d != nil {
		d.Close()
	}
	err := r.host.Close()
	r.wg.Wait()
	return err
}

// Close stops the network, waits for every goroutine of the node to end and closes the
// store. It is safe to call more than once.
func (n *Node) Close() error {
	n.life.Lock()
	defer n.life.Unlock()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	r := n.net.Swap(nil)
	n.mu.Unlock()
	n.cancel()
	var errs []error
	if r != nil {
		errs = append(errs, n.stopRun(r))
	}
	n.wg.Wait()
	n.feed.Close()
	n.progress.flush()
	if err := n.contact.flush(); err != nil {
		n.log.Warn("note the last contact", "err", err)
	}
	errs = append(errs, n.st.Close())
	return errors.Join(errs...)
}

// goSafe runs fn in a goroutine counted in the node's WaitGroup unless the node is closing.
func (n *Node) goSafe(fn func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	go func() { defer n.wg.Done(); fn() }()
	return true
}

// enter counts a running protocol handler in the network's run; it reports false when
// the network is down or going down. The caller calls r.wg.Done when it ends.
func (n *Node) enter() (*netRun, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.net.Load()
	if n.closed || r == nil {
		return nil, false
	}
	r.wg.Add(1)
	return r, true
}

// hostNow is the running host; nil while the network is down.
func (n *Node) hostNow() host.Host {
	if r := n.net.Load(); r != nil {
		return r.host
	}
	return nil
}

// Host is the node's libp2p host, for protocols layered on the node (sharing, for
// example): register stream handlers on it and open streams to devices with it. Its
// connection gater admits only current devices of the mesh (and, while an invite is
// open, strangers for pairing); a handler must still check the remote peer itself. Do
// not close it; Close the node. It is nil while the network is down (before Start, after
// Stop), and a new host after each Start.
func (n *Node) Host() host.Host { return n.hostNow() }

// PeerID is this device's libp2p identity.
func (n *Node) PeerID() peer.ID { return n.id }

// DeviceID is this device's id in the mesh.
func (n *Node) DeviceID() string { return string(n.self.ID) }

// Store is the node's store, for layers that need more than the methods below (consent,
// backups). Do not close it; Close the node.
func (n *Node) Store() *store.Store { return n.st }

// Addrs are the addresses the node listens on, each ending in /p2p/<peer id>. Empty
// before Start.
func (n *Node) Addrs() []ma.Multiaddr {
	h := n.hostNow()
	if h == nil {
		return nil
	}
	out, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.id, Addrs: h.Addrs()})
	return out
}

// Put writes a JSON document; connected devices receive it within milliseconds.
func (n *Node) Put(collection, key string, value []byte) error {
	return n.st.Put(collection, key, value)
}

// PutRaw writes raw bytes.
func (n *Node) PutRaw(collection, key string, value []byte) error {
	return n.st.Update(func(tx *store.Tx) error { return tx.PutRaw(collection, key, value) })
}

// Get returns the resolved record, or an error wrapping store.ErrNotFound.
func (n *Node) Get(collection, key string) (*store.Record, error) { return n.st.Get(collection, key) }

// Delete deletes a record (a tombstone that syncs like a write).
func (n *Node) Delete(collection, key string) error { return n.st.Delete(collection, key) }

// List returns the live records of collection (every application collection when empty)
// whose keys start with prefix.
func (n *Node) List(collection, prefix string) ([]store.Record, error) {
	return n.st.List(collection, prefix)
}

// Subscribe returns a feed of record changes, local and from other devices, with room
// for buffer pending changes. Close it when done; Close of the node closes it too.
func (n *Node) Subscribe(buffer int) *store.Subscription { return n.st.Subscribe(buffer) }

// SyncNow asks every device loop to sync at once (dialling offline devices again) and
// returns without waiting; see WaitSynced.
func (n *Node) SyncNow(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	r := n.net.Load()
	if r == nil {
		return ErrNotStarted
	}
	for _, pl := range r.peers {
		pl.kickNow()
	}
	return nil
}

// WaitSynced syncs with every other device of the mesh now and returns when each one has
// finished a session that began after the call. It returns nil when every session
// succeeded, an error wrapping ErrUnreachable that names the devices that could not be
// reached or failed, or ctx's error.
func (n *Node) WaitSynced(ctx context.Context) error {
	t0 := time.Now()
	if err := n.SyncNow(ctx); err != nil {
		return err
	}
	sub := n.track.subscribe(64)
	defer sub.Close()
	for {
		done, failed := n.track.attemptsSince(t0)
		if done {
			if len(failed) > 0 {
				return fmt.Errorf("wait synced: %w: %v", ErrUnreachable, failed)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait synced: %w", ctx.Err())
		case <-sub.C:
		case <-time.After(time.Second):
		}
	}
}

func shortID(id peer.ID) string {
	s := id.String()
	if len(s) > 8 {
		return s[len(s)-8:]
	}
	return s
}
