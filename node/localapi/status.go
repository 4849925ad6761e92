package localapi

import (
	"os"

	"github.com/meshsync/meshsync/node"
)

// nodeStatus is the status of a node from its States, with the device list (removed
// devices included) and whether a daemon serves it.
func nodeStatus(n *node.Node, daemon bool) Status {
	st := n.Store()
	out := Status{Device: st.Device(), PeerID: n.PeerID().String(), Daemon: daemon, Addrs: []string{}, Devices: []DeviceStatus{}, Warnings: []string{},
		Scope: append([]string{}, n.Scope().Collections...)}
	if daemon {
		out.PID = os.Getpid()
	}
	for _, a := range n.Addrs() {
		out.Addrs = append(out.Addrs, a.String())
	}
	states := n.States()
	out.Overall = states.Overall
	byDevice := map[string]node.DeviceState{}
	for _, d := range states.Devices {
		byDevice[d.DeviceID] = d
	}
	for _, d := range n.Devices() {
		if d.ID == string(st.Device().ID) {
			continue
		}
		ds, ok := byDevice[d.ID]
		if !ok {
			ds = node.DeviceState{DeviceID: d.ID, PeerID: d.PeerID, Name: d.Name, Status: node.StatusOffline, PendingIn: -1, PendingOut: -1}
		}
		out.Devices = append(out.Devices, DeviceStatus{DeviceState: ds, Role: d.Role, Removed: d.Removed, Scope: append([]string{}, d.Scope...)})
	}
	out.Conflicts = states.Conflicts
	out.ClockSkew = states.ClockSkew.Seconds()
	for _, w := range states.Warnings {
		out.Warnings = append(out.Warnings, w.Message)
	}
	if !daemon {
		out.Warnings = append(out.Warnings, "daemon not running: start it with `meshsync daemon` (states shown are the last known)")
	}
	return out
}
