package resolve

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// scenario builds a set of siblings and names the ones a row refers to.
type scenario struct {
	sibs []Sibling
	typ  ConflictType // "" when there is no conflict
	idx  map[string]int
}

// The conflict types, each built the way devices make them.
func scenarios(t *testing.T) map[string]scenario {
	sc := map[string]scenario{}

	// update/update: both devices edit a common ancestor; B is later.
	// A raises p and changes n, B changes n and adds x.
	h := newHistory(t)
	anc := h.write("d1", `{"n":0,"p":1,"keep":true}`, 0)
	a := h.write("d1", `{"n":1,"p":5,"keep":true}`, time.Second, anc)
	b := h.write("d2", `{"n":2,"p":1,"keep":true,"x":9}`, time.Second, anc)
	sc["update/update"] = scenario{h.sibs(a, b), UpdateUpdate, map[string]int{"A": 0, "B": 1}}

	// update/delete: A (d1) deletes late; B (d2, ranked higher) edits earlier.
	h = newHistory(t)
	anc = h.write("d1", `{"n":0}`, 0)
	b = h.write("d2", `{"n":2}`, time.Second, anc)
	a = h.write("d1", ``, time.Second, anc)
	sc["update/delete"] = scenario{h.sibs(a, b), UpdateDelete, map[string]int{"A": 0, "B": 1}}

	// create/create: the same key created apart on d1 (later) and d2.
	h = newHistory(t)
	b = h.write("d2", `{"b":2,"p":7}`, 0)
	a = h.write("d1", `{"a":1,"p":3}`, time.Second)
	sc["create/create"] = scenario{h.sibs(a, b), CreateCreate, map[string]int{"A": 0, "B": 1}}

	// type-mismatch: d1 keeps an object, d2 (later) replaces it by an array.
	h = newHistory(t)
	anc = h.write("d1", `{"n":0,"p":1}`, 0)
	a = h.write("d1", `{"n":1,"p":9}`, time.Second, anc)
	b = h.write("d2", `[1,2]`, time.Second, anc)
	sc["type-mismatch"] = scenario{h.sibs(a, b), TypeMismatch, map[string]int{"A": 0, "B": 1}}

	// type-mismatch between JSON and raw bytes: d2 (later) writes raw.
	h = newHistory(t)
	anc = h.write("d1", `{"n":0}`, 0)
	a = h.write("d1", `{"n":1,"p":9}`, time.Second, anc)
	b = h.write("d2", `raw:blob`, time.Second, anc)
	sc["json/raw"] = scenario{h.sibs(a, b), TypeMismatch, map[string]int{"A": 0, "B": 1}}

	// identical: both devices set the same value apart: no conflict.
	h = newHistory(t)
	anc = h.write("d1", `{"n":0}`, 0)
	a = h.write("d1", `{"n":5}`, time.Second, anc)
	b = h.write("d2", `{"n":5}`, time.Second, anc)
	sc["identical"] = scenario{h.sibs(a, b), "", map[string]int{"A": 0, "B": 1}}

	// identical deletes: no conflict.
	h = newHistory(t)
	anc = h.write("d1", `{"n":0}`, 0)
	a = h.write("d1", ``, time.Second, anc)
	b = h.write("d2", ``, time.Second, anc)
	sc["both-deleted"] = scenario{h.sibs(a, b), "", map[string]int{"A": 0, "B": 1}}
	return sc
}

func TestResolveTable(t *testing.T) {
	sc := scenarios(t)
	ts := Policy{Strategy: StrategyTimestamp}
	prField := Policy{Strategy: StrategyPriority, PriorityField: "p"}
	prRank := Policy{Strategy: StrategyPriority, DeviceRank: map[DeviceID]int{"d2": 10}}
	prRankD1 := Policy{Strategy: StrategyPriority, DeviceRank: map[DeviceID]int{"d1": 10}}
	merge := Policy{Strategy: StrategyMerge}
	user := Policy{Strategy: StrategyUser}
	userMerge := Policy{Strategy: StrategyUser, Fallback: StrategyMerge}
	before := t0.Add(time.Hour)
	after := t0.Add(25 * time.Hour)

	const del = "<deleted>"
	tests := []struct {
		scenario string
		policy   Policy
		now      time.Time
		want     string // resolved JSON text, raw bytes, or del
		winner   string // "A", "B" or "" for a merge
		strategy Strategy
		open     bool
	}{
		// update/update: timestamp takes the later B; priority by field
		// takes A (p=5); by rank takes d2's B; merge takes each side's
		// change and the later n; user waits with B, then falls back.
		{"update/update", ts, before, `{"keep":true,"n":2,"p":1,"x":9}`, "B", StrategyTimestamp, false},
		{"update/update", prField, before, `{"keep":true,"n":1,"p":5}`, "A", StrategyPriority, false},
		{"update/update", prRank, before, `{"keep":true,"n":2,"p":1,"x":9}`, "B", StrategyPriority, false},
		{"update/update", prRankD1, before, `{"keep":true,"n":1,"p":5}`, "A", StrategyPriority, false},
		{"update/update", merge, before, `{"keep":true,"n":2,"p":5,"x":9}`, "", StrategyMerge, false},
		{"update/update", user, before, `{"keep":true,"n":2,"p":1,"x":9}`, "B", StrategyTimestamp, true},
		{"update/update", user, after, `{"keep":true,"n":2,"p":1,"x":9}`, "B", StrategyTimestamp, false},
		{"update/update", userMerge, after, `{"keep":true,"n":2,"p":5,"x":9}`, "", StrategyMerge, false},

		// update/delete: the later delete wins by timestamp and by merge
		// (non-objects fall back to timestamp); rank d2 keeps B's edit; a
		// priority field missing on the delete ranks it below B.
		{"update/delete", ts, before, del, "A", StrategyTimestamp, false},
		{"update/delete", prField, before, del, "A", StrategyPriority, false},
		{"update/delete", prRank, before, `{"n":2}`, "B", StrategyPriority, false},
		{"update/delete", merge, before, del, "A", StrategyTimestamp, false},
		{"update/delete", user, before, del, "A", StrategyTimestamp, true},
		{"update/delete", userMerge, after, del, "A", StrategyTimestamp, false},

		// create/create: A is later; B has the larger p and d2's rank;
		// merge unites both creations.
		{"create/create", ts, before, `{"a":1,"p":3}`, "A", StrategyTimestamp, false},
		{"create/create", prField, before, `{"b":2,"p":7}`, "B", StrategyPriority, false},
		{"create/create", prRank, before, `{"b":2,"p":7}`, "B", StrategyPriority, false},
		{"create/create", merge, before, `{"a":1,"b":2,"p":3}`, "", StrategyMerge, false},
		{"create/create", user, before, `{"a":1,"p":3}`, "A", StrategyTimestamp, true},
		{"create/create", userMerge, after, `{"a":1,"b":2,"p":3}`, "", StrategyMerge, false},

		// type-mismatch: B's array is later; A has p=9 and rank d1; merge
		// cannot merge an array and falls back to timestamp.
		{"type-mismatch", ts, before, `[1,2]`, "B", StrategyTimestamp, false},
		{"type-mismatch", prField, before, `{"n":1,"p":9}`, "A", StrategyPriority, false},
		{"type-mismatch", prRankD1, before, `{"n":1,"p":9}`, "A", StrategyPriority, false},
		{"type-mismatch", merge, before, `[1,2]`, "B", StrategyTimestamp, false},
		{"type-mismatch", user, before, `[1,2]`, "B", StrategyTimestamp, true},
		{"type-mismatch", user, after, `[1,2]`, "B", StrategyTimestamp, false},

		// JSON against raw bytes behaves like any type mismatch.
		{"json/raw", ts, before, `blob`, "B", StrategyTimestamp, false},
		{"json/raw", prField, before, `{"n":1,"p":9}`, "A", StrategyPriority, false},
		{"json/raw", merge, before, `blob`, "B", StrategyTimestamp, false},
		{"json/raw", user, before, `blob`, "B", StrategyTimestamp, true},

		// Identical concurrent values are no conflict under any strategy;
		// the winner is the timestamp winner.
		{"identical", ts, before, `{"n":5}`, "B", "", false},
		{"identical", prField, before, `{"n":5}`, "B", "", false},
		{"identical", merge, before, `{"n":5}`, "B", "", false},
		{"identical", user, before, `{"n":5}`, "B", "", false},
		{"both-deleted", user, before, del, "B", "", false},
		{"both-deleted", merge, before, del, "B", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.scenario+"/"+string(tt.policy.Strategy)+"/"+string(tt.policy.Fallback), func(t *testing.T) {
			s := sc[tt.scenario]
			r, err := Resolve(tt.policy, s.sibs, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			got := string(r.Value.Data)
			if r.Value.Kind == KindDeleted {
				got = del
			}
			if got != tt.want {
				t.Errorf("value = %s, want %s", got, tt.want)
			}
			wantWinner := -1
			if tt.winner != "" {
				wantWinner = s.idx[tt.winner]
			}
			if r.Winner != wantWinner {
				t.Errorf("winner = %d, want %d (%s)", r.Winner, wantWinner, tt.winner)
			}
			if s.typ == "" {
				if r.Conflict != nil {
					t.Fatalf("conflict %+v, want none", r.Conflict)
				}
				return
			}
			c := r.Conflict
			if c == nil {
				t.Fatalf("no conflict, want %s", s.typ)
			}
			if c.Type != s.typ || c.Strategy != tt.strategy || c.Open != tt.open {
				t.Errorf("conflict = %s/%s open=%v, want %s/%s open=%v", c.Type, c.Strategy, c.Open, s.typ, tt.strategy, tt.open)
			}
			if tt.policy.Strategy == StrategyUser && c.Deadline.IsZero() {
				t.Error("user conflict without deadline")
			}
			// Every sibling whose value differs from the result is a loser.
			var wantLosers []int
			for i, sb := range s.sibs {
				if !sb.Value.Same(r.Value) {
					wantLosers = append(wantLosers, i)
				}
			}
			if !slices.Equal(c.Losers, wantLosers) {
				t.Errorf("losers = %v, want %v", c.Losers, wantLosers)
			}
		})
	}
}

func TestCriticalFields(t *testing.T) {
	h := newHistory(t)
	anc := h.write("d1", `{"price":1,"note":"a","other":0}`, 0)
	bothPrice1 := h.write("d1", `{"price":2,"note":"a","other":0}`, time.Second, anc)
	bothPrice2 := h.write("d2", `{"price":3,"note":"a","other":0}`, time.Second, anc)
	onlyNote := h.write("d3", `{"price":1,"note":"b","other":0}`, time.Second, anc)
	onlyOther := h.write("d4", `{"price":1,"note":"a","other":1}`, time.Second, anc)
	deleted := h.write("d5", ``, time.Second, anc)
	crit := []string{"price"}
	before, after := t0.Add(time.Hour), t0.Add(48*time.Hour)

	tests := []struct {
		name   string
		policy Policy
		sibs   []int
		now    time.Time
		open   bool
		want   string
	}{
		// Both sides changed price: a user-choice conflict under merge
		// and under timestamp, whose provisional and final value is the
		// collection's strategy.
		{"merge both changed", Policy{Strategy: StrategyMerge, Critical: crit}, []int{bothPrice1, bothPrice2}, before, true, `{"note":"a","other":0,"price":3}`},
		{"merge both changed after deadline", Policy{Strategy: StrategyMerge, Critical: crit}, []int{bothPrice1, bothPrice2}, after, false, `{"note":"a","other":0,"price":3}`},
		{"timestamp both changed", Policy{Strategy: StrategyTimestamp, Critical: crit}, []int{bothPrice1, bothPrice2}, before, true, `{"note":"a","other":0,"price":3}`},
		// Only one side changed price: no user choice.
		{"merge one side", Policy{Strategy: StrategyMerge, Critical: crit}, []int{bothPrice1, onlyNote}, before, false, `{"note":"b","other":0,"price":2}`},
		{"merge neither", Policy{Strategy: StrategyMerge, Critical: crit}, []int{onlyOther, onlyNote}, before, false, `{"note":"b","other":1,"price":1}`},
		// A delete against a price change is a concurrent change of price.
		{"delete vs price", Policy{Strategy: StrategyTimestamp, Critical: crit}, []int{bothPrice1, deleted}, before, true, ""},
		// A delete against an edit that left price alone is not.
		{"delete vs note", Policy{Strategy: StrategyTimestamp, Critical: crit}, []int{onlyNote, deleted}, before, false, ""},
		// A nested path: both sides changing the same object field.
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Resolve(tt.policy, h.sibs(tt.sibs...), tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if r.Conflict == nil {
				t.Fatal("no conflict")
			}
			if r.Conflict.Open != tt.open {
				t.Errorf("open = %v, want %v", r.Conflict.Open, tt.open)
			}
			if tt.open && r.Conflict.Deadline.IsZero() {
				t.Error("open without deadline")
			}
			if string(r.Value.Data) != tt.want {
				t.Errorf("value = %s, want %s", r.Value.Data, tt.want)
			}
		})
	}

	// Nested critical path "addr.zip".
	h = newHistory(t)
	anc = h.write("d1", `{"addr":{"zip":"1","city":"x"}}`, 0)
	a := h.write("d1", `{"addr":{"zip":"2","city":"x"}}`, time.Second, anc)
	b := h.write("d2", `{"addr":{"zip":"3","city":"x"}}`, time.Second, anc)
	c := h.write("d3", `{"addr":{"zip":"1","city":"y"}}`, time.Second, anc)
	p := Policy{Strategy: StrategyMerge, Critical: []string{"addr.zip"}}
	if r, err := Resolve(p, h.sibs(a, b), before); err != nil || !r.Conflict.Open {
		t.Errorf("nested both changed: open=%v err=%v, want open", r.Conflict != nil && r.Conflict.Open, err)
	}
	if r, err := Resolve(p, h.sibs(a, c), before); err != nil || r.Conflict.Open {
		t.Errorf("nested one side: err=%v, want closed", err)
	} else if string(r.Value.Data) != `{"addr":{"city":"y","zip":"2"}}` {
		t.Errorf("nested merge = %s", r.Value.Data)
	}
}

func TestDeadline(t *testing.T) {
	h := newHistory(t)
	anc := h.write("d1", `{"n":0}`, 0)
	a := h.write("d1", `{"n":1}`, time.Second, anc)
	b := h.write("d2", `{"n":2}`, 3*time.Second, anc)
	p := Policy{Strategy: StrategyUser, Fallback: StrategyTimestamp, Deadline: 24 * time.Hour}
	latest := h.all[b].Version.Clock.Time()
	wantDeadline := latest.Add(24 * time.Hour)

	for _, tc := range []struct {
		name string
		now  time.Time
		open bool
	}{
		{"just created", latest, true},
		{"a millisecond before", wantDeadline.Add(-time.Millisecond), true},
		{"at the deadline", wantDeadline, false},
		{"a replica back after a month", wantDeadline.Add(30 * 24 * time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Resolve(p, h.sibs(a, b), tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Conflict.Deadline.Equal(wantDeadline) {
				t.Errorf("deadline = %v, want %v", r.Conflict.Deadline, wantDeadline)
			}
			if r.Conflict.Open != tc.open {
				t.Errorf("open = %v, want %v", r.Conflict.Open, tc.open)
			}
			if string(r.Value.Data) != `{"n":2}` {
				t.Errorf("value = %s", r.Value.Data)
			}
		})
	}

	// Two replicas with different clocks, both past the deadline, one
	// holding the siblings in the other order: same closed result.
	r1, err1 := Resolve(p, h.sibs(a, b), wantDeadline.Add(time.Minute))
	r2, err2 := Resolve(p, h.sibs(b, a), wantDeadline.Add(72*time.Hour))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if s1, s2 := summary(t, h.sibs(a, b), r1), summary(t, h.sibs(b, a), r2); s1 != s2 {
		t.Errorf("replicas disagree:\n%s\n%s", s1, s2)
	}

	// A decision written on one replica dominates both: no conflict.
	d := h.write("d3", `{"n":1}`, time.Minute, a, b)
	r, err := Resolve(p, h.sibs(a, b, d), t0)
	if err != nil || r.Conflict != nil || r.Winner != 2 {
		t.Errorf("after decision: %+v %v", r, err)
	}
}

func TestResolveErrors(t *testing.T) {
	good := Sibling{Version: Version{Device: "a", Clock: 1, VV: VersionVector{"a": 1}}, Value: Value{Kind: KindJSON, Data: []byte(`{}`)}}
	for _, tc := range []struct {
		name   string
		policy Policy
		sibs   []Sibling
		want   error
	}{
		{"no siblings", Policy{}, nil, ErrNoSiblings},
		{"unknown strategy", Policy{Strategy: "lww"}, []Sibling{good}, ErrInvalidPolicy},
		{"user fallback", Policy{Strategy: StrategyUser, Fallback: StrategyUser}, []Sibling{good}, ErrInvalidPolicy},
		{"priority without ranks", Policy{Strategy: StrategyPriority}, []Sibling{good}, ErrInvalidPolicy},
		{"bad critical path", Policy{Critical: []string{"a..b"}}, []Sibling{good}, ErrInvalidPolicy},
		{"negative deadline", Policy{Deadline: -time.Second}, []Sibling{good}, ErrInvalidPolicy},
		{"zero kind", Policy{}, []Sibling{{Version: good.Version}}, ErrInvalidValue},
		{"bad JSON", Policy{}, []Sibling{{Version: good.Version, Value: Value{Kind: KindJSON, Data: []byte(`{"a":}`)}}}, ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Resolve(tc.policy, tc.sibs, t0); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestResolveIgnoresDominated(t *testing.T) {
	h := newHistory(t)
	a := h.write("d1", `{"n":1}`, 0)
	b := h.write("d2", `{"n":2}`, time.Second, a)
	r, err := Resolve(Policy{}, h.sibs(a, b, a), t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Conflict != nil || r.Winner != 1 {
		t.Errorf("got %+v, want B without conflict", r)
	}
}
