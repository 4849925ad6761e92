package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node"
)

// relayCmd runs a relay of the person's own: circuit relay v2 for devices behind NATs,
// with limits fit for syncing, and a DHT server they can bootstrap from.
type relayCmd struct {
	Listen          []string      `help:"Multiaddrs to listen on (default: TCP and QUIC on port 4001)." env:"MESHSYNC_RELAY_LISTEN" sep:"," placeholder:"MULTIADDR"`
	Key             string        `help:"Identity file, created when missing (default: relay.key in the data directory)." placeholder:"FILE"`
	MaxDuration     time.Duration `name:"max-duration" help:"Longest relayed connection; negative: no cap." default:"1h"`
	MaxData         int64         `name:"max-data" help:"Most bytes per relayed connection and direction; negative: no cap." default:"1073741824"`
	MaxReservations int           `name:"max-reservations" help:"Most devices holding a slot at once." default:"64"`
	Allow           []string      `help:"Only these peer ids may use the relay, repeatable (default: anyone)." placeholder:"PEERID"`
	NoDHT           bool          `name:"no-dht" help:"Do not serve the DHT."`
	Bootstrap       []string      `help:"DHT peer for this relay's DHT to join, repeatable (default: none)." placeholder:"MULTIADDR"`
}

// Run runs the relay until SIGINT or SIGTERM, after printing its addresses.
func (c *relayCmd) Run(ctx context.Context, g *globals) error {
	keyFile := c.Key
	if keyFile == "" {
		keyFile = filepath.Join(g.dir(), "relay.key")
	}
	key, err := node.LoadRelayKey(keyFile)
	if err != nil {
		return err
	}
	cfg := node.RelayConfig{ListenAddrs: c.Listen, Key: key, MaxDuration: c.MaxDuration, MaxData: c.MaxData,
		MaxReservations: c.MaxReservations, NoDHT: c.NoDHT, Bootstrap: c.Bootstrap}
	for _, s := range c.Allow {
		p, err := peer.Decode(s)
		if err != nil {
			return usagef("--allow %q: %v", s, err)
		}
		cfg.Allow = append(cfg.Allow, p)
	}
	r, err := node.StartRelay(cfg)
	if err != nil {
		return err
	}
	defer r.Close()
	addrs := make([]string, 0)
	public := false
	for _, a := range r.Addrs() {
		addrs = append(addrs, a.String())
		public = public || manet.IsPublicAddr(a)
	}
	if !public {
		// libp2p builds no relay address from a private or documentation range: devices
		// would reserve a slot and still advertise nothing others can dial through it.
		fmt.Fprintln(g.stderr, "warning: none of these addresses is public: devices behind a NAT get no usable relay address from this relay. Run it on a host with a public address (and give that address with --listen), or use it only on this network.")
	}
	if g.JSON {
		g.print(map[string]any{"peer_id": r.PeerID().String(), "addrs": addrs}, nil)
	} else {
		fmt.Fprintln(g.stdout, "relay running; give devices --relay and --bootstrap with one of:")
		for _, a := range addrs {
			fmt.Fprintln(g.stdout, a)
		}
	}
	<-ctx.Done()
	return nil
}
