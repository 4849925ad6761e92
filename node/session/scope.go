package session

import (
	"slices"

	"github.com/meshsync/meshsync/node/internal/wire"
)

// Scope is what a hello says a side holds: every collection, or the listed application
// collection tags (a collection tag's top bit marks a reserved collection, which every
// device holds; the zero tag marks an envelope from before tags, which only a blind
// replica holds and every device takes to sort out once opened).
type Scope struct {
	All  bool
	Tags [][8]byte
}

// ScopeOf returns the scope a hello states.
func ScopeOf(h *wire.Hello) Scope { return Scope{All: h.ScopeAll, Tags: h.Scope} }

// Wants reports whether the side holds the collection of tag.
func (sc Scope) Wants(tag [8]byte) bool {
	return sc.All || tag[0]&0x80 != 0 || tag == [8]byte{} || slices.Contains(sc.Tags, tag)
}

// common returns the collection tags two sides reconcile over: those either holds that
// both want, in tag order.
func common(a, b *wire.Hello) [][8]byte {
	sa, sb := ScopeOf(a), ScopeOf(b)
	var out [][8]byte
	for _, h := range []*wire.Hello{a, b} {
		for _, r := range rootsOf(h) {
			if sa.Wants(r.Tag) && sb.Wants(r.Tag) && !slices.Contains(out, r.Tag) {
				out = append(out, r.Tag)
			}
		}
	}
	slices.SortFunc(out, func(x, y [8]byte) int { return slices.Compare(x[:], y[:]) })
	return out
}

// rootsOf returns the collection roots of h: a hello without them (a store summarised
// as one tree, as the pure tests' sources are) is one untagged tree.
func rootsOf(h *wire.Hello) []wire.TagRoot {
	if len(h.Roots) == 0 && h.RootCount > 0 {
		return []wire.TagRoot{{Count: h.RootCount, FP: h.RootFP}}
	}
	return h.Roots
}

// restrict returns h with its root replaced by the sum of its collection roots among
// tags: the root the other side compares with its own over the same collections.
func restrict(h *wire.Hello, tags [][8]byte) *wire.Hello {
	c := *h
	c.RootCount, c.RootFP = 0, [32]byte{}
	for _, r := range rootsOf(h) {
		if slices.Contains(tags, r.Tag) {
			c.RootCount += r.Count
			addFP(&c.RootFP, &r.FP)
		}
	}
	return &c
}

// addFP adds fingerprint b to a lane by lane, as merkle.Node.AddNode does.
func addFP(a, b *[32]byte) {
	for i := 0; i < 32; i += 8 {
		var x, y uint64
		for j := 7; j >= 0; j-- {
			x = x<<8 | uint64(a[i+j])
			y = y<<8 | uint64(b[i+j])
		}
		x += y
		for j := 0; j < 8; j++ {
			a[i+j] = byte(x >> (8 * j))
		}
	}
}
