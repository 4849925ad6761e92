package merkle

import (
	"bytes"
	"slices"
)

// memLevels is how many levels Mem keeps as arrays; its items sit in one sorted bucket
// per prefix of level memLevels-1 (4,096 buckets).
const memLevels = 4

// Mem is an in-memory set of items with its summary tree: a Source for tests, benchmarks
// and Simulate. It keeps nodes for levels 0–3 in arrays and computes deeper nodes from its
// items. Insert and Remove cost O(n/4096) plus one hash. A Mem is not safe for concurrent
// use.
type Mem struct {
	buckets [][]Item          // by the first 3 digits of the id, each sorted by id
	nodes   [memLevels][]Node // level l has 16^l nodes
	n       int
}

var _ Source = (*Mem)(nil)

// NewMem returns an empty set.
func NewMem() *Mem {
	m := &Mem{buckets: make([][]Item, 1<<(4*(memLevels-1)))}
	for l := range memLevels {
		m.nodes[l] = make([]Node, 1<<(4*l))
	}
	return m
}

// NewMemFrom builds a set from items in one pass, as a store's rebuild does. When an id
// appears more than once the last item wins. items is not retained.
func NewMemFrom(items []Item) *Mem {
	m := NewMem()
	for _, it := range items {
		b := bucketOf(it.ID)
		m.buckets[b] = append(m.buckets[b], it)
	}
	leaf := m.nodes[memLevels-1]
	for b, list := range m.buckets {
		slices.SortStableFunc(list, func(x, y Item) int { return bytes.Compare(x.ID[:], y.ID[:]) })
		out := list[:0]
		for i, it := range list {
			if i+1 < len(list) && list[i+1].ID == it.ID {
				continue // a later item with the same id wins
			}
			out = append(out, it)
		}
		m.buckets[b] = slices.Clip(out)
		for _, it := range out {
			h := hashItem(it)
			leaf[b].addHash(&h, 1)
		}
		m.n += len(out)
	}
	for l := memLevels - 2; l >= 0; l-- {
		for i := range m.nodes[l+1] {
			m.nodes[l][i>>4].merge(&m.nodes[l+1][i])
		}
	}
	return m
}

func (n *Node) merge(o *Node) {
	n.Count += o.Count
	for i := range 4 {
		v := n.FP.lane(i) + o.FP.lane(i)
		putLane(&n.FP, i, v)
	}
}

func bucketOf(id ID) int { return int(id[0])<<4 | int(id[1]>>4) }

func (m *Mem) find(id ID) (b, i int, ok bool) {
	b = bucketOf(id)
	i, ok = slices.BinarySearchFunc(m.buckets[b], id, func(x Item, t ID) int { return bytes.Compare(x.ID[:], t[:]) })
	return b, i, ok
}

func (m *Mem) update(b int, h *itemHash, sign uint64) {
	for l := range memLevels {
		m.nodes[l][b>>(4*(memLevels-1-l))].addHash(h, sign)
	}
}

// Insert adds it, or replaces the digest of the item with the same id.
func (m *Mem) Insert(it Item) {
	b, i, ok := m.find(it.ID)
	if ok {
		old := m.buckets[b][i]
		if old.Digest == it.Digest {
			return
		}
		h := hashItem(old)
		m.update(b, &h, ^uint64(0))
		m.buckets[b][i] = it
	} else {
		m.buckets[b] = slices.Insert(m.buckets[b], i, it)
		m.n++
	}
	h := hashItem(it)
	m.update(b, &h, 1)
}

// Remove deletes the item with this id and reports whether there was one.
func (m *Mem) Remove(id ID) bool {
	b, i, ok := m.find(id)
	if !ok {
		return false
	}
	h := hashItem(m.buckets[b][i])
	m.update(b, &h, ^uint64(0))
	m.buckets[b] = slices.Delete(m.buckets[b], i, i+1)
	m.n--
	return true
}

// Get returns the digest held for id.
func (m *Mem) Get(id ID) (Digest, bool) {
	b, i, ok := m.find(id)
	if !ok {
		return Digest{}, false
	}
	return m.buckets[b][i].Digest, true
}

// Len returns the number of items.
func (m *Mem) Len() int { return m.n }

// Root returns the summary of the whole set.
func (m *Mem) Root() Node { return m.nodes[0][0] }

// Clone returns an independent copy.
func (m *Mem) Clone() *Mem {
	c := &Mem{buckets: make([][]Item, len(m.buckets)), n: m.n}
	for i, b := range m.buckets {
		c.buckets[i] = slices.Clone(b)
	}
	for l := range m.nodes {
		c.nodes[l] = slices.Clone(m.nodes[l])
	}
	return c
}

// Node returns the summary of the subtree p, at any level.
func (m *Mem) Node(p Prefix) (Node, error) {
	if p.Level() < memLevels {
		return m.nodes[p.Level()][p.index()], nil
	}
	var n Node
	for _, it := range m.span(p) {
		h := hashItem(it)
		n.addHash(&h, 1)
	}
	return n, nil
}

// span returns the items under p for p at level memLevels-1 or deeper.
func (m *Mem) span(p Prefix) []Item {
	lo, hi := p.Range()
	list := m.buckets[bucketOf(lo)]
	cmp := func(x Item, t ID) int { return bytes.Compare(x.ID[:], t[:]) }
	i, _ := slices.BinarySearchFunc(list, lo, cmp)
	j, found := slices.BinarySearchFunc(list, hi, cmp)
	if found {
		j++
	}
	return list[i:j]
}

// Items returns the items under p in id order, at most limit of them (all if limit ≤ 0).
// The slice is a copy.
func (m *Mem) Items(p Prefix, limit int) ([]Item, error) {
	if limit <= 0 {
		limit = m.n
	}
	var out []Item
	if p.Level() >= memLevels-1 {
		s := m.span(p)
		return slices.Clone(s[:min(len(s), limit)]), nil
	}
	shift := 4 * (memLevels - 1 - p.Level())
	first := p.index() << shift
	for b := first; b < first+1<<shift && len(out) < limit; b++ {
		list := m.buckets[b]
		out = append(out, list[:min(len(list), limit-len(out))]...)
	}
	return out, nil
}
