package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/meshsync/meshsync/node/localapi"
)

type syncCmd struct {
	netFlags
	Wait    bool          `help:"Return only when every reachable device is up to date (exit 1 on timeout)."`
	Timeout time.Duration `help:"How long --wait waits." default:"30s"`
}

// errSyncTimeout means --wait gave up.
var errSyncTimeout = errors.New("not every device is up to date")

func (c *syncCmd) Run(ctx context.Context, g *globals) error {
	var st localapi.Status
	if d := g.daemon(ctx); d != nil {
		defer d.Close()
		var err error
		st, err = d.Sync(ctx, c.Wait, c.Timeout)
		if err != nil {
			if c.Wait {
				return fmt.Errorf("sync: %w after %s: %v", errSyncTimeout, c.Timeout, err)
			}
			return err
		}
		if !c.Wait {
			return g.print(map[string]bool{"started": true}, func(w io.Writer) { fmt.Fprintln(w, "Sync started.") })
		}
	} else {
		// No daemon: bring the node up for this command, sync, and stop.
		n, err := g.openNode(ctx, c.netFlags, true)
		if err != nil {
			return err
		}
		defer n.Close()
		wctx, cancel := context.WithTimeout(ctx, c.Timeout)
		werr := n.WaitSynced(wctx)
		cancel()
		st, err = localapi.NodeStatus(n, false)
		if err != nil {
			return err
		}
		if werr != nil {
			return fmt.Errorf("sync: %w: %v", errSyncTimeout, werr)
		}
	}
	return g.print(st, func(w io.Writer) {
		fmt.Fprintf(w, "Up to date with %d devices.\n", len(st.Devices))
	})
}
