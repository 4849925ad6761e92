package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/store"
)

// client returns a client of the data directory's local API: the daemon's when one runs,
// else a server in this process, over the store or, with nf, over a node whose network
// comes up only when a route needs it (invite, sync, share). Every command that reads or
// writes the mesh goes through it; Close it when done.
func (g *globals) client(ctx context.Context, nf *netFlags) (*localapi.Client, error) {
	if _, err := os.Stat(localapi.SocketPath(g.dir())); err == nil {
		c, err := localapi.Dial(ctx, g.dir())
		if !errors.Is(err, localapi.ErrNoDaemon) {
			return c, err
		}
	}
	if _, err := os.Stat(filepath.Join(g.dir(), store.FileName)); err != nil {
		return nil, fmt.Errorf("open store %s: %w", g.dir(), store.ErrNoStore)
	}
	pass, err := g.passphrase(false)
	if err != nil {
		return nil, err
	}
	locked := func(err error) error {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%w (and no daemon answers on %s)", err, localapi.SocketPath(g.dir()))
		}
		return err
	}
	opts := &localapi.Options{InProcess: true}
	if nf == nil {
		st, err := store.Open(g.dir(), pass, nil)
		if err != nil {
			return nil, locked(err)
		}
		return localapi.Local(localapi.NewServer(st, opts), st)
	}
	n, err := node.Open(ctx, g.nodeConfig(pass, *nf, nil))
	if err != nil {
		return nil, locked(err)
	}
	return localapi.Local(localapi.NewNodeServer(n, opts), n)
}
