package resolve

import (
	"bytes"
	"fmt"
)

// Stamp computes the value of a new local JSON write: next canonicalized,
// with field clocks derived from prev, the record's resolved value before
// the write (nil for a new record). Fields whose value is unchanged keep
// their clocks, changed or added fields get (ts, dev), and removed fields get
// a removal marker (ts, dev); nested objects are compared field by field.
// A next that is not a JSON object gets no field clocks. The clocks carry no
// version-vector counter; prefer StampVersion when the version is known, so
// that critical-field conflicts are detected exactly.
func Stamp(prev *Value, next []byte, ts Timestamp, dev DeviceID) (Value, error) {
	return stampValue(prev, next, stamp{Clock: ts, Device: dev})
}

// StampVersion is Stamp for the write v: it also records v's own counter
// (v.VV[v.Device]) in the changed fields' clocks, which lets Resolve tell
// whether a concurrent version has seen a change.
func StampVersion(prev *Value, next []byte, v Version) (Value, error) {
	return stampValue(prev, next, stamp{Clock: v.Clock, Device: v.Device, Counter: v.Counter()})
}

func stampValue(prev *Value, next []byte, s stamp) (Value, error) {
	if len(s.Device) > MaxDeviceIDLen {
		return Value{}, fmt.Errorf("stamp: device id of %d bytes: %w", len(s.Device), ErrTooLarge)
	}
	nj, err := parseJSON(next)
	if err != nil {
		return Value{}, fmt.Errorf("stamp: %w", err)
	}
	if nj.kind != jObject {
		return Value{Kind: KindJSON, Data: nj.canonical()}, nil
	}
	var pm map[string]*mnode
	if prev != nil && prev.Kind == KindJSON {
		pj, err := parseJSON(prev.Data)
		if err != nil {
			return Value{}, fmt.Errorf("stamp: previous value: %w", err)
		}
		if pj.kind == jObject {
			// Fields without clocks (a value written without them) count as
			// older than any concurrent change.
			pm = buildTree(pj, prev.Fields, stamp{})
		}
	}
	m, err := diffTree(pm, nj, s, 0)
	if err != nil {
		return Value{}, fmt.Errorf("stamp: %w", err)
	}
	data, fc := render(m)
	return Value{Kind: KindJSON, Data: data, Fields: fc}, nil
}

func diffTree(prev map[string]*mnode, next *jval, s stamp, depth int) (map[string]*mnode, error) {
	if depth >= MaxDepth {
		return nil, fmt.Errorf("field clocks: %w", ErrTooDeep)
	}
	r := make(map[string]*mnode, len(next.keys))
	for _, k := range next.keys {
		if len(k) > MaxKeyLen {
			return nil, fmt.Errorf("key of %d bytes: %w", len(k), ErrTooLarge)
		}
		child := next.obj[k]
		p := prev[k]
		live := p != nil && !p.removed
		if child.kind == jObject {
			st := s
			var pc map[string]*mnode
			if live && p.children != nil {
				st, pc = p.st, p.children
			}
			sub, err := diffTree(pc, child, s, depth+1)
			if err != nil {
				return nil, err
			}
			r[k] = &mnode{st: st, children: sub}
			continue
		}
		cb := child.canonical()
		if live && p.children == nil && bytes.Equal(p.leaf, cb) {
			r[k] = p
		} else {
			r[k] = &mnode{st: s, leaf: cb}
		}
	}
	for k, p := range prev {
		if _, ok := next.obj[k]; ok {
			continue
		}
		if p.removed {
			r[k] = p
		} else {
			r[k] = &mnode{st: s, removed: true}
		}
	}
	return r, nil
}
