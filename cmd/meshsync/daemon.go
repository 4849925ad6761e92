package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/node/web"
)

type daemonCmd struct {
	netFlags
	LogLevel string `name:"log-level" help:"debug, info, warn or error." default:"info" enum:"debug,info,warn,error"`
	UIListen string `name:"ui-listen" help:"Loopback address of the web page (meshsync ui), such as 127.0.0.1:8384 (default: a port chosen at start); off serves no page." env:"MESHSYNC_UI_LISTEN" placeholder:"HOST:PORT"`
}

// Run runs the node in the foreground until SIGINT or SIGTERM, serving the control API on
// a unix socket in the data directory.
func (c *daemonCmd) Run(ctx context.Context, g *globals) error { return c.run(ctx, g, false) }

// daemonLockWait is how long a starting daemon waits for a command that holds the store
// (a `meshsync put` run by hand, an import) before it gives up and names that process.
const daemonLockWait = 5 * time.Second

// daemonConfig is the node configuration of a daemon: a command's, waiting daemonLockWait
// for the store.
func (g *globals) daemonConfig(pass []byte, nf netFlags, log *slog.Logger) node.Config {
	cfg := g.nodeConfig(pass, nf, log)
	cfg.Store.LockTimeout = daemonLockWait
	return cfg
}

// run runs the daemon; replica says the directory must hold a blind replica.
func (c *daemonCmd) run(ctx context.Context, g *globals, replica bool) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return usagef("--log-level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
	pass, err := g.passphrase(false)
	if err != nil {
		return err
	}
	n, err := node.Open(ctx, g.daemonConfig(pass, c.netFlags, log))
	if err != nil {
		return err
	}
	defer n.Close()
	if replica && !n.Blind() {
		return fmt.Errorf("%s holds a device of the mesh, not a blind replica: run `meshsync daemon` here", g.dir())
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	opts := &localapi.Options{Logger: log}
	var ws *web.Server // the web page, on a device (a blind replica has nothing to show)
	page := !n.Blind() && c.UIListen != "off"
	if page {
		opts.UI = func() (string, error) { return ws.LoginURL() }
	}
	srv := localapi.NewNodeServer(n, opts)
	if page {
		// The page drives the same API as the CLI, in this process.
		cl, err := localapi.Local(srv, nil)
		if err != nil {
			return err
		}
		defer cl.Close()
		if ws, err = web.Listen(cl, &web.Options{Addr: c.UIListen, Logger: log}); err != nil {
			return fmt.Errorf("--ui-listen: %w", err)
		}
		wctx, stopWeb := context.WithCancel(ctx)
		wsDone := make(chan struct{})
		go func() { defer close(wsDone); ws.Serve(wctx) }()
		defer func() { stopWeb(); <-wsDone }()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, g.dir()) }()
	addrs := make([]string, 0)
	for _, a := range n.Addrs() {
		addrs = append(addrs, a.String())
	}
	dev := n.Store().Device()
	role := node.RoleDevice
	if n.Blind() {
		role = node.RoleReplica
	}
	uiAddr := ""
	if ws != nil {
		uiAddr = "http://" + ws.Addr()
	}
	log.Info("meshsync daemon running", "role", role, "ui", uiAddr, "device", dev.Name, "id", dev.ID, "peer", n.PeerID().String(),
		"listen", strings.Join(addrs, " "), "socket", localapi.SocketPath(g.dir()))
	if g.JSON {
		out := map[string]any{"device": dev, "role": role, "peer_id": n.PeerID().String(), "addrs": addrs, "socket": localapi.SocketPath(g.dir())}
		if uiAddr != "" {
			out["ui"] = uiAddr // open it with `meshsync ui`: the page needs a login link
		}
		g.print(out, nil)
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		<-served
		return nil
	case err := <-served:
		if err != nil {
			return fmt.Errorf("control API: %w", err)
		}
		return nil
	}
}
