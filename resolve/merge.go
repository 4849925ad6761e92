package resolve

import (
	"bytes"
	"cmp"
	"maps"
	"slices"
)

// mnode is one field of a JSON object together with its clock, the unit of
// the merge. The nodes of one path form a join-semilattice ordered first by
// stamp, then removed < leaf < object, then by the leaf's canonical bytes;
// two objects with the same stamp (the same object, created by one write)
// join field by field. join is therefore commutative, associative and
// idempotent, and the merge of an antichain is the join of its elements.
type mnode struct {
	st       stamp
	removed  bool
	children map[string]*mnode // non-nil exactly for an object
	leaf     []byte            // canonical JSON of a leaf
}

func (n *mnode) rank() int {
	switch {
	case n.removed:
		return 0
	case n.children == nil:
		return 1
	}
	return 2
}

func cmpNode(a, b *mnode) int {
	if c := cmpStamp(a.st, b.st); c != 0 {
		return c
	}
	if c := cmp.Compare(a.rank(), b.rank()); c != 0 {
		return c
	}
	return bytes.Compare(a.leaf, b.leaf)
}

func join(a, b *mnode) *mnode {
	switch c := cmpNode(a, b); {
	case c > 0:
		return a
	case c < 0:
		return b
	case a.children != nil:
		return &mnode{st: a.st, children: joinMaps(a.children, b.children)}
	}
	return a
}

func joinMaps(a, b map[string]*mnode) map[string]*mnode {
	r := make(map[string]*mnode, max(len(a), len(b)))
	for k, n := range a {
		if o, ok := b[k]; ok {
			r[k] = join(n, o)
		} else {
			r[k] = n
		}
	}
	for k, o := range b {
		if _, ok := a[k]; !ok {
			r[k] = o
		}
	}
	return r
}

// buildTree pairs the fields of object v with their clocks. A field without
// a clock gets def (the stamp of the enclosing object, or of the version
// for the top level); a clock without a field reads as a removal marker.
func buildTree(v *jval, fc FieldClocks, def stamp) map[string]*mnode {
	r := make(map[string]*mnode, len(v.keys))
	for _, k := range v.keys {
		child := v.obj[k]
		st := def
		c, ok := fc[k]
		if ok {
			st = c.stamp()
		}
		if child.kind == jObject {
			var sub FieldClocks
			if ok && c.Children != nil {
				sub = c.Children
			}
			r[k] = &mnode{st: st, children: buildTree(child, sub, st)}
		} else {
			r[k] = &mnode{st: st, leaf: child.canonical()}
		}
	}
	for k, c := range fc {
		if _, ok := v.obj[k]; !ok {
			r[k] = &mnode{st: c.stamp(), removed: true}
		}
	}
	return r
}

// render returns the canonical JSON text and the field clocks of an object.
func render(m map[string]*mnode) ([]byte, FieldClocks) {
	fc := make(FieldClocks, len(m))
	b := renderInto(nil, m, fc)
	return b, fc
}

func renderInto(b []byte, m map[string]*mnode, fc FieldClocks) []byte {
	b = append(b, '{')
	first := true
	for _, k := range slices.Sorted(maps.Keys(m)) {
		n := m[k]
		c := FieldClock{Clock: n.st.Clock, Device: n.st.Device, Counter: n.st.Counter, Removed: n.removed}
		if n.removed {
			fc[k] = c
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		if n.children != nil {
			c.Children = make(FieldClocks, len(n.children))
			b = renderInto(b, n.children, c.Children)
		} else {
			b = append(b, n.leaf...)
		}
		fc[k] = c
	}
	return append(b, '}')
}

// walkStamps calls f for every stamp in the subtree of n, n included.
func (n *mnode) walkStamps(f func(stamp)) {
	f(n.st)
	for _, c := range n.children {
		c.walkStamps(f)
	}
}
