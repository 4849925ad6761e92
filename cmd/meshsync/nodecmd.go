package main

import (
	"log/slog"
	"os"

	"github.com/meshsync/meshsync/node"
	"golang.org/x/term"
)

// netFlags are the network flags of the commands that run a node.
type netFlags struct {
	Listen    []string `help:"Multiaddrs to listen on (default: TCP and QUIC on port 4747, or a random port when it is taken)." env:"MESHSYNC_LISTEN" sep:"," placeholder:"MULTIADDR"`
	NoMDNS    bool     `name:"no-mdns" help:"Do not announce this device on the LAN or look for others there." env:"MESHSYNC_NO_MDNS"`
	LANOnly   bool     `name:"lan-only" help:"Stay on the LAN: no DHT rendezvous, no relays, no hole punching." env:"MESHSYNC_LAN_ONLY"`
	Bootstrap []string `help:"DHT bootstrap peer, repeatable (default: the public libp2p bootstrap list); join also looks for the inviting device on the DHT through it." env:"MESHSYNC_BOOTSTRAP" sep:"," placeholder:"MULTIADDR"`
	Relay     []string `help:"Circuit relay to keep a reservation on, repeatable (see meshsync relay); join also looks for the inviting device through it." env:"MESHSYNC_RELAY" sep:"," placeholder:"MULTIADDR"`
	DHTMode   string   `name:"dht-mode" help:"auto, client or server: client for devices that should not serve DHT queries." env:"MESHSYNC_DHT_MODE" default:"auto" enum:"auto,client,server"`
	PortMap   bool     `name:"port-map" help:"Ask the router for a port mapping (UPnP, NAT-PMP)." env:"MESHSYNC_PORT_MAP"`
}

func (g *globals) nodeConfig(pass []byte, nf netFlags, log *slog.Logger) node.Config {
	mode := map[string]node.DHTMode{"client": node.DHTClient, "server": node.DHTServer}[nf.DHTMode]
	return node.Config{Dir: g.dir(), Passphrase: pass, ListenAddrs: nf.Listen, EnableMDNS: !nf.NoMDNS, Logger: log,
		LANOnly: nf.LANOnly, Bootstrap: nf.Bootstrap, Relays: nf.Relay, DHTMode: mode, NATPortMap: nf.PortMap}
}

// stdoutTerminal reports whether standard output is a terminal.
func (g *globals) stdoutTerminal() bool {
	f, ok := g.stdout.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// termWidth is the width of the terminal standard output writes to, 0 when it is not one.
func (g *globals) termWidth() int {
	f, ok := g.stdout.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return w
}

// color reports whether output may use color (a terminal, and NO_COLOR unset).
func (g *globals) color() bool {
	return g.stdoutTerminal() && os.Getenv("NO_COLOR") == ""
}
