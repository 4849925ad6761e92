package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

type joinCmd struct {
	netFlags
	Code string   `arg:"" help:"The invite code printed by meshsync pair on a device of the mesh: the long code, or a short one (4-garden-orbit-pencil) from pair --short."`
	Peer []string `help:"Address of the inviting device (ending in /p2p/<peer id>, as pair --json lists them), repeatable: join dials it and skips discovery." placeholder:"MULTIADDR"`
	Name string   `help:"Name of this device (default the host name)." placeholder:"DEVICE"`
	Only []string `name:"only" sep:"," help:"Hold only these collections, and meshsync's own (selective sync; default all; see meshsync scope)." placeholder:"COLL,..."`
}

type joinOutput struct {
	Dir      string   `json:"dir"`
	DeviceID string   `json:"device_id"`
	Name     string   `json:"name"`
	PeerID   string   `json:"peer_id"`
	Devices  []string `json:"devices"`
	Synced   bool     `json:"synced"`
	Replica  bool     `json:"replica"`
	Scope    []string `json:"scope"`
}

// Run joins the mesh of an invite into an empty data directory, takes a first sync, and
// stops; `meshsync daemon` keeps it in sync from then on.
func (c *joinCmd) Run(ctx context.Context, g *globals) error {
	sc, err := store.NewScope(c.Only...)
	if err != nil {
		return usagef("--only: %v", err)
	}
	pass, err := g.passphrase(true)
	if err != nil {
		return err
	}
	cfg := g.nodeConfig(pass, c.netFlags, nil)
	cfg.JoinPeers = c.Peer
	n, err := node.Join(ctx, cfg, c.Code, c.Name)
	if err != nil {
		return err
	}
	defer n.Close()
	if !sc.All() {
		if n.Blind() {
			// Known only once the inviter answered (the invite is used by now).
			fmt.Fprintln(g.stderr, "meshsync: --only ignored: a blind replica carries every collection")
			sc = store.Scope{}
		} else if _, err := n.SetScope(sc, store.ScopeOptions{}); err != nil {
			return err
		}
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	stopBar := watchInitialSync(sctx, g, n)
	serr := n.WaitSynced(sctx)
	stopBar()
	cancel()
	dev := n.Store().Device()
	out := joinOutput{Dir: g.dir(), DeviceID: string(dev.ID), Name: dev.Name, PeerID: n.PeerID().String(), Synced: serr == nil, Devices: []string{}, Replica: n.Blind(),
		Scope: append([]string{}, sc.Collections...)}
	for _, d := range n.Devices() {
		if !d.Removed && d.Name != "" {
			out.Devices = append(out.Devices, d.Name)
		} else if !d.Removed {
			out.Devices = append(out.Devices, d.Role+" "+d.ID) // a replica knows no names
		}
	}
	if out.Replica {
		return g.print(out, func(w io.Writer) {
			fmt.Fprintf(w, "This machine is now a blind replica of the mesh (%s, in %s).\n", out.DeviceID, out.Dir)
			fmt.Fprintln(w, "It holds a token, not the mesh key: it stores and forwards envelopes it cannot open.")
			if serr != nil {
				fmt.Fprintf(w, "The first sync did not finish (%v); the replica will go on.\n", serr)
			}
			fmt.Fprintln(w, "Keep it running: meshsync replica")
		})
	}
	return g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "Joined the mesh as %s (%s) in %s.\n", shown(out.Name), out.DeviceID, out.Dir)
		fmt.Fprintf(w, "Devices: %v\n", shownAll(out.Devices))
		if !sc.All() {
			fmt.Fprintf(w, "This device holds %s (meshsync scope to change it).\n", strings.Join(sc.Collections, ", "))
		}
		if serr != nil {
			fmt.Fprintf(w, "The first sync did not finish (%v); the daemon will go on.\n", serr)
		}
		fmt.Fprintln(w, "Keep it in sync: meshsync daemon")
	})
}
