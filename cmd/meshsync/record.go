package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// recordJSON is the stable --json form of a record.
type recordJSON struct {
	Collection string          `json:"collection"`
	Key        string          `json:"key"`
	Value      json.RawMessage `json:"value,omitempty"`
	Raw        []byte          `json:"raw,omitempty"`
	Version    versionJSON     `json:"version"`
	Versions   int             `json:"versions"`
	Conflict   *conflictJSON   `json:"conflict,omitempty"`
}

type versionJSON struct {
	Device string            `json:"device"`
	Time   time.Time         `json:"time"`
	Clock  uint64            `json:"clock"`
	Vector map[string]uint64 `json:"vector"`
}

type conflictJSON struct {
	Type     string    `json:"type"`
	Open     bool      `json:"open"`
	Deadline time.Time `json:"deadline,omitzero"`
	Strategy string    `json:"strategy"`
}

func toVersionJSON(v resolve.Version) versionJSON {
	out := versionJSON{Device: string(v.Device), Time: v.Clock.Time(), Clock: uint64(v.Clock), Vector: map[string]uint64{}}
	for d, c := range v.VV {
		out.Vector[string(d)] = c
	}
	return out
}

// short is a compact text form of a version: device:counter@time.
func (v versionJSON) short() string {
	return fmt.Sprintf("%s:%d @ %s", v.Device, v.Vector[v.Device], v.Time.Format(time.RFC3339))
}

func (v versionJSON) vectorString() string {
	keys := make([]string, 0, len(v.Vector))
	for k := range v.Vector {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, v.Vector[k])
	}
	return strings.Join(parts, ",")
}

func toRecordJSON(r *store.Record) recordJSON {
	out := recordJSON{Collection: r.Collection, Key: r.Key, Version: toVersionJSON(r.Version), Versions: r.Versions}
	if r.Kind == resolve.KindRaw {
		out.Raw = r.Value
	} else {
		out.Value = json.RawMessage(r.Value)
	}
	if c := r.Conflict; c != nil {
		out.Conflict = &conflictJSON{Type: string(c.Type), Open: c.Open, Deadline: c.Deadline, Strategy: string(c.Strategy)}
	}
	return out
}
