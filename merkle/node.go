package merkle

import (
	"encoding/binary"
	"fmt"
)

// Fingerprint summarises a set of items: four 64-bit lanes (little-endian), each the sum
// modulo 2^64 of the matching lane of SHA-256(id || digest) over the items. Being a sum,
// it is updated by adding or subtracting one item, without reading the rest of the set.
type Fingerprint [32]byte

func (f *Fingerprint) lane(i int) uint64 { return binary.LittleEndian.Uint64(f[8*i:]) }

func putLane(f *Fingerprint, i int, v uint64) { binary.LittleEndian.PutUint64(f[8*i:], v) }

func (f *Fingerprint) addHash(h *itemHash, sign uint64) {
	for i := range 4 {
		v := f.lane(i) + sign*h.lane(i)
		binary.LittleEndian.PutUint64(f[8*i:], v)
	}
}

// Node summarises a subtree: how many items it holds and their fingerprint. The zero
// Node is the summary of an empty subtree.
type Node struct {
	Count uint64
	FP    Fingerprint
}

// NodeSize is the length of a Node's binary encoding.
const NodeSize = 40

// Add adds an item to the summary. The caller makes sure the item was not in it.
func (n *Node) Add(it Item) {
	h := hashItem(it)
	n.addHash(&h, 1)
}

// Remove removes an item from the summary. The caller makes sure the item was in it.
func (n *Node) Remove(it Item) {
	h := hashItem(it)
	n.addHash(&h, ^uint64(0)) // -1 mod 2^64
}

// AddNode adds the summary of a disjoint set: the sum summarises the union (a store keeps
// one tree per collection, and sums them for a set of collections).
func (n *Node) AddNode(o Node) {
	n.Count += o.Count
	for i := range 4 {
		putLane(&n.FP, i, n.FP.lane(i)+o.FP.lane(i))
	}
}

func (n *Node) addHash(h *itemHash, sign uint64) {
	n.Count += sign
	n.FP.addHash(h, sign)
}

// MarshalBinary encodes the node in NodeSize bytes: the count as a big-endian uint64,
// then the fingerprint.
func (n Node) MarshalBinary() ([]byte, error) {
	out := make([]byte, NodeSize)
	binary.BigEndian.PutUint64(out, n.Count)
	copy(out[8:], n.FP[:])
	return out, nil
}

// UnmarshalBinary decodes the output of MarshalBinary; any other length wraps
// ErrMalformed.
func (n *Node) UnmarshalBinary(b []byte) error {
	if len(b) != NodeSize {
		return fmt.Errorf("decode node: %d bytes, want %d: %w", len(b), NodeSize, ErrMalformed)
	}
	n.Count = binary.BigEndian.Uint64(b)
	copy(n.FP[:], b[8:])
	return nil
}

// wireFP is the truncated fingerprint of a node as sent in pass pass with width k bytes:
// the low k bytes of lane 1+pass%3, forced non-zero for a non-empty subtree so that 0 means
// "empty".
func wireFP(n *Node, pass, k int) uint64 {
	if n.Count == 0 {
		return 0
	}
	v := n.FP.lane(1+pass%3) & mask(k)
	if v == 0 {
		v = 1
	}
	return v
}

// tagOf is the truncated item hash listed in pass pass with width h bytes.
func tagOf(h *itemHash, pass, width int) uint64 { return h.lane(1+pass%3) & mask(width) }

func mask(k int) uint64 {
	if k >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*uint(k)) - 1
}
