package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/meshsync/meshsync/node"
)

type demoCmd struct {
	Keep bool `help:"Keep the demo's temporary directory."`
}

type demoDevice struct {
	Name      string `json:"name"`
	Records   int    `json:"records"`
	Root      string `json:"merkle_root"`
	Groceries string `json:"groceries"`
	State     string `json:"state"`
}

type demoOutput struct {
	Converged bool         `json:"converged"`
	Seconds   float64      `json:"seconds"`
	Dir       string       `json:"dir,omitempty"`
	Devices   []demoDevice `json:"devices"`
}

// Run starts three real nodes (libp2p on loopback, bbolt files in a temporary directory),
// pairs them with real invites, writes on each, takes one offline to make a conflict,
// brings it back, and shows states change, the conflict resolve and the stores converge.
func (c *demoCmd) Run(ctx context.Context, g *globals) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "meshsync-demo-")
	if err != nil {
		return err
	}
	if !c.Keep {
		defer os.RemoveAll(dir)
	}
	var mu sync.Mutex
	w := g.stdout
	if g.JSON {
		w = io.Discard
	}
	start := time.Now()
	step := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%6.2fs  "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
	cfg := func(name string) node.Config {
		return node.Config{Dir: filepath.Join(dir, name), Passphrase: []byte("demo passphrase " + name),
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LANOnly: true, RetryMin: 100 * time.Millisecond, RetryMax: time.Second}
	}
	var nodes []*node.Node
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	started := func(n *node.Node, err error) (*node.Node, error) {
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
		return n, n.Start(ctx)
	}

	laptop, err := started(node.Init(ctx, cfg("laptop"), "laptop"))
	if err != nil {
		return err
	}
	step("laptop  created a mesh: a random mesh key wrapped under Argon2id, an encrypted bbolt file")
	// Show the laptop's view of the others as it changes.
	states := laptop.SubscribeStates(64)
	defer states.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := map[string]node.Status{}
		for ev := range states.C {
			d := ev.Device
			// Sessions come and go in milliseconds; show where each device lands.
			if d.Status != node.StatusSyncing && last[d.Name] != d.Status && d.Name != "" {
				last[d.Name] = d.Status
				step("laptop  sees %-6s %s", d.Name, d.Status)
			}
		}
	}()
	defer wg.Wait()

	join := func(name string) (*node.Node, error) {
		code, _, err := laptop.Invite(time.Minute)
		if err != nil {
			return nil, err
		}
		n, err := started(node.Join(ctx, cfg(name), code, name))
		if err != nil {
			return nil, err
		}
		step("%-7s joined with invite %s… (one-time secret, bound to both peer ids)", name, code[:11])
		return n, nil
	}
	phone, err := join("phone")
	if err != nil {
		return err
	}
	tablet, err := join("tablet")
	if err != nil {
		return err
	}
	all := func() []*node.Node { return []*node.Node{laptop, phone, tablet} }
	// settle waits until every node has finished a clean session with every other one (a
	// device that just came up may not be dialable for a moment).
	settle := func() error {
		deadline := time.Now().Add(30 * time.Second)
		for _, n := range all() {
			for {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := n.WaitSynced(wctx)
				cancel()
				if err == nil {
					break
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					return fmt.Errorf("demo: %s did not sync: %w", n.Store().Device().Name, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		return nil
	}
	laptop.Put("notes", "groceries", []byte(`{"milk":2,"eggs":12}`))
	phone.Put("notes", "trip", []byte(`{"to":"Lisbon","days":4}`))
	tablet.Put("notes", "books", []byte(`["Dune","Piranesi"]`))
	step("each    wrote a note; pushes carry them to the others")
	if err := settle(); err != nil {
		return err
	}
	recs, _ := tablet.List("notes", "")
	step("tablet  holds %d notes", len(recs))

	// The tablet goes offline and edits while apart.
	if err := tablet.Close(); err != nil {
		return err
	}
	step("tablet  goes offline")
	laptop.Put("notes", "groceries", []byte(`{"milk":3,"eggs":12}`))
	step("laptop  changes groceries: milk 3")
	tablet, err = node.Open(ctx, cfg("tablet"))
	if err != nil {
		return err
	}
	nodes = append(nodes, tablet)
	tablet.Put("notes", "groceries", []byte(`{"milk":2,"eggs":6}`))
	step("tablet  changes groceries offline: eggs 6 (a concurrent edit)")
	if err := tablet.Start(ctx); err != nil {
		return err
	}
	step("tablet  comes back online")
	if err := settle(); err != nil {
		return err
	}
	rec, err := phone.Get("notes", "groceries")
	if err != nil {
		return err
	}
	if rec.Conflict != nil {
		step("phone   groceries has an %s conflict between %d versions; %s picks %s on every device", rec.Conflict.Type, rec.Versions, rec.Conflict.Strategy, rec.Value)
	}
	laptop.Put("notes", "groceries", []byte(`{"milk":3,"eggs":6}`))
	step("laptop  resolves it by writing both changes: a version that dominates both")
	if err := settle(); err != nil {
		return err
	}

	out := demoOutput{Seconds: time.Since(start).Seconds()}
	if c.Keep {
		out.Dir = dir
	}
	roots := map[string]bool{}
	for _, n := range all() {
		root, err := n.Store().Replication().Root()
		if err != nil {
			return err
		}
		recs, err := n.List("", "")
		if err != nil {
			return err
		}
		gr, err := n.Get("notes", "groceries")
		if err != nil {
			return err
		}
		d := demoDevice{Name: n.Store().Device().Name, Records: len(recs), Root: fmt.Sprintf("%x", root.FP[:6]), Groceries: string(gr.Value), State: string(n.States().Overall)}
		roots[d.Root] = true
		out.Devices = append(out.Devices, d)
	}
	out.Converged = len(roots) == 1
	states.Close()
	wg.Wait()
	err = g.print(out, func(w io.Writer) {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tSTATE\tRECORDS\tMERKLE ROOT\tnotes/groceries")
		for _, d := range out.Devices {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", d.Name, d.State, d.Records, d.Root, d.Groceries)
		}
		tw.Flush()
		if out.Converged {
			fmt.Fprintf(w, "\nAll three stores converged (identical Merkle roots) in %.1f s.\n", out.Seconds)
		}
		if c.Keep {
			fmt.Fprintln(w, "Files kept in", dir)
		}
	})
	if err != nil {
		return err
	}
	if !out.Converged {
		return fmt.Errorf("demo: the stores did not converge")
	}
	return nil
}
