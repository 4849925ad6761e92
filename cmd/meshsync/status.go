package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
)

type statusCmd struct {
	Watch bool `help:"Keep showing the status as it changes (JSON lines when not on a terminal)."`
}

func (c *statusCmd) Run(ctx context.Context, g *globals) error {
	if c.Watch {
		return c.watch(ctx, g)
	}
	cl, err := g.client(ctx, &netFlags{})
	if err != nil {
		return err
	}
	defer cl.Close()
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	return g.print(st, func(w io.Writer) { writeStatus(w, st, g.termWidth()) })
}

// watch shows the daemon's status again at every event: only a daemon's states move.
func (c *statusCmd) watch(ctx context.Context, g *globals) error {
	cl, err := localapi.Dial(ctx, g.dir())
	if err != nil {
		return fmt.Errorf("status --watch: %w", err)
	}
	defer cl.Close()
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	lines := g.JSON || !g.stdoutTerminal()
	show := func(st localapi.Status) {
		if lines {
			json.NewEncoder(g.stdout).Encode(st)
			return
		}
		fmt.Fprint(g.stdout, "\x1b[H\x1b[2J") // clear the terminal
		writeStatus(g.stdout, st, g.termWidth())
		fmt.Fprintf(g.stdout, "\n(live, %s; Ctrl-C to stop)\n", time.Now().Format("15:04:05"))
	}
	show(st)
	for _, err := range cl.Events(ctx, false) {
		if err == nil {
			st, err = cl.Status(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		show(st)
	}
	return nil
}

// writeStatus prints health warnings, then one line per device. On a terminal of width
// columns a device's reason (a libp2p dial error can run to several lines) is cut so that
// the row fits; width 0 keeps it whole, on one line. --json always has the whole text.
func writeStatus(w io.Writer, st localapi.Status, width int) {
	for _, warn := range st.Warnings {
		fmt.Fprintln(w, "! "+shown(warn))
	}
	fmt.Fprintf(w, "This device: %s (%s), %s\n", shown(st.Device.Name), shortPeer(st.PeerID), st.Overall)
	if len(st.Scope) > 0 {
		fmt.Fprintf(w, "It holds: %s (and meshsync's own collections; meshsync scope to change)\n", shown(strings.Join(st.Scope, ", ")))
	}
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
			state += " (" + cutText(shown(d.Reason), reasonWidth(width))
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
				if d.Direct != nil {
					path += " (" + directText(d.Direct, time.Now()) + ")"
				}
			}
		}
		name := d.Name
		if name == "" { // a blind replica knows devices by id only
			name = d.DeviceID
		}
		if len(d.Scope) > 0 {
			name += " [" + strings.Join(d.Scope, ",") + "]"
		}
		name = shown(name)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%s\t%s\t%d\n", name, shortPeer(d.PeerID.String()), state, ago(d.LastSeen), pending(d.PendingIn), pending(d.PendingOut), path, d.Conflicts)
	}
	tw.Flush()
	for _, d := range st.Devices {
		if is := d.InitialSync; is != nil {
			fmt.Fprintf(w, "Initial sync from %s: %s\n", shown(d.Name), initialText(*is, time.Now()))
		}
	}
}

// initialText says how far an initial sync has come: count, share, rate and time left.
func initialText(is node.InitialSync, now time.Time) string {
	t := fmt.Sprintf("%d of about %d records", is.Received, is.Total)
	if is.Total > 0 {
		t += fmt.Sprintf(" (%d%%)", 100*is.Received/is.Total)
	}
	if el := now.Sub(is.Started).Seconds(); el > 0 && is.Received > 0 {
		rate := float64(is.Received) / el
		t += fmt.Sprintf(", %.0f/s", rate)
		if left := float64(is.Total-is.Received) / rate; left > 0 {
			t += fmt.Sprintf(", about %s left", (time.Duration(left) * time.Second).Round(time.Second))
		}
	}
	return t
}

// directText says how the device tries to make a relayed path direct, as of now:
// "trying direct, next in 20 s".
func directText(d *node.DirectTry, now time.Time) string {
	switch d.State {
	case node.DirectTrying:
		s := "trying direct, now"
		if wait := d.Next.Sub(now).Round(time.Second); wait >= time.Second {
			s = "trying direct, next in " + shortWait(wait)
		}
		if d.Attempts > 0 {
			s += fmt.Sprintf(", %d failed", d.Attempts)
		}
		return s
	case node.DirectNoAddress:
		return "direct once this device learns its public address"
	case node.DirectDeviceNoAddress:
		return "direct once the device learns its public address"
	case node.DirectDeviceTries:
		return "the device tries direct"
	}
	return string(d.State)
}

// shortWait is d as "20 s", "4 min".
func shortWait(d time.Duration) string {
	if d < 2*time.Minute {
		return fmt.Sprintf("%d s", int(d/time.Second))
	}
	return fmt.Sprintf("%d min", int(d/time.Minute))
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

// reasonWidth is how many characters of a reason fit a status row on a terminal of width
// columns (the other columns take about 80); 0 means no limit.
func reasonWidth(width int) int {
	if width <= 0 {
		return 0
	}
	return max(24, width-80)
}

// cutText cuts s to n characters (runes), ending in "…"; n 0 keeps it whole.
func cutText(s string, n int) string {
	r := []rune(s)
	if n <= 0 || len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
