// Package view holds the JSON forms of what meshsync shows outside the process: records,
// versions, conflicts, policies and the store's reports, as the local API, `meshsync
// ... --json` and the mobile bindings show them. The field names are a stable schema:
// fields may be added, none renamed. They are copies of the store's types on purpose: a
// change inside the store does not change them.
package view

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// Record is a record: a JSON value, or raw bytes (base64 in JSON) for raw records.
type Record struct {
	Collection string          `json:"collection"`
	Key        string          `json:"key"`
	Value      json.RawMessage `json:"value,omitempty"`
	Raw        []byte          `json:"raw,omitempty"`
	Version    Version         `json:"version"`
	Versions   int             `json:"versions"`
	Conflict   *ConflictBrief  `json:"conflict,omitempty"`
}

// Version is a version: the writing device, its hybrid-clock time and the version vector.
type Version struct {
	Device string            `json:"device"`
	Time   time.Time         `json:"time"`
	Clock  uint64            `json:"clock"`
	Vector map[string]uint64 `json:"vector"`
}

// ConflictBrief is the conflict of a record as shown beside its value.
type ConflictBrief struct {
	Type     string    `json:"type"`
	Open     bool      `json:"open"`
	Deadline time.Time `json:"deadline,omitzero"`
	Strategy string    `json:"strategy"`
}

// Conflict is a record with concurrent versions. ID is what a resolve takes.
type Conflict struct {
	ID         string          `json:"id"`
	Collection string          `json:"collection"`
	Key        string          `json:"key"`
	Type       string          `json:"type"`
	Open       bool            `json:"open"`
	Deadline   time.Time       `json:"deadline,omitzero"`
	Strategy   string          `json:"strategy"`
	Value      json.RawMessage `json:"value,omitempty"`
	Deleted    bool            `json:"deleted,omitempty"`
	Versions   []VersionValue  `json:"versions"`
}

// VersionValue is one concurrent version of a conflict; N (from 1) is what a pick takes.
type VersionValue struct {
	N       int             `json:"n"`
	Version Version         `json:"version"`
	Deleted bool            `json:"deleted,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Raw     []byte          `json:"raw,omitempty"`
}

// FromVersion is the JSON form of v.
func FromVersion(v resolve.Version) Version {
	out := Version{Device: string(v.Device), Time: v.Clock.Time(), Clock: uint64(v.Clock), Vector: map[string]uint64{}}
	for d, c := range v.VV {
		out.Vector[string(d)] = c
	}
	return out
}

// FromRecord is the JSON form of r.
func FromRecord(r *store.Record) Record {
	out := Record{Collection: r.Collection, Key: r.Key, Version: FromVersion(r.Version), Versions: r.Versions}
	if r.Kind == resolve.KindRaw {
		out.Raw = r.Value
		if out.Raw == nil {
			out.Raw = []byte{}
		}
	} else {
		out.Value = json.RawMessage(r.Value)
	}
	if c := r.Conflict; c != nil {
		out.Conflict = &ConflictBrief{Type: string(c.Type), Open: c.Open, Deadline: c.Deadline, Strategy: string(c.Strategy)}
	}
	return out
}

// FromConflict is the JSON form of c.
func FromConflict(c *store.ConflictInfo) Conflict {
	out := Conflict{ID: c.ShortID(), Collection: c.Collection, Key: c.Key, Type: string(c.Conflict.Type),
		Open: c.Conflict.Open, Deadline: c.Conflict.Deadline, Strategy: string(c.Conflict.Strategy),
		Versions: []VersionValue{}}
	switch c.Resolved.Kind {
	case resolve.KindDeleted:
		out.Deleted = true
	case resolve.KindJSON:
		out.Value = c.Resolved.Data
	}
	for i, v := range c.Versions {
		vv := VersionValue{N: i + 1, Version: FromVersion(v.Version)}
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

// Short is a compact text form of a version: device:counter @ time.
func (v Version) Short() string {
	return fmt.Sprintf("%s:%d @ %s", v.Device, v.Vector[v.Device], v.Time.Format(time.RFC3339))
}

// Text is a one-line text form of a version's value.
func (v VersionValue) Text() string {
	switch {
	case v.Deleted:
		return "(deleted)"
	case v.Raw != nil:
		return fmt.Sprintf("(%d raw bytes)", len(v.Raw))
	}
	return string(v.Value)
}
