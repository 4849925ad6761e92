package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/meshsync/meshsync/node"
	"golang.org/x/term"
)

// netFlags are the network flags of the commands that run a node.
type netFlags struct {
	Listen []string `help:"Multiaddrs to listen on (default: TCP and QUIC on port 4747, or a random port when it is taken)." env:"MESHSYNC_LISTEN" sep:"," placeholder:"MULTIADDR"`
	NoMDNS bool     `name:"no-mdns" help:"Do not announce this device on the LAN or look for others there." env:"MESHSYNC_NO_MDNS"`
}

func (g *globals) nodeConfig(pass []byte, nf netFlags, log *slog.Logger) node.Config {
	return node.Config{Dir: g.dir(), Passphrase: pass, ListenAddrs: nf.Listen, EnableMDNS: !nf.NoMDNS, Logger: log}
}

// openNode opens (and, with start, starts) a node over the data directory for the length
// of one command, when no daemon runs.
func (g *globals) openNode(ctx context.Context, nf netFlags, start bool) (*node.Node, error) {
	pass, err := g.passphrase(false)
	if err != nil {
		return nil, err
	}
	n, err := node.Open(ctx, g.nodeConfig(pass, nf, nil))
	if err != nil {
		return nil, err
	}
	if start {
		if err := n.Start(ctx); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// stdoutTerminal reports whether standard output is a terminal.
func (g *globals) stdoutTerminal() bool {
	f, ok := g.stdout.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// color reports whether output may use color (a terminal, and NO_COLOR unset).
func (g *globals) color() bool {
	return g.stdoutTerminal() && os.Getenv("NO_COLOR") == ""
}
