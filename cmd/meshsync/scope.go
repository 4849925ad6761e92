package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/store"
)

type scopeCmd struct {
	Show scopeShowCmd `cmd:"" default:"1" help:"Show the collections this device holds (the default)."`
	Set  scopeSetCmd  `cmd:"" help:"Hold only these collections (and meshsync's own): widening fetches the new ones, narrowing drops the others from this device only."`
	All  scopeAllCmd  `cmd:"" help:"Hold every collection again (fetches what this device lacks)."`
}

type scopeShowCmd struct{}

type scopeSetCmd struct {
	Collections []string `arg:"" help:"Collections to hold."`
	Yes         bool     `short:"y" help:"Drop the records of the collections left out without asking (the other devices keep them)."`
	Force       bool     `help:"Narrow even over writes made here that no other device has yet (they are lost)."`
}

type scopeAllCmd struct{}

func scopeText(v localapi.ScopeView) string {
	if v.All {
		return "all collections"
	}
	return strings.Join(v.Collections, ", ") + " (and meshsync's own collections)"
}

func (c *scopeShowCmd) Run(ctx context.Context, g *globals) error {
	cl, err := g.client(ctx, &netFlags{})
	if err != nil {
		return err
	}
	defer cl.Close()
	v, err := cl.Scope(ctx)
	if err != nil {
		return err
	}
	return g.print(v, func(w io.Writer) { fmt.Fprintf(w, "This device holds %s.\n", scopeText(v)) })
}

func (c *scopeSetCmd) Run(ctx context.Context, g *globals) error {
	var cols []string
	for _, a := range c.Collections {
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cols = append(cols, s)
			}
		}
	}
	if len(cols) == 0 {
		return usagef("name the collections to hold (or run `meshsync scope all`)")
	}
	return g.setScope(ctx, cols, c.Yes, c.Force)
}

func (c *scopeAllCmd) Run(ctx context.Context, g *globals) error {
	return g.setScope(ctx, nil, false, false)
}

// setScope changes the scope, asking before narrowing drops records; it refuses to drop
// writes made here that no other device has yet unless force.
func (g *globals) setScope(ctx context.Context, cols []string, yes, force bool) error {
	cl, err := g.client(ctx, &netFlags{})
	if err != nil {
		return err
	}
	defer cl.Close()
	dry, err := cl.SetScope(ctx, cols, true)
	if err != nil {
		return err
	}
	if dry.Unsent > 0 && !force {
		return fmt.Errorf("%w: %d of the %d records this drops hold writes made here that no other device has yet; sync first (meshsync sync --wait) and run again, or add --force to lose them", store.ErrUnsent, dry.Unsent, dry.Dropped)
	}
	if dry.Dropped > 0 && !yes {
		f, ok := g.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return usagef("this drops %d records of the collections left out from this device (the other devices keep them, nothing is deleted there): run again with --yes", dry.Dropped)
		}
		fmt.Fprintf(g.stderr, "Drop %d records of the collections left out from this device? The other devices keep them. [y/N] ", dry.Dropped)
		line, _ := bufio.NewReader(f).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return usagef("scope unchanged")
		}
	}
	res, err := cl.SetScopeWith(ctx, localapi.ScopeRequest{Collections: cols, Force: force})
	if err != nil {
		return err
	}
	return g.print(res, func(w io.Writer) {
		fmt.Fprintf(w, "This device now holds %s.\n", scopeText(res.ScopeView))
		if res.Dropped > 0 {
			fmt.Fprintf(w, "Dropped %d records here; the other devices keep them.\n", res.Dropped)
		}
		if res.Widened {
			fmt.Fprintln(w, "The other devices send the collections added at the next sync; `meshsync status` shows it.")
		}
	})
}
