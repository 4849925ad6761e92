package mobile

import (
	"encoding/json"

	"github.com/meshsync/meshsync/node"
)

// The JSON documents that cross the binding. Their field names are a stable schema
// (fields may be added, none renamed); records, versions and conflicts are package view's,
// the same as `meshsync ls --json` and `meshsync conflicts --json`.

// deviceDoc is a device of the mesh; Self marks this one.
type deviceDoc struct {
	node.Device
	Self bool `json:"self"`
}

// statesDoc is what States returns: node.States (device_id, name, peer_id, overall,
// devices, conflicts, clock_skew_ns, refused, warnings) and the phone side.
type statesDoc struct {
	node.States
	// Running reports that the network is up.
	Running bool `json:"running"`
	// Stopped reports that Stop was called (or Start never was).
	Stopped bool `json:"stopped"`
	// Paused reports that the network is down; PausedReason says why.
	Paused       bool   `json:"paused"`
	PausedReason string `json:"paused_reason,omitempty"`
	// Policy is the sync policy; the signals are what the app reported.
	Policy         string `json:"policy"`
	Foreground     bool   `json:"foreground"`
	Metered        bool   `json:"metered"`
	Charging       bool   `json:"charging"`
	BackgroundSync bool   `json:"background_sync"`
	// Error is the last failure to start or stop the network, if any.
	Error string `json:"error,omitempty"`
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
