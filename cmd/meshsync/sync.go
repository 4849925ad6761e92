package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/meshsync/meshsync/node"
)

type syncCmd struct {
	netFlags
	Wait    bool          `help:"Return only when every reachable device is up to date (exit 1 on timeout)."`
	Timeout time.Duration `help:"How long --wait waits." default:"30s"`
}

// errSyncTimeout means --wait gave up.
var errSyncTimeout = errors.New("not every device is up to date")

func (c *syncCmd) Run(ctx context.Context, g *globals) error {
	cl, err := g.client(ctx, &c.netFlags)
	if err != nil {
		return err
	}
	defer cl.Close()
	// A node in this process syncs only while this command runs: it always waits.
	wait := c.Wait || !cl.Daemon()
	st, err := cl.Sync(ctx, wait, c.Timeout)
	switch {
	case err != nil && wait && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, node.ErrUnreachable)):
		return fmt.Errorf("sync: %w after %s: %v", errSyncTimeout, c.Timeout, err)
	case err != nil:
		return err
	case !wait:
		return g.print(map[string]bool{"started": true}, func(w io.Writer) { fmt.Fprintln(w, "Sync started.") })
	}
	return g.print(st, func(w io.Writer) {
		fmt.Fprintf(w, "Up to date with %d devices.\n", len(st.Devices))
	})
}
