package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
)

type pairCmd struct {
	netFlags
	Expires time.Duration `help:"How long the invite stays valid (at most 24h)." default:"10m"`
	Replica bool          `help:"Invite a blind replica: an always-on machine that stores and forwards envelopes but receives no key and can read nothing."`
	Short   bool          `help:"Print a short code to read aloud (4-garden-orbit-pencil) instead of the long code: valid 10 minutes and 3 wrong tries, paired over a PAKE."`
}

type pairOutput struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
	// Addrs are this device's addresses with its peer id, for `join CODE --peer ADDR`.
	Addrs   []string `json:"addrs"`
	Joined  []string `json:"joined,omitempty"`
	Replica bool     `json:"replica,omitempty"`
	Short   bool     `json:"short,omitempty"`
}

// Run prints an invite. With a daemon running, the daemon answers the new device and this
// returns at once; otherwise the node in this process stays online until the invite is
// used or expires.
func (c *pairCmd) Run(ctx context.Context, g *globals) error {
	if c.Expires <= 0 {
		return usagef("--expires must be positive")
	}
	if c.Expires > node.MaxInviteExpiry {
		return usagef("--expires %s is longer than the maximum of %gh: an invite is a key to the mesh while it lives; run `meshsync pair` again when the device is at hand", c.Expires, node.MaxInviteExpiry.Hours())
	}
	if c.Short && c.Replica {
		return usagef("--short cannot invite a replica: run `meshsync pair --replica` and paste its code on the replica")
	}
	if c.Short && c.Expires > node.MaxShortInviteExpiry {
		return usagef("--expires %s is too long for a short code (at most %s): its 33 bits are safe only while it is short-lived; use the long code for longer", c.Expires, node.MaxShortInviteExpiry)
	}
	cl, err := g.client(ctx, &c.netFlags)
	if err != nil {
		return err
	}
	defer cl.Close()
	var inv localapi.Invite
	if c.Short {
		inv, err = cl.InviteShort(ctx, c.Expires)
	} else {
		inv, err = cl.Invite(ctx, c.Expires, c.Replica)
	}
	if err != nil {
		return err
	}
	out := pairOutput{Code: inv.Code, Expires: inv.Expires, Addrs: inv.Addrs, Replica: c.Replica, Short: c.Short}
	if out.Addrs == nil {
		out.Addrs = []string{}
	}
	if cl.Daemon() {
		return g.printInvite(out, true)
	}
	// The node that answers the new device lives in this process: wait for it.
	if err := g.printInvite(out, false); err != nil {
		return err
	}
	devs, err := cl.Devices(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, d := range devs {
		known[d.ID] = true
	}
	wait, cancel := context.WithDeadline(ctx, inv.Expires)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-wait.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("pairing stopped before a device joined")
			}
			return fmt.Errorf("the invite expired before a device joined: run `meshsync pair` again")
		case <-tick.C:
		}
		// Tell of every wrong code as it happens, and stop when they closed the invite.
		if st, err := cl.InviteState(wait); err == nil && st.Failures > failures {
			failures = st.Failures
			if st.Closed == "failures" {
				return fmt.Errorf("%w: the invite closed after %d wrong codes: check the code with the other person and run `meshsync pair` again", node.ErrInviteRefused, failures)
			}
			if !g.JSON {
				fmt.Fprintf(g.stderr, "A device tried a wrong code (%d of %d tries used).\n", failures, node.MaxInviteFailures)
			}
		}
		devs, err := cl.Devices(wait)
		if err != nil && wait.Err() != nil {
			continue // the deadline or Ctrl-C: said on the next turn
		}
		if err != nil {
			return err
		}
		for _, d := range devs {
			if !known[d.ID] {
				out.Joined = append(out.Joined, d.Name)
				// Give the new device a moment to take the first sync.
				cl.Sync(ctx, true, 30*time.Second)
				if g.JSON {
					return g.print(out, nil)
				}
				fmt.Fprintf(g.stdout, "%s joined the mesh.\n", shown(d.Name))
				return nil
			}
		}
	}
}

// printInvite shows the code on a line of its own (and a QR code on a terminal).
func (g *globals) printInvite(out pairOutput, daemon bool) error {
	if g.JSON {
		if daemon {
			return g.print(out, nil)
		}
		return nil // printed once the device joined, with its name
	}
	return g.print(out, func(w io.Writer) {
		if out.Short {
			fmt.Fprintln(w, out.Code)
			fmt.Fprintf(w, "Read it to the person at the new device; there run:  meshsync join %s%s\n", out.Code, relayHint(out.Addrs))
			fmt.Fprintf(w, "It works once, until %s, and closes after %d wrong tries.\n", out.Expires.Local().Format("15:04:05"), node.MaxInviteFailures)
			if len(out.Addrs) > 0 {
				fmt.Fprintf(w, "If it does not find this device (another network, no mDNS), add:  --peer %s\n", out.Addrs[0])
			}
			reachWarning(g, out.Addrs)
			if !daemon {
				fmt.Fprintln(w, "Waiting for the new device to join (Ctrl-C to stop)...")
			}
			return
		}
		if g.stdoutTerminal() {
			if q, err := qrcode.New(out.Code, qrcode.Low); err == nil {
				fmt.Fprint(w, q.ToSmallString(false))
			}
		}
		fmt.Fprintln(w, out.Code)
		if out.Replica {
			fmt.Fprintf(w, "On the replica machine run:  meshsync join %s --name NAME\n", out.Code)
			fmt.Fprintln(w, "It will hold envelopes it cannot open: no key, no record, no name leaves this mesh for it.")
		} else {
			fmt.Fprintf(w, "On the new device run:  meshsync join %s%s\n", out.Code, relayHint(out.Addrs))
		}
		fmt.Fprintf(w, "The invite works once and expires at %s.\n", out.Expires.Local().Format("15:04:05"))
		reachWarning(g, out.Addrs)
		if !daemon {
			fmt.Fprintln(w, "Waiting for the new device to join (Ctrl-C to stop)...")
		}
	})
}

// reachWarning warns when nothing this device advertises reaches beyond its network.
func reachWarning(g *globals, addrs []string) {
	if !node.AddrsReach(addrs) {
		fmt.Fprintln(g.stderr, "warning: this invite names only addresses on this network (no public or relay address): a device elsewhere cannot use it. To pair across networks, run the daemon with --relay ADDR (start one with `meshsync relay` on a host with a public address).")
	}
}

// relayHint is " --relay R" for the first relay among addrs: a compact code names no
// relayed address, and the joiner reaches the inviter through its own --relay.
func relayHint(addrs []string) string {
	for _, a := range addrs {
		if r, _, ok := strings.Cut(a, "/p2p-circuit"); ok {
			return " --relay " + r
		}
	}
	return ""
}
