package session

import (
	"slices"

	"github.com/meshsync/meshsync/merkle"
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

// held returns the tags of tags that h holds records of.
func held(h *wire.Hello, tags [][8]byte) [][8]byte {
	var out [][8]byte
	for _, r := range rootsOf(h) {
		if r.Count > 0 && slices.Contains(tags, r.Tag) {
			out = append(out, r.Tag)
		}
	}
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
	var sum merkle.Node
	for _, r := range rootsOf(h) {
		if slices.Contains(tags, r.Tag) {
			sum.AddNode(merkle.Node{Count: r.Count, FP: r.FP})
		}
	}
	c := *h
	c.RootCount, c.RootFP = sum.Count, sum.FP
	return &c
}
