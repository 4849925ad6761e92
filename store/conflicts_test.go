package store

import (
	"errors"
	"testing"
	"time"

	"github.com/meshsync/meshsync/resolve"
)

// conflicted makes a and b edit collection/key concurrently and exchange everything.
func conflicted(t *testing.T, a, b *Store, coll, key, va, vb string) {
	t.Helper()
	mustApply(t, b, allEnvelopes(t, a))
	if err := a.Put(coll, key, []byte(va)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(coll, key, []byte(vb)); err != nil {
		t.Fatal(err)
	}
	mustApply(t, a, allEnvelopes(t, b))
	mustApply(t, b, allEnvelopes(t, a))
}

func TestConflictsListResolveHistory(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	a.Put("notes", "n", []byte(`{"v":0}`))
	conflicted(t, a, b, "notes", "n", `{"v":"a"}`, `{"v":"b"}`)
	cs, err := a.Conflicts().List()
	if err != nil || len(cs) != 1 {
		t.Fatalf("conflicts = %+v, %v", cs, err)
	}
	c := cs[0]
	if c.Collection != "notes" || c.Key != "n" || len(c.Versions) != 2 || c.Conflict.Type != resolve.UpdateUpdate {
		t.Fatalf("conflict %+v", c)
	}
	got, err := a.Conflicts().Get(c.ShortID()[:6])
	if err != nil || got.ID != c.ID {
		t.Fatalf("lookup by prefix: %v", err)
	}
	if _, err := a.Conflicts().Get("ffffffffffff"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	// A stale view is refused; the right one resolves.
	if err := a.Conflicts().Resolve(c.ID, 1, nil, 3); !errors.Is(err, ErrStale) {
		t.Errorf("stale resolve: %v", err)
	}
	if err := a.Conflicts().Resolve(c.ID, 9, nil, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("pick out of range: %v", err)
	}
	picked := string(c.Versions[0].Value)
	if err := a.Conflicts().Resolve(c.ID, 1, nil, 2); err != nil {
		t.Fatal(err)
	}
	mustApply(t, b, allEnvelopes(t, a))
	for _, s := range []*Store{a, b} {
		rec, _ := s.Get("notes", "n")
		if rec.Versions != 1 || string(rec.Value) != picked {
			t.Errorf("%s after pick: %+v", s.Device().Name, rec)
		}
		if cs, _ := s.Conflicts().List(); len(cs) != 0 {
			t.Errorf("%s still lists conflicts", s.Device().Name)
		}
		h, err := s.Conflicts().History("notes", "n")
		if err != nil || len(h) != 1 || string(h[0].Value) == picked {
			t.Errorf("%s history = %+v, %v", s.Device().Name, h, err)
		}
	}
	// Resolving with a new value.
	conflicted(t, a, b, "notes", "m", `1`, `2`)
	cs, _ = b.Conflicts().List()
	if err := b.Conflicts().Resolve(cs[0].ID, 0, []byte(`{"both":[1,2]}`), 0); err != nil {
		t.Fatal(err)
	}
	if rec, _ := b.Get("notes", "m"); string(rec.Value) != `{"both":[1,2]}` {
		t.Errorf("value resolve: %s", rec.Value)
	}
	if h, _ := b.Conflicts().History("notes", "m"); len(h) != 2 {
		t.Errorf("both losing values kept: %+v", h)
	}
}

func TestPolicyIsSyncedAndUsed(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	if err := a.Policies().Set("prefs", resolve.Policy{Strategy: resolve.StrategyMerge}); err != nil {
		t.Fatal(err)
	}
	if err := a.Policies().Set("prefs", resolve.Policy{Strategy: "bogus"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad policy: %v", err)
	}
	a.Put("prefs", "p", []byte(`{"theme":"dark","font":12}`))
	conflicted(t, a, b, "prefs", "p", `{"theme":"light","font":12}`, `{"theme":"dark","font":14}`)
	for _, s := range []*Store{a, b} {
		p, explicit, err := s.Policies().Get("prefs")
		if err != nil || !explicit || p.Strategy != resolve.StrategyMerge {
			t.Fatalf("%s policy = %+v %v %v", s.Device().Name, p, explicit, err)
		}
		rec, _ := s.Get("prefs", "p")
		if string(rec.Value) != `{"font":14,"theme":"light"}` {
			t.Errorf("%s merged value = %s", s.Device().Name, rec.Value)
		}
	}
	if _, explicit, _ := a.Policies().Get("other"); explicit {
		t.Error("unset policy reported as explicit")
	}
}

func TestUserChoiceDeadline(t *testing.T) {
	clk := newFakeClock()
	a := mustInit(t, testOptsClock(clk))
	b := peer(t, a, "b", testOptsClock(clk))
	a.Policies().Set("docs", resolve.Policy{Strategy: resolve.StrategyUser, Deadline: time.Hour})
	conflicted(t, a, b, "docs", "d", `"from a"`, `"from b"`)
	cs, _ := a.Conflicts().List()
	if len(cs) != 1 || !cs[0].Conflict.Open {
		t.Fatalf("user conflict not open: %+v", cs)
	}
	clk.Add(2 * time.Hour)
	ra, _ := a.Get("docs", "d")
	rb, _ := b.Get("docs", "d")
	if ra.Conflict == nil || ra.Conflict.Open || string(ra.Value) != string(rb.Value) {
		t.Fatalf("after the deadline: a=%+v b=%+v", ra, rb)
	}
}
