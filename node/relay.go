package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// DefaultRelayPort is the TCP and UDP (QUIC) port a relay listens on by default.
const DefaultRelayPort = 4001

// RelayConfig configures a relay of the person's own (`meshsync relay`): a circuit relay
// v2 service for the mesh's devices behind NATs, and a DHT server they can bootstrap
// from. The zero value of every field means its default.
type RelayConfig struct {
	// ListenAddrs are the multiaddrs to listen on. Default: TCP and QUIC on
	// DefaultRelayPort on every interface.
	ListenAddrs []string
	// Key is the relay's identity; its peer id is part of the address devices are given,
	// so keep it (LoadRelayKey). Default: a fresh key.
	Key crypto.PrivKey
	// MaxDuration and MaxData cap one relayed connection (data counts each direction).
	// Defaults 1 hour and 1 GiB, far above the public relays' 2 minutes and 128 KiB, and
	// enough for devices to sync over it (a device syncs over a relayed connection only
	// when the relay grants at least 10 minutes and 64 MiB). Both negative: no limit.
	MaxDuration time.Duration
	MaxData     int64
	// MaxReservations bounds the devices holding a slot at once. Default 64.
	MaxReservations int
	// Allow, when not empty, lists the only peers that may reserve a slot or be reached
	// through the relay (a mesh's devices); empty admits anyone.
	Allow []peer.ID
	// NoDHT turns the DHT server off.
	NoDHT bool
	// Bootstrap are DHT peers this relay's DHT joins through. Default none: the relay's
	// DHT then serves only the devices that bootstrap from it.
	Bootstrap []string
}

// Relay is a running relay.
type Relay struct {
	h host.Host
	d *dht.IpfsDHT
}

// allowList is the relay's ACL: only listed peers reserve, and circuits connect only to
// them.
type allowList []peer.ID

func (a allowList) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return slices.Contains(a, p) }
func (a allowList) AllowConnect(_ peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	return slices.Contains(a, dest)
}

// StartRelay starts a relay.
func StartRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = time.Hour
	}
	if cfg.MaxData == 0 {
		cfg.MaxData = 1 << 30
	}
	if cfg.MaxReservations <= 0 {
		cfg.MaxReservations = 64
	}
	if len(cfg.ListenAddrs) == 0 {
		p := strconv.Itoa(DefaultRelayPort)
		cfg.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/" + p, "/ip4/0.0.0.0/udp/" + p + "/quic-v1",
			"/ip6/::/tcp/" + p, "/ip6/::/udp/" + p + "/quic-v1"}
	}
	if cfg.Key == nil {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		cfg.Key = k
	}
	rc := relayv2.DefaultResources()
	rc.MaxReservations = cfg.MaxReservations
	rc.MaxCircuits = 32
	rc.BufferSize = 32 << 10
	rc.Limit = nil
	if cfg.MaxDuration > 0 || cfg.MaxData > 0 {
		// A negative half of the pair means "no cap" for that half.
		rc.Limit = &relayv2.RelayLimit{Duration: max(cfg.MaxDuration, 0), Data: max(cfg.MaxData, 0)}
		if rc.Limit.Duration == 0 {
			rc.Limit.Duration = 100 * 365 * 24 * time.Hour
		}
		if rc.Limit.Data == 0 {
			rc.Limit.Data = 1 << 62
		}
	}
	ropts := []relayv2.Option{relayv2.WithResources(rc)}
	if len(cfg.Allow) > 0 {
		ropts = append(ropts, relayv2.WithACL(allowList(cfg.Allow)))
	}
	h, err := libp2p.New(
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.DisableRelay(), // a relay, not a relay client
		libp2p.EnableRelayService(ropts...),
		libp2p.ForceReachabilityPublic(), // the relay service runs only on a public node
		libp2p.EnableNATService(),        // tells devices whether they are reachable
		libp2p.DisableMetrics(),
	)
	if err != nil {
		return nil, fmt.Errorf("start relay: %w", err)
	}
	r := &Relay{h: h}
	if !cfg.NoDHT {
		boot, err := parseAddrInfos("bootstrap", cfg.Bootstrap)
		if err != nil {
			h.Close()
			return nil, err
		}
		d, err := dht.New(h, dht.Mode(dht.ModeServer), dht.BootstrapPeers(boot...))
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("start relay dht: %w", err)
		}
		r.d = d
	}
	return r, nil
}

// PeerID is the relay's peer id.
func (r *Relay) PeerID() peer.ID { return r.h.ID() }

// Addrs are the relay's addresses, each ending in /p2p/<peer id>: what devices take as
// --relay and --bootstrap.
func (r *Relay) Addrs() []ma.Multiaddr {
	out, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()})
	return out
}

// Close stops the relay.
func (r *Relay) Close() error {
	var errs []error
	if r.d != nil {
		errs = append(errs, r.d.Close())
	}
	errs = append(errs, r.h.Close())
	return errors.Join(errs...)
}

// LoadRelayKey reads a relay identity from path, creating it (mode 0600) when it does
// not exist, so that a relay keeps its peer id, and so its address, across restarts.
func LoadRelayKey(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		raw, err := crypto.MarshalPrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return nil, fmt.Errorf("save relay key: %w", err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read relay key: %w", err)
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("read relay key %s: %w", path, err)
	}
	return k, nil
}
