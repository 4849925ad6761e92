package mobile

import (
	"encoding/json"
	"time"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// The JSON documents that cross the binding. Their field names are a stable schema
// (fields may be added, none renamed); records, versions and conflicts have the same shape
// as `meshsync ls --json` and `meshsync conflicts --json`.

// recordDoc is a record: a JSON value, or raw bytes (base64) for PutBytes records.
type recordDoc struct {
	Collection string          `json:"collection"`
	Key        string          `json:"key"`
	Value      json.RawMessage `json:"value,omitempty"`
	Raw        []byte          `json:"raw,omitempty"`
	Version    versionDoc      `json:"version"`
	Versions   int             `json:"versions"`
	Conflict   *conflictBrief  `json:"conflict,omitempty"`
}

type versionDoc struct {
	Device string            `json:"device"`
	Time   time.Time         `json:"time"`
	Clock  uint64            `json:"clock"`
	Vector map[string]uint64 `json:"vector"`
}

type conflictBrief struct {
	Type     string    `json:"type"`
	Open     bool      `json:"open"`
	Deadline time.Time `json:"deadline,omitzero"`
	Strategy string    `json:"strategy"`
}

// conflictDoc is a record with concurrent versions. ID is what ResolveConflict takes.
type conflictDoc struct {
	ID         string          `json:"id"`
	Collection string          `json:"collection"`
	Key        string          `json:"key"`
	Type       string          `json:"type"`
	Open       bool            `json:"open"`
	Deadline   time.Time       `json:"deadline,omitzero"`
	Strategy   string          `json:"strategy"`
	Value      json.RawMessage `json:"value,omitempty"`
	Deleted    bool            `json:"deleted,omitempty"`
	Versions   []versionValue  `json:"versions"`
}

// versionValue is one concurrent version; N is what ResolveConflict's pick takes.
type versionValue struct {
	N       int             `json:"n"`
	Version versionDoc      `json:"version"`
	Deleted bool            `json:"deleted,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Raw     []byte          `json:"raw,omitempty"`
}

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

func toVersionDoc(v resolve.Version) versionDoc {
	out := versionDoc{Device: string(v.Device), Time: v.Clock.Time(), Clock: uint64(v.Clock), Vector: map[string]uint64{}}
	for d, c := range v.VV {
		out.Vector[string(d)] = c
	}
	return out
}

func toRecordDoc(r *store.Record) recordDoc {
	out := recordDoc{Collection: r.Collection, Key: r.Key, Version: toVersionDoc(r.Version), Versions: r.Versions}
	if r.Kind == resolve.KindRaw {
		out.Raw = r.Value
		if out.Raw == nil {
			out.Raw = []byte{}
		}
	} else {
		out.Value = json.RawMessage(r.Value)
	}
	if c := r.Conflict; c != nil {
		out.Conflict = &conflictBrief{Type: string(c.Type), Open: c.Open, Deadline: c.Deadline, Strategy: string(c.Strategy)}
	}
	return out
}

func toConflictDoc(c *store.ConflictInfo) conflictDoc {
	out := conflictDoc{ID: c.ShortID(), Collection: c.Collection, Key: c.Key, Type: string(c.Conflict.Type),
		Open: c.Conflict.Open, Deadline: c.Conflict.Deadline, Strategy: string(c.Conflict.Strategy),
		Versions: []versionValue{}}
	switch c.Resolved.Kind {
	case resolve.KindDeleted:
		out.Deleted = true
	case resolve.KindJSON:
		out.Value = c.Resolved.Data
	}
	for i, v := range c.Versions {
		vv := versionValue{N: i + 1, Version: toVersionDoc(v.Version)}
		switch v.Kind {
		case resolve.KindDeleted:
			vv.Deleted = true
		case resolve.KindJSON:
			vv.Value = v.Value
		default:
			vv.Raw = v.Value
		}
		out.Versions = append(out.Versions, vv)
	}
	return out
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
