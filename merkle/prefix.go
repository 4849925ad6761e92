package merkle

import (
	"encoding/hex"
	"fmt"
)

const (
	// Fanout is the number of children of every interior node: one hex digit of the id per
	// level.
	Fanout = 16
	// Depth is the number of tree levels whose nodes a Source keeps: the root (level 0) down
	// to level Depth-1. Path returns Depth prefixes, so a write updates Depth nodes. Deeper
	// subtrees are summarised on the fly from Source.Items.
	Depth = 6
	// MaxLevel is the deepest prefix there is: all 64 hex digits of an id.
	MaxLevel = 64
)

// Prefix names a subtree: the ids whose first Level() hex digits equal the prefix's
// digits. The zero Prefix is the root, which holds every id. Prefix is comparable and can
// be used as a map key.
type Prefix struct {
	level  uint8
	digits [32]byte // the id bytes, with every nibble after level zeroed
}

// Root returns the prefix of the whole id space (the zero Prefix).
func Root() Prefix { return Prefix{} }

// PrefixOf returns the prefix of the given level (0 to MaxLevel) that contains id.
// Levels out of range are clamped.
func PrefixOf(id ID, level int) Prefix {
	level = max(0, min(level, MaxLevel))
	p := Prefix{level: uint8(level)}
	copy(p.digits[:level/2], id[:level/2])
	if level%2 == 1 {
		p.digits[level/2] = id[level/2] & 0xf0
	}
	return p
}

// Path returns the prefixes of the stored levels that contain id, root first: one per
// level from 0 to Depth-1. A store keeps one Node per non-empty prefix, so an item
// change updates len(Path(id)) == Depth nodes.
func Path(id ID) []Prefix {
	out := make([]Prefix, Depth)
	for l := range Depth {
		out[l] = PrefixOf(id, l)
	}
	return out
}

// Level returns the number of hex digits the prefix fixes (0 for the root).
func (p Prefix) Level() int { return int(p.level) }

// Digit returns the i-th hex digit (0 ≤ i < Level) of the prefix.
func (p Prefix) Digit(i int) int { return digitOf(p.digits[:], i) }

func digitOf(b []byte, i int) int {
	if i%2 == 0 {
		return int(b[i/2] >> 4)
	}
	return int(b[i/2] & 0x0f)
}

// Child returns the child prefix with the next digit d (0 ≤ d < Fanout). It returns p
// unchanged if p is already at MaxLevel.
func (p Prefix) Child(d int) Prefix {
	if p.level >= MaxLevel {
		return p
	}
	c := p
	i := int(p.level)
	if i%2 == 0 {
		c.digits[i/2] |= byte(d&0xf) << 4
	} else {
		c.digits[i/2] |= byte(d & 0xf)
	}
	c.level++
	return c
}

// Parent returns the prefix one level up; the root is its own parent.
func (p Prefix) Parent() Prefix {
	if p.level == 0 {
		return p
	}
	var id ID
	copy(id[:], p.digits[:])
	return PrefixOf(id, int(p.level)-1)
}

// Contains reports whether id lies in the subtree p names.
func (p Prefix) Contains(id ID) bool { return PrefixOf(id, int(p.level)) == p }

// Range returns the lowest and the highest id the prefix covers, both inclusive, for
// range scans of an id-ordered bucket.
func (p Prefix) Range() (lo, hi ID) {
	copy(lo[:], p.digits[:])
	hi = lo
	n := int(p.level)
	if n%2 == 1 {
		hi[n/2] |= 0x0f
	}
	for i := (n + 1) / 2; i < len(hi); i++ {
		hi[i] = 0xff
	}
	return lo, hi
}

// index returns the prefix's digits as an integer (for levels up to 15).
func (p Prefix) index() int {
	v := 0
	for i := range int(p.level) {
		v = v<<4 | p.Digit(i)
	}
	return v
}

// Key returns a stable byte encoding of the prefix for use as a database key: the level
// in one byte, then the digits packed two per byte (an odd level leaves a zero low
// nibble). Keys of the same level sort in id order, and all keys of one level sort before
// those of the next.
func (p Prefix) Key() []byte {
	n := (int(p.level) + 1) / 2
	out := make([]byte, 1+n)
	out[0] = p.level
	copy(out[1:], p.digits[:n])
	return out
}

// ParsePrefixKey decodes the output of Prefix.Key. It refuses anything that Key would not
// produce, wrapping ErrMalformed.
func ParsePrefixKey(b []byte) (Prefix, error) {
	if len(b) == 0 {
		return Prefix{}, fmt.Errorf("parse prefix key: empty: %w", ErrMalformed)
	}
	level := int(b[0])
	if level > MaxLevel {
		return Prefix{}, fmt.Errorf("parse prefix key: level %d above %d: %w", level, MaxLevel, ErrMalformed)
	}
	n := (level + 1) / 2
	if len(b) != 1+n {
		return Prefix{}, fmt.Errorf("parse prefix key: %d bytes for level %d: %w", len(b), level, ErrMalformed)
	}
	if level%2 == 1 && b[n]&0x0f != 0 {
		return Prefix{}, fmt.Errorf("parse prefix key: padding nibble set: %w", ErrMalformed)
	}
	p := Prefix{level: uint8(level)}
	copy(p.digits[:], b[1:])
	return p, nil
}

// String returns the digits in hex, or "root" for the root.
func (p Prefix) String() string {
	if p.level == 0 {
		return "root"
	}
	return hex.EncodeToString(p.digits[:(p.level+1)/2])[:p.level]
}
