package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
)

type devicesCmd struct {
	Ls devicesLsCmd `cmd:"" default:"1" help:"List the mesh's devices (the default)."`
	Rm devicesRmCmd `cmd:"" help:"Remove a device: every other device refuses it from then on. Asks for the passphrase."`
}

type devicesLsCmd struct{}

// devices returns a client of a node of the data directory (its network stays down) and
// the mesh's devices; close the client when done.
func (g *globals) devices(ctx context.Context) (*localapi.Client, []node.Device, error) {
	cl, err := g.client(ctx, &netFlags{})
	if err != nil {
		return nil, nil, err
	}
	devs, err := cl.Devices(ctx)
	if err != nil {
		cl.Close()
		return nil, nil, err
	}
	return cl, devs, nil
}

func (c *devicesLsCmd) Run(ctx context.Context, g *globals) error {
	cl, devs, err := g.devices(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	self := string(cl.Device().ID)
	out := struct {
		Self    string        `json:"self"`
		Devices []node.Device `json:"devices"`
	}{self, devs}
	return g.print(out, func(w io.Writer) { writeDevices(w, devs, self) })
}

// writeDevices prints one line per device, names escaped (they are chosen by each device).
func writeDevices(w io.Writer, devs []node.Device, self string) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tPEER\tROLE\tADDED")
	for _, d := range devs {
		name := shown(d.Name)
		if d.ID == self {
			name += " (this device)"
		}
		role := shown(d.Role)
		if d.Removed {
			role = "removed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, shown(d.ID), shortPeer(d.PeerID.String()), role, d.Added.Local().Format("2006-01-02"))
	}
	tw.Flush()
}

type devicesRmCmd struct {
	Device string `arg:"" help:"Device name, id, or peer id."`
}

// findDevice finds the device q names: an exact id or peer id first, then a unique prefix
// of an id or peer id (or the end of a peer id, as `meshsync devices` shows it), and only
// then an exact name. Ids come before names because a device chooses its own name: one
// named after another device's id must not be removed in its place. A name that two
// devices share is refused.
func findDevice(devs []node.Device, q string) (node.Device, error) {
	if q == "" {
		return node.Device{}, usagef("no device given: name one as `meshsync devices` lists it")
	}
	for _, d := range devs {
		if d.ID == q || d.PeerID.String() == q {
			return d, nil
		}
	}
	var hits, named []node.Device
	for _, d := range devs {
		p := d.PeerID.String()
		if strings.HasPrefix(d.ID, q) || (p != "" && (strings.HasPrefix(p, q) || strings.HasSuffix(p, q))) {
			hits = append(hits, d)
		}
		if d.Name == q {
			named = append(named, d)
		}
	}
	switch {
	case len(hits) == 1:
		return hits[0], nil
	case len(hits) > 1:
		return node.Device{}, usagef("%q matches %d devices: give the full id (see `meshsync devices`)", q, len(hits))
	case len(named) == 1:
		return named[0], nil
	case len(named) > 1:
		return node.Device{}, usagef("%d devices are named %q: give the id instead (see `meshsync devices`)", len(named), q)
	}
	return node.Device{}, usagef("no device %q: see `meshsync devices`", q)
}

func (c *devicesRmCmd) Run(ctx context.Context, g *globals) error {
	cl, devs, err := g.devices(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	dev, err := findDevice(devs, c.Device)
	if err != nil {
		return err
	}
	// A daemon holds the key, not the passphrase: asking for it again keeps a stolen,
	// unlocked device from evicting the owner's others.
	pass, err := g.passphrase(false)
	if err != nil {
		return err
	}
	if err := cl.RemoveDevice(ctx, dev.ID, pass); err != nil {
		return err
	}
	return g.printRemoved(dev)
}

func (g *globals) printRemoved(d node.Device) error {
	out := map[string]any{"removed": d.ID, "name": d.Name}
	return g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "%s (%s) removed; every device refuses it once it learns of the removal.\n", shown(d.Name), shown(d.ID))
	})
}
