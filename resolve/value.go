package resolve

import (
	"bytes"
	"fmt"
	"strconv"
)

// Kind says what a Value holds.
type Kind uint8

// The kinds of value. The zero Kind is invalid, so that a forgotten field is
// caught rather than read as JSON.
const (
	KindJSON    Kind = iota + 1 // Data is canonical JSON text
	KindRaw                     // Data is opaque bytes
	KindDeleted                 // a tombstone; Data is nil
)

// String returns "json", "raw" or "deleted".
func (k Kind) String() string {
	switch k {
	case KindJSON:
		return "json"
	case KindRaw:
		return "raw"
	case KindDeleted:
		return "deleted"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is the content of one version of a record.
type Value struct {
	// Kind says how to read Data.
	Kind Kind
	// Data is canonical JSON text for KindJSON, raw bytes for KindRaw and
	// nil for KindDeleted.
	Data []byte
	// Fields holds the per-field clocks of a JSON object, used by the merge
	// strategy and by critical-field detection; applications never see it.
	// It may be nil (then every field counts as written by the version that
	// carries the value).
	Fields FieldClocks
}

// Same reports whether v and o hold the same content (kind and data); the
// field clocks are not compared.
func (v Value) Same(o Value) bool {
	if v.Kind != o.Kind {
		return false
	}
	return v.Kind == KindDeleted || bytes.Equal(v.Data, o.Data)
}

// Sibling is one version of a record together with its value: an element of
// the record's antichain.
type Sibling struct {
	Version Version
	Value   Value
}

// validate checks the kind and, for JSON, returns the parsed value and
// canonical text.
func (v Value) parse() (*jval, []byte, error) {
	switch v.Kind {
	case KindJSON:
		j, err := parseJSON(v.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalidValue, err)
		}
		return j, j.canonical(), nil
	case KindRaw:
		return nil, v.Data, nil
	case KindDeleted:
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown kind %d", ErrInvalidValue, v.Kind)
}
