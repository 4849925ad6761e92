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
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshsync/meshsync/store"
)

// Node is one device of a mesh: its store, its libp2p host and the sync engine. Open,
// Init or Join returns a node whose store is usable at once (Put, Get …); Start brings up
// the network. All methods are safe for concurrent use.
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

	devices  atomic.Pointer[deviceSet] // immutable snapshot, replaced on change
	invites  inviteBox
	progress *progressTable
	track    *tracker
	inbound  inboundLimit // streams per device and protocol (limits.go)
	rot      rotation     // key rotation and re-seal (rotation.go)
	bounded  violations   // sessions ended for breaking a bound (limits.go)

	mdnsFound atomic.Uint64               // devices of the mesh reported by mDNS
	dht       atomic.Pointer[dht.IpfsDHT] // nil in LAN-only mode or before Start
	liveHost  atomic.Value                // host.Host once started: read without n.mu (the tracker must not take it)

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node starts, and running handlers

	mu      sync.Mutex // guards the fields below
	started bool
	closed  bool
	host    host.Host
	mdns    mdns.Service
	peers   map[peer.ID]*peerLoop
	manual  bool // tests: no device loops, sessions only when called
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
	rk, err := st.Subkey("replica")
	if err != nil {
		return nil, err
	}
	pk := rk // a blind replica proves with the replica key only
	if !st.Blind() {
		if pk, err = st.Subkey("pairing"); err != nil {
			return nil, err
		}
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger.With("peer", shortID(id)), st: st, key: sk, id: id, self: st.Device(),
		pairKey: pk, replicaKey: rk, blind: st.Blind(), peers: map[peer.ID]*peerLoop{},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.progress = newProgressTable(st)
	if err := n.reloadDevices(); err != nil {
		return nil, err
	}
	n.track = newTracker(n)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.track.run(n.ctx) }()
	return n, nil
}

// Start brings up the libp2p host, the protocol handlers, discovery and the sync loops.
// The ctx is used only while starting.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if n.started {
		return nil
	}
	h, err := n.newHost()
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	n.host = h
	n.liveHost.Store(h)
	n.started = true
	n.registerHandlers(h)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.feedLoop(n.ctx) }()
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.watchAddrs(n.ctx, h) }()
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.collectLoop(n.ctx) }()
	n.reconcilePeersLocked()
	if n.cfg.EnableMDNS {
		n.startMDNSLocked()
	}
	if err := n.startReachLocked(h); err != nil {
		// The node still works on the LAN; say why it does not reach further.
		n.log.Warn("DHT rendezvous disabled", "err", err)
	}
	n.log.Info("node started", "addrs", h.Addrs())
	return nil
}

// Close stops the network, waits for every goroutine of the node to end and closes the
// store. It is safe to call more than once.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	h, md := n.host, n.mdns
	n.mu.Unlock()
	n.cancel()
	if md != nil {
		md.Close()
	}
	if d := n.dht.Load(); d != nil {
		d.Close()
	}
	var errs []error
	if h != nil {
		errs = append(errs, h.Close())
	}
	n.wg.Wait()
	n.progress.flush()
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

// enter counts a running protocol handler; it reports false when the node is closing.
func (n *Node) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	return true
}

// Host is the node's libp2p host, for protocols layered on the node (sharing, for
// example): register stream handlers on it and open streams to devices with it. Its
// connection gater admits only current devices of the mesh (and, while an invite is
// open, strangers for pairing); a handler must still check the remote peer itself. Do
// not close it; Close the node. It is nil before Start.
func (n *Node) Host() host.Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.host
}

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
	n.mu.Lock()
	h := n.host
	n.mu.Unlock()
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
	return n.st.PutRaw(collection, key, value)
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
	if !n.started {
		return ErrNotStarted
	}
	for _, pl := range n.peers {
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
