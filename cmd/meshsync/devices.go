package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/meshsync/meshsync/node"
)

type devicesCmd struct {
	Ls devicesLsCmd `cmd:"" default:"1" help:"List the mesh's devices (the default)."`
	Rm devicesRmCmd `cmd:"" help:"Remove a device: every other device refuses it from then on."`
}

type devicesLsCmd struct{}

// listDevices asks the daemon, or else the store, for the device list.
func (g *globals) listDevices(ctx context.Context) ([]node.Device, string, error) {
	if d := g.daemon(ctx); d != nil {
		defer d.Close()
		devs, err := d.Devices()
		st, serr := d.Status()
		if serr != nil {
			return nil, "", serr
		}
		return devs, string(st.Device.ID), err
	}
	n, err := g.openNode(ctx, netFlags{}, false)
	if err != nil {
		return nil, "", err
	}
	defer n.Close()
	return n.Devices(), n.DeviceID(), nil
}

func (c *devicesLsCmd) Run(ctx context.Context, g *globals) error {
	devs, self, err := g.listDevices(ctx)
	if err != nil {
		return err
	}
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

// findDevice matches a device by exact name, id or peer id, or a unique id/peer prefix.
func findDevice(devs []node.Device, q string) (node.Device, error) {
	var hits []node.Device
	for _, d := range devs {
		if d.Name == q || d.ID == q || d.PeerID.String() == q {
			return d, nil
		}
		if strings.HasPrefix(d.ID, q) || strings.HasSuffix(d.PeerID.String(), q) {
			hits = append(hits, d)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return node.Device{}, usagef("no device %q: see `meshsync devices`", q)
	}
	return node.Device{}, usagef("%q matches %d devices: give the full id", q, len(hits))
}

func (c *devicesRmCmd) Run(ctx context.Context, g *globals) error {
	if d := g.daemon(ctx); d != nil {
		defer d.Close()
		devs, err := d.Devices()
		if err != nil {
			return err
		}
		dev, err := findDevice(devs, c.Device)
		if err != nil {
			return err
		}
		if err := d.RemoveDevice(dev.ID); err != nil {
			return err
		}
		return g.printRemoved(dev)
	}
	n, err := g.openNode(ctx, netFlags{}, false)
	if err != nil {
		return err
	}
	defer n.Close()
	dev, err := findDevice(n.Devices(), c.Device)
	if err != nil {
		return err
	}
	if err := n.RemoveDevice(dev.ID); err != nil {
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
