package resolve

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

func permutations(n int, f func([]int)) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			f(p)
			return
		}
		for i := k; i < n; i++ {
			p[k], p[i] = p[i], p[k]
			rec(k + 1)
			p[k], p[i] = p[i], p[k]
		}
	}
	rec(0)
}

var propertyPolicies = []Policy{
	{Strategy: StrategyTimestamp},
	{Strategy: StrategyPriority, PriorityField: "p", DeviceRank: map[DeviceID]int{"d1": 2, "d2": 1}},
	{Strategy: StrategyPriority, DeviceRank: map[DeviceID]int{"d3": 1}},
	{Strategy: StrategyMerge},
	{Strategy: StrategyMerge, Critical: []string{"a", "c.x"}},
	{Strategy: StrategyUser, Fallback: StrategyMerge, Deadline: time.Hour},
}

// Resolve must not depend on the order of the siblings: every permutation
// of up to 6 siblings (drawn from random histories, dominated versions and
// duplicates included) gives the same result, for every strategy.
func TestResolveOrderIndependent(t *testing.T) {
	seeds := 36 // sizes cycle through 1..6, so six seeds run all 720 orders of 6
	if testing.Short() {
		seeds = 12
	}
	perms := 0
	for seed := 0; seed < seeds; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		h := randomHistory(t, r, 3+r.IntN(8))
		n := 1 + seed%6
		var pick []int
		for range n {
			pick = append(pick, r.IntN(len(h.all)))
		}
		base := h.sibs(pick...)
		now := t0.Add(time.Duration(r.IntN(3)) * time.Hour)
		for _, p := range propertyPolicies {
			want, err := Resolve(p, base, now)
			if err != nil {
				t.Fatalf("seed=%d: %v", seed, err)
			}
			ws := summary(t, base, want)
			permutations(n, func(order []int) {
				perms++
				sibs := make([]Sibling, n)
				for i, o := range order {
					sibs[i] = base[o]
				}
				got, err := Resolve(p, sibs, now)
				if err != nil {
					t.Fatalf("seed=%d: %v", seed, err)
				}
				if gs := summary(t, sibs, got); gs != ws {
					t.Fatalf("seed=%d policy=%+v order=%v:\n got %s\nwant %s", seed, p, order, gs, ws)
				}
			})
		}
	}
	t.Logf("%d permutations over %d seeds × %d policies", perms, seeds, len(propertyPolicies))
}

// randomTree returns the merge tree of a random object value from a random history.
func randomTree(t *testing.T, r *rand.Rand, h *history) map[string]*mnode {
	for {
		i := r.IntN(len(h.all))
		s := h.all[i]
		if s.Value.Kind != KindJSON || s.Value.Data[0] != '{' {
			h.write(DeviceID([]string{"d0", "d1", "d2"}[r.IntN(3)]), randomDoc(r), time.Second, i)
			continue
		}
		j, err := parseJSON(s.Value.Data)
		if err != nil {
			t.Fatal(err)
		}
		return buildTree(j, s.Value.Fields, stamp{Clock: s.Version.Clock, Device: s.Version.Device, Counter: s.Version.Counter()})
	}
}

func renderKey(m map[string]*mnode) string {
	d, f := render(m)
	fb, _ := f.MarshalBinary()
	return string(d) + "|" + string(fb)
}

// The merge is a join: commutative, associative and idempotent, on values
// with field clocks from random histories.
func TestMergeLattice(t *testing.T) {
	for seed := 0; seed < 500; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 2))
		h := randomHistory(t, r, 4+r.IntN(10))
		a, b, c := randomTree(t, r, h), randomTree(t, r, h), randomTree(t, r, h)
		if x, y := renderKey(joinMaps(a, b)), renderKey(joinMaps(b, a)); x != y {
			t.Fatalf("seed=%d: not commutative:\n%s\n%s", seed, x, y)
		}
		if x, y := renderKey(joinMaps(joinMaps(a, b), c)), renderKey(joinMaps(a, joinMaps(b, c))); x != y {
			t.Fatalf("seed=%d: not associative:\n%s\n%s", seed, x, y)
		}
		if x, y := renderKey(joinMaps(a, a)), renderKey(a); x != y {
			t.Fatalf("seed=%d: not idempotent:\n%s\n%s", seed, x, y)
		}
		// Merging a merged result again with an input changes nothing.
		ab := joinMaps(a, b)
		if x, y := renderKey(joinMaps(ab, a)), renderKey(ab); x != y {
			t.Fatalf("seed=%d: not absorbing:\n%s\n%s", seed, x, y)
		}
	}
}

// The merge semantics of the issue: one-sided changes and removals win,
// a field changed on both sides goes to the later clock.
func TestMergeSemantics(t *testing.T) {
	h := newHistory(t)
	anc := h.write("d1", `{"a":1,"b":1,"c":1,"d":{"x":1,"y":1},"e":1}`, 0)
	a := h.write("d1", `{"a":2,"b":1,"c":5,"d":{"x":2,"y":1},"e":1}`, time.Second, anc)
	b := h.write("d2", `{"a":1,"c":6,"d":{"x":1,"y":3},"e":1,"f":1}`, time.Second, anc)
	r, err := Resolve(Policy{Strategy: StrategyMerge}, h.sibs(a, b), t0)
	if err != nil {
		t.Fatal(err)
	}
	// a: only A changed; b: B removed it; c: both, B later; d.x only A,
	// d.y only B; f: B added.
	want := `{"a":2,"c":6,"d":{"x":2,"y":3},"e":1,"f":1}`
	if string(r.Value.Data) != want || r.Winner != -1 {
		t.Errorf("merge = %s (winner %d), want %s", r.Value.Data, r.Winner, want)
	}
	// The merged value written back and edited keeps the merge's clocks.
	m := h.write("d3", want, time.Second, a, b)
	if !bytes.Equal(h.all[m].Value.Data, []byte(want)) {
		t.Fatalf("stamp changed data: %s", h.all[m].Value.Data)
	}
	for k, fc := range h.all[m].Value.Fields {
		if fc.Device == "d3" {
			t.Errorf("field %s restamped by a write that did not change it", k)
		}
	}
}

// The hybrid clock never runs backwards under random wall-clock jumps and
// observed remote clocks, and never moves past now+MaxSkew on an observe.
func TestClockMonotonic(t *testing.T) {
	for seed := 0; seed < 200; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 3))
		c := Clock{MaxSkew: time.Duration(1+r.IntN(20)) * time.Minute}
		now := t0
		var last Timestamp
		for i := 0; i < 500; i++ {
			switch r.IntN(4) {
			case 0:
				now = now.Add(-time.Duration(r.Int64N(int64(48 * time.Hour))))
			default:
				now = now.Add(time.Duration(r.Int64N(int64(time.Second))))
			}
			if r.IntN(3) == 0 {
				remote := MakeTimestamp(now.UnixMilli()+r.Int64N(int64(2*c.MaxSkew/time.Millisecond))-int64(c.MaxSkew/time.Millisecond), uint16(r.IntN(1<<16)))
				before := c.Last
				skew, clamped := c.Observe(remote, now)
				limit := MakeTimestamp(now.Add(c.MaxSkew).UnixMilli(), 0)
				if c.Last < before {
					t.Fatalf("seed=%d: observe moved clock back", seed)
				}
				if clamped != (remote.WallMs()-now.UnixMilli() > c.MaxSkew.Milliseconds()) {
					t.Fatalf("seed=%d: clamped=%v for remote %v now %v", seed, clamped, remote, now)
				}
				if clamped && c.Last > max(before, limit) {
					t.Fatalf("seed=%d: clamped observe moved clock past now+MaxSkew", seed)
				}
				if clamped && skew <= c.MaxSkew {
					t.Fatalf("seed=%d: clamped with skew %v", seed, skew)
				}
				if !clamped && c.Last < remote {
					t.Fatalf("seed=%d: unclamped observe left clock behind remote", seed)
				}
				continue
			}
			ts := c.Now(now)
			if ts <= last || ts < c.Last {
				t.Fatalf("seed=%d step %d: Now went from %v to %v", seed, i, last, ts)
			}
			if ts.WallMs() < now.UnixMilli() {
				t.Fatalf("seed=%d: Now %v behind wall time %v", seed, ts, now)
			}
			last = ts
		}
	}
}

func TestClockSkew(t *testing.T) {
	c := Clock{} // default 10 minutes
	far := MakeTimestamp(t0.Add(10*365*24*time.Hour).UnixMilli(), 0)
	skew, clamped := c.Observe(far, t0)
	if !clamped || skew < 3650*24*time.Hour {
		t.Errorf("observe 10 years ahead: skew %v clamped %v", skew, clamped)
	}
	if got := c.Now(t0); got.Time().After(t0.Add(DefaultMaxSkew + time.Millisecond)) {
		t.Errorf("clock dragged to %v", got.Time())
	}
	near := MakeTimestamp(t0.Add(5*time.Minute).UnixMilli(), 7)
	if skew, clamped := c.Observe(near, t0); clamped || skew != 5*time.Minute {
		t.Errorf("observe 5 min ahead: skew %v clamped %v", skew, clamped)
	}
	if got := c.Now(t0); got <= near {
		t.Errorf("Now %v not past observed %v", got, near)
	}
	// The logical counter carries into the wall part, keeping order.
	c = Clock{Last: MakeTimestamp(t0.UnixMilli(), 0xffff)}
	if got := c.Now(t0); got.WallMs() != t0.UnixMilli()+1 || got.Logical() != 0 {
		t.Errorf("overflow: %v", got)
	}
}

func TestTimestamp(t *testing.T) {
	ts := MakeTimestamp(1700000000123, 42)
	if ts.WallMs() != 1700000000123 || ts.Logical() != 42 || ts.Time().UnixMilli() != 1700000000123 {
		t.Errorf("round trip: %d %d", ts.WallMs(), ts.Logical())
	}
	if MakeTimestamp(-5, 1) != MakeTimestamp(0, 1) {
		t.Error("negative wall not clamped")
	}
}

func TestVersionVector(t *testing.T) {
	tests := []struct {
		a, b VersionVector
		want Ordering
	}{
		// Equal, including zero entries and nil.
		{nil, VersionVector{}, Equal},
		{VersionVector{"a": 0}, nil, Equal},
		{VersionVector{"a": 1, "b": 2}, VersionVector{"b": 2, "a": 1}, Equal},
		// Strictly ordered.
		{VersionVector{"a": 1}, VersionVector{"a": 2}, Before},
		{VersionVector{"a": 1}, VersionVector{"a": 1, "b": 1}, Before},
		{VersionVector{"a": 2, "b": 1}, VersionVector{"a": 1}, After},
		// Concurrent.
		{VersionVector{"a": 1}, VersionVector{"b": 1}, Concurrent},
		{VersionVector{"a": 2, "b": 1}, VersionVector{"a": 1, "b": 2}, Concurrent},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v vs %v = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		m := tt.a.Merge(tt.b)
		if !m.Dominates(tt.a) || !m.Dominates(tt.b) {
			t.Errorf("merge %v does not dominate its inputs", m)
		}
		if tt.a.Dominates(tt.b) != (tt.want == Equal || tt.want == After) {
			t.Errorf("%v dominates %v wrong", tt.a, tt.b)
		}
	}
}
