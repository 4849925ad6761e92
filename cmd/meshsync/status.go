package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/meshsync/meshsync/node/localapi"
)

type statusCmd struct {
	Watch bool `help:"Keep showing the status as it changes (JSON lines when not on a terminal)."`
}

func (c *statusCmd) Run(ctx context.Context, g *globals) error {
	d := g.daemon(ctx)
	if d == nil {
		if c.Watch {
			return fmt.Errorf("status --watch: %w: start it with `meshsync daemon`", localapi.ErrNoDaemon)
		}
		n, err := g.openNode(ctx, netFlags{}, false)
		if err != nil {
			return err
		}
		defer n.Close()
		st, err := localapi.NodeStatus(n, false)
		if err != nil {
			return err
		}
		return g.print(st, func(w io.Writer) { writeStatus(w, st) })
	}
	defer d.Close()
	st, err := d.Status()
	if err != nil {
		return err
	}
	if !c.Watch {
		return g.print(st, func(w io.Writer) { writeStatus(w, st) })
	}
	lines := g.JSON || !g.stdoutTerminal()
	show := func(st localapi.Status) {
		if lines {
			json.NewEncoder(g.stdout).Encode(st)
			return
		}
		fmt.Fprint(g.stdout, "\x1b[H\x1b[2J") // clear the terminal
		writeStatus(g.stdout, st)
		fmt.Fprintf(g.stdout, "\n(live, %s; Ctrl-C to stop)\n", time.Now().Format("15:04:05"))
	}
	show(st)
	err = d.Events(ctx, false, func(localapi.Event) error {
		st, err := d.Status()
		if err != nil {
			return err
		}
		show(st)
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// writeStatus prints health warnings, then one line per device.
func writeStatus(w io.Writer, st localapi.Status) {
	for _, warn := range st.Warnings {
		fmt.Fprintln(w, "! "+shown(warn))
	}
	fmt.Fprintf(w, "This device: %s (%s), %s\n", shown(st.Device.Name), shortPeer(st.PeerID), st.Overall)
	if len(st.Devices) == 0 {
		fmt.Fprintln(w, "No other devices yet: add one with `meshsync pair`.")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tID\tSTATE\tLAST SEEN\tPENDING IN/OUT\tPATH\tCONFLICTS")
	for _, d := range st.Devices {
		state := string(d.Status)
		if d.Removed {
			state = "removed"
		} else if d.Reason != "" {
			state += " (" + shown(d.Reason)
			if !d.NextRetry.IsZero() {
				state += ", retry " + d.NextRetry.Local().Format("15:04:05")
			}
			state += ")"
		}
		path := "-"
		if d.Connected {
			path = "direct"
			if d.Relayed {
				path = "relayed"
			}
		}
		name := d.Name
		if name == "" { // a blind replica knows devices by id only
			name = d.DeviceID
		}
		name = shown(name)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%s\t%s\t%d\n", name, shortPeer(d.PeerID.String()), state, ago(d.LastSeen), pending(d.PendingIn), pending(d.PendingOut), path, d.Conflicts)
	}
	tw.Flush()
}

func shortPeer(p string) string {
	if len(p) > 10 {
		return p[len(p)-8:]
	}
	return p
}

func pending(n int64) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < 5*time.Second:
		return "now"
	case d < time.Hour:
		return d.String() + " ago"
	case d < 48*time.Hour:
		return t.Local().Format("15:04")
	}
	return t.Local().Format("2006-01-02")
}
