package resolve

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the wall time the tests start from.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func ts(offset time.Duration) Timestamp { return MakeTimestamp(t0.Add(offset).UnixMilli(), 0) }

// history builds versions the way devices do: every write descends from its
// device's previous write plus whatever else the device has received.
type history struct {
	t     testing.TB
	all   []Sibling
	last  map[DeviceID]int // index of each device's latest write
	clock map[DeviceID]*Clock
	now   time.Time
}

func newHistory(t testing.TB) *history {
	return &history{t: t, last: map[DeviceID]int{}, clock: map[DeviceID]*Clock{}, now: t0}
}

// write makes dev write doc (JSON text, or "" for a delete, or "raw:..." for
// raw bytes) on top of the siblings at indexes parents (plus dev's own last
// write), stamping fields against their merged value. It returns the index.
func (h *history) write(dev DeviceID, doc string, advance time.Duration, parents ...int) int {
	h.t.Helper()
	h.now = h.now.Add(advance)
	if i, ok := h.last[dev]; ok && !slices.Contains(parents, i) {
		parents = append(parents, i)
	}
	c := h.clock[dev]
	if c == nil {
		c = &Clock{}
		h.clock[dev] = c
	}
	vv := VersionVector{}
	var ps []Sibling
	for _, p := range parents {
		s := h.all[p]
		vv = vv.Merge(s.Version.VV)
		c.Observe(s.Version.Clock, h.now)
		ps = append(ps, s)
	}
	vv[dev]++
	v := Version{Device: dev, Clock: c.Now(h.now), VV: vv}
	var prev *Value
	if len(ps) > 0 {
		r, err := Resolve(Policy{Strategy: StrategyMerge}, ps, h.now)
		if err != nil {
			h.t.Fatalf("resolve parents: %v", err)
		}
		prev = &r.Value
	}
	var val Value
	switch {
	case doc == "":
		val = Value{Kind: KindDeleted}
	case strings.HasPrefix(doc, "raw:"):
		val = Value{Kind: KindRaw, Data: []byte(doc[4:])}
	default:
		var err error
		if val, err = StampVersion(prev, []byte(doc), v); err != nil {
			h.t.Fatalf("stamp %s: %v", doc, err)
		}
	}
	h.all = append(h.all, Sibling{Version: v, Value: val})
	h.last[dev] = len(h.all) - 1
	return len(h.all) - 1
}

func (h *history) sibs(idx ...int) []Sibling {
	r := make([]Sibling, len(idx))
	for i, x := range idx {
		r[i] = h.all[x]
	}
	return r
}

// randomDoc returns a random JSON document, mostly objects built from a
// small vocabulary so that versions overlap.
func randomDoc(r *rand.Rand) string {
	switch r.IntN(12) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("[%d]", r.IntN(3))
	case 2:
		return fmt.Sprintf("raw:%d", r.IntN(3))
	case 3:
		return fmt.Sprintf("%d", r.IntN(3))
	}
	var parts []string
	for _, k := range []string{"a", "b", "c", "p"} {
		if r.IntN(3) == 0 {
			continue
		}
		var v string
		switch r.IntN(4) {
		case 0:
			v = fmt.Sprintf(`{"x":%d,"y":%d}`, r.IntN(3), r.IntN(2))
		case 1:
			v = fmt.Sprintf(`"s%d"`, r.IntN(3))
		default:
			v = fmt.Sprintf("%d", r.IntN(4))
		}
		parts = append(parts, fmt.Sprintf("%q:%s", k, v))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// randomHistory makes n random writes by up to 4 devices with random
// delivery, and returns it.
func randomHistory(t testing.TB, r *rand.Rand, n int) *history {
	h := newHistory(t)
	devs := []DeviceID{"d0", "d1", "d2", "d3"}
	for i := 0; i < n; i++ {
		var parents []int
		for j := range h.all {
			if r.IntN(3) == 0 {
				parents = append(parents, j)
			}
		}
		h.write(devs[r.IntN(len(devs))], randomDoc(r), time.Duration(r.IntN(3000)-500)*time.Millisecond, parents...)
	}
	return h
}

// versionKey identifies a sibling independent of its position.
func versionKey(s Sibling) string {
	fb, _ := s.Value.Fields.MarshalBinary()
	return fmt.Sprintf("%s@%d%s|%d|%q|%x", s.Version.Device, s.Version.Clock, s.Version.VV, s.Value.Kind, s.Value.Data, fb)
}

// summary describes a Result in terms that do not depend on sibling order.
func summary(t testing.TB, sibs []Sibling, r Result) string {
	t.Helper()
	fb, err := r.Value.Fields.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	w := "merge"
	if r.Winner >= 0 {
		w = versionKey(sibs[r.Winner])
	}
	s := fmt.Sprintf("value=%d %s fields=%x winner=%s", r.Value.Kind, r.Value.Data, fb, w)
	if c := r.Conflict; c != nil {
		var losers []string
		for _, l := range c.Losers {
			losers = append(losers, versionKey(sibs[l]))
		}
		slices.Sort(losers)
		s += fmt.Sprintf(" conflict=%s open=%v deadline=%v strategy=%s losers=%v", c.Type, c.Open, c.Deadline, c.Strategy, losers)
	}
	return s
}
