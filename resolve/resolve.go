package resolve

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// ConflictType classifies a conflict.
type ConflictType string

// The conflict types Resolve detects, in the order it checks them.
const (
	// UpdateDelete: one version deleted the record, another changed it.
	UpdateDelete ConflictType = "update/delete"
	// TypeMismatch: the versions hold different JSON types (object vs
	// array, number vs string, ...) or JSON vs raw bytes.
	TypeMismatch ConflictType = "type-mismatch"
	// CreateCreate: two versions whose version vectors share no device,
	// that is, the record was created independently on two devices.
	CreateCreate ConflictType = "create/create"
	// UpdateUpdate: any other pair of concurrent, different versions.
	UpdateUpdate ConflictType = "update/update"
)

// Result is the outcome of Resolve.
type Result struct {
	// Value is the resolved value; Kind is KindDeleted when the record
	// reads as deleted. Its Fields are the clocks to pass as prev to Stamp
	// on the next local write. It may share memory with the input.
	Value Value
	// Winner is the index in the caller's siblings of the version whose
	// value was chosen, or -1 when Value is a merge unlike every sibling.
	Winner int
	// Conflict describes the conflict, or is nil when there is none (a
	// single version, or concurrent versions with identical values).
	Conflict *Conflict
}

// Conflict describes a detected conflict.
type Conflict struct {
	// Type is the kind of conflict.
	Type ConflictType
	// Open reports a user-choice conflict that still waits for a decision
	// (now is before Deadline). Value is then the fallback's provisional
	// value. Once the deadline has passed Open is false and Value is the
	// fallback's final value, the same on every device.
	Open bool
	// Deadline is when a user-choice conflict closes: the latest wall time
	// among the conflicting versions plus Policy.Deadline. Zero for
	// conflicts resolved automatically.
	Deadline time.Time
	// Losers are the indices (in the caller's siblings, ascending) of the
	// concurrent versions whose value differs from Value: the values to keep
	// in the conflict history.
	Losers []int
	// Strategy is the strategy that produced Value (for a user-choice
	// conflict, its fallback; for merge of non-objects, timestamp).
	Strategy Strategy
}

// cand is one sibling, parsed.
type cand struct {
	idx   int
	sib   Sibling
	j     *jval  // parsed JSON, nil for raw and deleted
	data  []byte // canonical JSON or raw bytes; nil when deleted
	fkey  []byte // encoded field clocks, to order malformed duplicates; lazy
	vvKey string // lazy
	keyed bool
	tree  map[string]*mnode
}

func (c *cand) isObject() bool { return c.j != nil && c.j.kind == jObject }

func (c *cand) versionStamp() stamp {
	v := c.sib.Version
	return stamp{Clock: v.Clock, Device: v.Device, Counter: v.Counter()}
}

// value returns the sibling's value with canonical data; only JSON objects
// keep field clocks.
func (c *cand) value() Value {
	v := Value{Kind: c.sib.Value.Kind, Data: c.data}
	if c.isObject() {
		v.Fields = c.sib.Value.Fields
	}
	return v
}

func (c *cand) getTree() map[string]*mnode {
	if c.tree == nil {
		c.tree = buildTree(c.j, c.sib.Value.Fields, c.versionStamp())
	}
	return c.tree
}

func (c *cand) keys() {
	if !c.keyed {
		c.keyed = true
		c.vvKey = c.sib.Version.VV.String()
		// Fields that do not encode were refused by Resolve already.
		c.fkey, _ = c.sib.Value.Fields.MarshalBinary()
	}
}

// cmpCand is the timestamp order: clock, device, then (only for malformed
// input) version vector and content. It is total on distinct siblings.
func cmpCand(a, b *cand) int {
	va, vb := a.sib.Version, b.sib.Version
	if c := cmp.Compare(va.Clock, vb.Clock); c != 0 {
		return c
	}
	if c := cmp.Compare(va.Device, vb.Device); c != 0 {
		return c
	}
	a.keys()
	b.keys()
	if c := cmp.Compare(a.vvKey, b.vvKey); c != 0 {
		return c
	}
	if c := cmp.Compare(a.sib.Value.Kind, b.sib.Value.Kind); c != 0 {
		return c
	}
	if c := bytes.Compare(a.data, b.data); c != 0 {
		return c
	}
	return bytes.Compare(a.fkey, b.fkey)
}

// Resolve computes the resolved value of a record from its versions under
// policy p at wall time now. It is a pure function of the set of siblings:
// their order does not change the result (Winner and Losers refer to
// whichever index holds the chosen version; among exact duplicates the
// lowest). Versions dominated by another sibling are ignored, as are
// duplicates. now matters only for user-choice conflicts: before the
// deadline they are Open, after it every device computes the same fallback.
func Resolve(p Policy, sibs []Sibling, now time.Time) (Result, error) {
	if err := p.Validate(); err != nil {
		return Result{}, fmt.Errorf("resolve: %w", err)
	}
	p = p.WithDefaults()
	if len(sibs) == 0 {
		return Result{}, fmt.Errorf("resolve: %w", ErrNoSiblings)
	}
	if len(sibs) > MaxSiblings {
		return Result{}, fmt.Errorf("resolve %d siblings: %w (max %d)", len(sibs), ErrTooManySiblings, MaxSiblings)
	}
	cs := make([]*cand, len(sibs))
	for i, s := range sibs {
		j, data, err := s.Value.parse()
		if err != nil {
			return Result{}, fmt.Errorf("resolve: sibling %d: %w", i, err)
		}
		if err := checkFields(s.Value.Fields, 0); err != nil {
			return Result{}, fmt.Errorf("resolve: sibling %d: %w", i, err)
		}
		cs[i] = &cand{idx: i, sib: s, j: j, data: data}
	}
	top := maximal(cs)
	slices.SortFunc(top, func(a, b *cand) int { return -cmpCand(a, b) })
	best := top[0]
	if len(top) == 1 {
		return Result{Value: best.value(), Winner: best.idx}, nil
	}
	if allSame(top) {
		v := best.value()
		if best.isObject() {
			v = mergeCands(top)
		}
		return Result{Value: v, Winner: best.idx}, nil
	}

	conf := &Conflict{Type: conflictType(top)}
	strategy := p.Strategy
	if strategy == StrategyUser {
		strategy = p.Fallback
	}
	if p.Strategy == StrategyUser || criticalConflict(p.Critical, top) {
		latest := slices.MaxFunc(top, func(a, b *cand) int {
			return cmp.Compare(a.sib.Version.Clock.WallMs(), b.sib.Version.Clock.WallMs())
		}).sib.Version.Clock
		conf.Deadline = latest.Time().Add(p.Deadline)
		conf.Open = now.Before(conf.Deadline)
	}
	v, winner, used := apply(strategy, p, top)
	conf.Strategy = used
	for _, c := range top {
		if !c.value().Same(v) {
			conf.Losers = append(conf.Losers, c.idx)
		}
	}
	slices.Sort(conf.Losers)
	return Result{Value: v, Winner: winner, Conflict: conf}, nil
}

// maximal returns the siblings that no other sibling dominates, one per set
// of equal version vectors.
func maximal(cs []*cand) []*cand {
	var top []*cand
	for _, c := range cs {
		keep := true
		for _, o := range cs {
			if o == c {
				continue
			}
			switch o.sib.Version.VV.Compare(c.sib.Version.VV) {
			case After:
				keep = false
			case Equal:
				if d := cmpCand(o, c); d > 0 || (d == 0 && o.idx < c.idx) {
					keep = false
				}
			}
			if !keep {
				break
			}
		}
		if keep {
			top = append(top, c)
		}
	}
	return top
}

func allSame(top []*cand) bool {
	for _, c := range top[1:] {
		if !c.value().Same(top[0].value()) {
			return false
		}
	}
	return true
}

func typeKey(c *cand) string {
	if c.j == nil {
		return c.sib.Value.Kind.String()
	}
	return c.j.kind.String()
}

func conflictType(top []*cand) ConflictType {
	deleted := 0
	for _, c := range top {
		if c.sib.Value.Kind == KindDeleted {
			deleted++
		}
	}
	if deleted > 0 && deleted < len(top) {
		return UpdateDelete
	}
	for _, c := range top[1:] {
		if typeKey(c) != typeKey(top[0]) {
			return TypeMismatch
		}
	}
	for i, a := range top {
		for _, b := range top[i+1:] {
			if !a.sib.Version.VV.sharesDevice(b.sib.Version.VV) {
				return CreateCreate
			}
		}
	}
	return UpdateUpdate
}

// apply runs strategy s (not user) over top, sorted best timestamp first.
func apply(s Strategy, p Policy, top []*cand) (Value, int, Strategy) {
	switch s {
	case StrategyPriority:
		w := priorityWinner(p, top)
		return w.value(), w.idx, StrategyPriority
	case StrategyMerge:
		for _, c := range top {
			if !c.isObject() {
				return top[0].value(), top[0].idx, StrategyTimestamp
			}
		}
		v := mergeCands(top)
		for _, c := range top {
			if bytes.Equal(c.data, v.Data) {
				return v, c.idx, StrategyMerge
			}
		}
		return v, -1, StrategyMerge
	}
	return top[0].value(), top[0].idx, StrategyTimestamp
}

func mergeCands(top []*cand) Value {
	m := top[0].getTree()
	for _, c := range top[1:] {
		m = joinMaps(m, c.getTree())
	}
	data, fc := render(m)
	return Value{Kind: KindJSON, Data: data, Fields: fc}
}

type prio struct {
	has  bool
	num  float64
	rank int
}

func priorityOf(p Policy, c *cand) prio {
	var r prio
	if p.PriorityField != "" {
		path, _ := splitPath(p.PriorityField) // validated
		if f := c.j.lookup(path); f != nil && f.kind == jNumber {
			// A valid JSON number always parses; out of range gives ±Inf or 0.
			n, _ := strconv.ParseFloat(f.s, 64)
			r.has, r.num = true, n
		}
	}
	r.rank = p.DeviceRank[c.sib.Version.Device]
	return r
}

func cmpPrio(a, b prio) int {
	if a.has != b.has {
		if a.has {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(a.num, b.num); c != 0 {
		return c
	}
	return cmp.Compare(a.rank, b.rank)
}

// priorityWinner returns the highest priority; top is in timestamp order, so
// the first of equal priorities is the timestamp winner.
func priorityWinner(p Policy, top []*cand) *cand {
	w, wp := top[0], priorityOf(p, top[0])
	for _, c := range top[1:] {
		if cp := priorityOf(p, c); cmpPrio(cp, wp) > 0 {
			w, wp = c, cp
		}
	}
	return w
}

// field is what a sibling holds at a critical path: its content and the
// stamps of the writes that shaped it.
type field struct {
	key    string
	stamps []stamp
}

func fieldAt(c *cand, path []string) field {
	if !c.isObject() {
		// A deletion or a non-object replaced the whole record.
		return field{key: "\x00" + c.sib.Value.Kind.String() + "\x00" + string(c.data), stamps: []stamp{c.versionStamp()}}
	}
	m := c.getTree()
	for i, k := range path {
		n := m[k]
		switch {
		case n == nil:
			return field{key: "\x00absent"}
		case n.removed:
			return field{key: "\x00absent", stamps: []stamp{n.st}}
		case n.children == nil:
			if i < len(path)-1 {
				return field{key: "\x00leaf\x00" + string(n.leaf), stamps: []stamp{n.st}}
			}
			return field{key: string(n.leaf), stamps: []stamp{n.st}}
		case i == len(path)-1:
			data, _ := render(n.children)
			f := field{key: string(data)}
			n.walkStamps(func(s stamp) { f.stamps = append(f.stamps, s) })
			return f
		}
		m = n.children
	}
	return field{key: "\x00absent"}
}

// seen reports whether version x has seen the write s.
func seen(s stamp, x Version) bool {
	switch {
	case s == stamp{}:
		return true
	case s.Counter > 0:
		return x.VV[s.Device] >= s.Counter
	}
	// Without a counter only x's own earlier writes are known to be seen.
	return s.Device == x.Device && s.Clock <= x.Clock
}

func changedUnseen(f field, x Version) bool {
	for _, s := range f.stamps {
		if !seen(s, x) {
			return true
		}
	}
	return false
}

// criticalConflict reports whether two siblings both changed a critical
// field, to different values, without seeing each other's change.
func criticalConflict(paths []string, top []*cand) bool {
	for _, ps := range paths {
		path, _ := splitPath(ps) // validated
		fs := make([]field, len(top))
		for i, c := range top {
			fs[i] = fieldAt(c, path)
		}
		for i := range top {
			for j := i + 1; j < len(top); j++ {
				if fs[i].key != fs[j].key &&
					changedUnseen(fs[i], top[j].sib.Version) &&
					changedUnseen(fs[j], top[i].sib.Version) {
					return true
				}
			}
		}
	}
	return false
}
