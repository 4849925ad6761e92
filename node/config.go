package node

import (
	"log/slog"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/store"
)

// DefaultPort is the fixed TCP and UDP (QUIC) port a node listens on unless told
// otherwise, so that a user can open it in a firewall. When it is taken the node falls back
// to a random port.
const DefaultPort = 4747

// Config configures a node. The zero value of every field means its default; only Dir and
// Passphrase are required.
type Config struct {
	// Dir is the data directory holding the store.
	Dir string
	// Passphrase unlocks the store.
	Passphrase []byte
	// ListenAddrs are the multiaddrs to listen on. Default: TCP and QUIC on DefaultPort on
	// every IPv4 and IPv6 interface, falling back to a random port when it is taken.
	// Tests use "/ip4/127.0.0.1/tcp/0" and "/ip4/127.0.0.1/udp/0/quic-v1".
	ListenAddrs []string
	// EnableMDNS announces the node on the LAN and finds the mesh's other devices there.
	EnableMDNS bool

	// LANOnly keeps the node off the wider network: no DHT rendezvous, no relays, no hole
	// punching. Devices then meet through mDNS and the addresses in the device list.
	LANOnly bool
	// Bootstrap are the multiaddrs (ending in /p2p/<id>) of the DHT peers the node joins the
	// DHT through. Default: the public libp2p bootstrap list (DefaultBootstrap), except in
	// test mode (internal/testmode, which meshsync's tests turn on), where the default is
	// empty so that no test dials the public network.
	Bootstrap []string
	// Relays are circuit relay v2 relays (multiaddrs ending in /p2p/<id>) on which the node
	// keeps a reservation, so that devices behind NATs reach it through them; `meshsync
	// relay` runs one. Setting any marks the node as privately reachable: it advertises
	// its relay addresses and hole-punches (DCUtR) to upgrade relayed connections. With
	// none, a node that AutoNAT finds behind a NAT takes relays from the DHT.
	Relays []string
	// JoinPeers are multiaddrs ending in /p2p/<id> where Join looks for the inviting
	// device before (and besides) the addresses in the code, the relays, mDNS and the DHT:
	// `meshsync join CODE --peer MULTIADDR`. Only Join reads it.
	JoinPeers []string
	// DHTMode is how the node takes part in the DHT: DHTAuto (the default: a server once
	// AutoNAT finds it publicly reachable), DHTClient (phones, laptops on battery) or
	// DHTServer.
	DHTMode DHTMode
	// NATPortMap asks the home router for a port mapping (UPnP, NAT-PMP). Default off.
	NATPortMap bool
	// Rendezvous is the interval between two DHT rendezvous rounds (announce this device,
	// look for the others). Default 5 minutes; a round that finds nothing is retried
	// sooner, from 2 seconds up.
	Rendezvous time.Duration
	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger
	// Now is the wall clock. Default time.Now.
	Now func() time.Time

	// AntiEntropy is the mean interval between two full checks with a connected device
	// (jittered by ±25 %). Default 3 minutes.
	AntiEntropy time.Duration
	// RetryMin and RetryMax bound the capped, jittered exponential backoff after a failed
	// dial or session. Defaults 1 second and 5 minutes.
	RetryMin, RetryMax time.Duration
	// StepTimeout bounds every read and write of one frame. Default 20 seconds.
	StepTimeout time.Duration
	// SessionTimeout bounds one whole sync session. Default 10 minutes.
	SessionTimeout time.Duration
	// PushIdle is how long a push stream may stay silent before it is closed; the next
	// anti-entropy session opens a new one. Default 10 minutes.
	PushIdle time.Duration
	// PushDelay is how long a push waits after a local write to gather more writes into
	// the same message. Default 0: writes that commit while a push is in flight travel
	// together in the next one.
	PushDelay time.Duration
	// CollectEvery is the interval between two tombstone collections, kept across
	// restarts (the first runs at the first Start of a store, then CollectEvery after the
	// last one). Default 24 hours. How long tombstones live is Store.TombstoneTTL.
	CollectEvery time.Duration
	// ApplyBatch is how many envelopes a sync session applies per store transaction, at
	// most session.DefaultApplyBytes of them. Default 16384.
	ApplyBatch int

	// Store is passed to store.Open and store.Init (KDF parameters, NoSync for
	// benchmarks, clock skew bound). Its Now and DeviceName are set by the node.
	Store store.Options

	// resealDelay is how long a device that did not start the newest key epoch waits
	// before it re-seals old envelopes itself. Default 2 minutes; tests lower it.
	resealDelay time.Duration
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AntiEntropy <= 0 {
		c.AntiEntropy = 3 * time.Minute
	}
	if c.RetryMin <= 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Minute
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	if c.StepTimeout <= 0 {
		c.StepTimeout = 20 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Minute
	}
	if c.PushIdle <= 0 {
		c.PushIdle = 10 * time.Minute
	}
	if c.CollectEvery <= 0 {
		c.CollectEvery = 24 * time.Hour
	}
	if c.ApplyBatch <= 0 {
		c.ApplyBatch = 16384
	}
	if c.Bootstrap == nil && !testmode.Enabled() {
		c.Bootstrap = DefaultBootstrap()
	}
	if c.resealDelay <= 0 {
		c.resealDelay = 2 * time.Minute
	}
	if c.Rendezvous <= 0 {
		c.Rendezvous = 5 * time.Minute
	}
	return c
}

func (c Config) storeOptions(deviceName string) *store.Options {
	o := c.Store
	o.Now = c.Now
	if deviceName != "" {
		o.DeviceName = deviceName
	}
	return &o
}

// DHTMode is how a node takes part in the DHT.
type DHTMode int

// The DHT modes.
const (
	// DHTAuto serves DHT queries once AutoNAT finds the node publicly reachable.
	DHTAuto DHTMode = iota
	// DHTClient only asks: for phones and devices behind NATs.
	DHTClient
	// DHTServer always serves.
	DHTServer
)

func (m DHTMode) opt() dht.ModeOpt {
	switch m {
	case DHTClient:
		return dht.ModeClient
	case DHTServer:
		return dht.ModeServer
	}
	return dht.ModeAuto
}

// DefaultBootstrap is the public libp2p DHT bootstrap list (go-libp2p-kad-dht's
// DefaultBootstrapPeers), the default of Config.Bootstrap.
func DefaultBootstrap() []string {
	out := make([]string, 0, len(dht.DefaultBootstrapPeers))
	for _, a := range dht.DefaultBootstrapPeers {
		out = append(out, a.String())
	}
	return out
}
