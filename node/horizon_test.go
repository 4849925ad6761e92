package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshsync/meshsync/store"
)

const day = 24 * time.Hour

// testClock is real time plus an offset the test moves; safe for concurrent use.
type testClock struct{ off atomic.Int64 }

func (c *testClock) Now() time.Time      { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) Add(d time.Duration) { c.off.Add(int64(d)) }

// clockMesh is a started mesh of three devices a, b, c on one injected clock.
func clockMesh(t *testing.T, clk *testClock) (a, b, c *Node) {
	t.Helper()
	cfg := testConfig(t, "a")
	cfg.Now = clk.Now
	a, err := Init(context.Background(), cfg, "a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	mustStart(t, a)
	joinClock := func(name string) *Node {
		code, _, err := a.Invite(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, name)
		cfg.Now = clk.Now
		n, err := Join(ctxT(t, 30*time.Second), cfg, code, name)
		if err != nil {
			t.Fatalf("join %s: %v", name, err)
		}
		t.Cleanup(func() { n.Close() })
		return mustStart(t, n)
	}
	return a, joinClock("b"), joinClock("c")
}

// reopen closes n and opens its store again, not started.
func reopen(t *testing.T, n *Node) *Node {
	t.Helper()
	cfg := n.cfg
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// apartResult is what one absence scenario ended with.
type apartResult struct {
	collected   int         // tombstones b and c collected while a was away
	resurrected []string    // deleted records readable anywhere after the sync (must be none)
	resync      *FullResync // a's full resync, nil after a merge
}

// runApart: a, b and c write, delete and make a conflict; a stops; b and c delete records
// a still holds and keep syncing; the clock moves days ahead and b and c collect
// tombstones; a comes back with offline edits and syncs. It checks that the three
// converge, that a's edits reach b and c, and reports the rest. With bulk > 0, b also
// writes bulk records before a leaves, then deletes half of them and writes as many new
// ones while a is away (bulk changes). With lagging, only b collects: c still holds the
// tombstones b dropped when a comes back.
func runApart(t *testing.T, days, bulk int, lagging bool) apartResult {
	clk := &testClock{}
	a, b, c := clockMesh(t, clk)
	for i := 1; i <= 4; i++ {
		mustDo(t, a.Put("notes", fmt.Sprintf("a%d", i), []byte(`"a"`)))
		mustDo(t, b.Put("notes", fmt.Sprintf("b%d", i), []byte(`"b"`)))
	}
	bulkWrite := func(coll string, n int) {
		mustDo(t, b.st.Update(func(tx *store.Tx) error {
			for i := range n {
				if err := tx.Put(coll, fmt.Sprint(i), []byte(`{"payload":"0123456789abcdef0123456789abcdef"}`)); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	if bulk > 0 {
		bulkWrite("bulk", bulk)
	}
	// A conflict: a and b edit doc/k while a is stopped.
	mustDo(t, a.Put("doc", "k", []byte(`{"v":"base"}`)))
	for _, n := range []*Node{a, b, c} {
		waitSynced(t, n)
	}
	a = reopen(t, a)
	mustDo(t, b.Put("doc", "k", []byte(`{"v":"b"}`)))
	mustDo(t, a.Put("doc", "k", []byte(`{"v":"a"}`)))
	mustStart(t, a)
	mustDo(t, a.Delete("notes", "a1"))
	mustDo(t, b.Delete("notes", "b1"))
	for _, n := range []*Node{a, b, c} {
		waitSynced(t, n)
		eventually(t, "conflict on "+n.self.Name, func() error {
			rec, err := n.Get("doc", "k")
			if err != nil {
				return err
			}
			if rec.Versions != 2 {
				return fmt.Errorf("doc/k has %d versions", rec.Versions)
			}
			return nil
		})
	}
	waitSynced(t, a) // a's last contact comes after everything above

	// a goes away; b and c delete records a holds and keep syncing.
	a = reopen(t, a)
	aContact := a.contact.get()
	mustDo(t, b.Delete("notes", "b2"))
	mustDo(t, b.Delete("notes", "b3"))
	mustDo(t, c.Delete("notes", "a2"))
	mustDo(t, b.Put("notes", "b5", []byte(`"while a was away"`)))
	if bulk > 0 {
		mustDo(t, b.st.Update(func(tx *store.Tx) error {
			tx.ConfirmMassDelete()
			for i := range bulk / 2 {
				if err := tx.Delete("bulk", fmt.Sprint(i)); err != nil {
					return err
				}
			}
			return nil
		}))
		bulkWrite("fresh", bulk/2)
	}
	for _, pair := range [][2]*Node{{b, c}, {c, b}} {
		if _, err := pair[0].syncWith(ctxT(t, 30*time.Second), pair[1].id); err != nil {
			t.Fatal(err)
		}
	}
	if !b.contact.get().After(aContact) {
		t.Fatalf("b's last contact %v is not after a's %v", b.contact.get(), aContact)
	}

	clk.Add(time.Duration(days) * day)
	var res apartResult
	collectors := []*Node{b, c}
	if lagging {
		collectors = collectors[:1]
	}
	for _, n := range collectors {
		k, err := n.collectTombstones()
		mustDo(t, err)
		res.collected += k
	}

	// a comes back with edits made offline: a new record and an edit of an old one.
	mustDo(t, a.Put("notes", "offline", []byte(`"written while away"`)))
	mustDo(t, a.Put("notes", "a3", []byte(`"edited while away"`)))
	events := a.SubscribeStates(256)
	defer events.Close()
	mustStart(t, a)

	nodes := []*Node{a, b, c}
	eventually(t, "same Merkle root everywhere", func() error {
		if lagging {
			// b refuses the tombstones it dropped that c still holds: they agree once
			// every device has collected.
			for _, n := range nodes {
				if _, err := n.collectTombstones(); err != nil {
					return err
				}
			}
		}
		ra, err := a.st.Replication().Root()
		if err != nil {
			return err
		}
		for _, n := range nodes[1:] {
			r, err := n.st.Replication().Root()
			if err != nil {
				return err
			}
			if r != ra {
				return fmt.Errorf("%s holds %d records, a %d", n.self.Name, r.Count, ra.Count)
			}
		}
		return nil
	})
	for _, n := range nodes {
		for _, k := range []string{"a1", "b1", "b2", "b3", "a2"} {
			_, err := n.Get("notes", k)
			if err == nil {
				res.resurrected = append(res.resurrected, n.self.Name+":"+k)
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		}
		for k, want := range map[string]string{"offline": `"written while away"`, "a3": `"edited while away"`, "b5": `"while a was away"`, "a4": `"a"`, "b4": `"b"`} {
			if err := hasValue(n, "notes", k, want); err != nil {
				t.Errorf("%s: %v", n.self.Name, err)
			}
		}
		if rec, err := n.Get("doc", "k"); err != nil || rec.Versions != 2 {
			t.Errorf("%s: the conflict on doc/k is gone: %+v %v", n.self.Name, rec, err)
		}
		if bulk > 0 {
			for i := range bulk / 2 {
				if _, err := n.Get("bulk", fmt.Sprint(i)); err == nil {
					res.resurrected = append(res.resurrected, n.self.Name+":bulk/"+fmt.Sprint(i))
				}
			}
			for coll, want := range map[string]int{"bulk": bulk - bulk/2, "fresh": bulk / 2} {
				if recs, err := n.List(coll, ""); err != nil || len(recs) != want {
					t.Errorf("%s: %d records in %s, want %d (%v)", n.self.Name, len(recs), coll, want, err)
				}
			}
		}
		if _, rb := n.st.Replication().RolledBack(); rb {
			t.Errorf("%s believes its store was rolled back", n.self.Name)
		}
		rep, err := n.st.Verify()
		mustDo(t, err)
		if !rep.OK() {
			t.Errorf("%s: verify: %v", n.self.Name, rep.Problems)
		}
	}
	if time.Duration(days)*day > store.DefaultTombstoneTTL && !lagging {
		// Sessions with b and c may both resync; the one that forgot the deleted records
		// reports last or first. (With lagging, a may meet c first, merge safely, and be
		// in touch again before it meets b.)
		eventually(t, "full resync reported", func() error {
			if res.resync = a.States().FullResync; res.resync == nil || res.resync.Forgotten == 0 {
				return fmt.Errorf("full resync in a's states: %+v", res.resync)
			}
			return nil
		})
	} else if res.resync = a.States().FullResync; res.resync != nil && !lagging {
		t.Errorf("a resynced fully after %d days: %+v", days, res.resync)
	}
	if res.resync != nil {
		// The event that announced it.
		for {
			select {
			case ev := <-events.C:
				if ev.Note == res.resync.String() {
					return res
				}
				continue
			case <-time.After(10 * time.Second):
				t.Fatal("no state event announced the full resync")
			}
		}
	}
	return res
}

// 90 days apart: a device back after 91 days resyncs fully instead of merging, and no
// record deleted meanwhile comes back (TESTPLAN row 7, beyond the horizon).
func TestNinetyDaysApart(t *testing.T) {
	res := runApart(t, 91, 0, false)
	if len(res.resurrected) > 0 {
		t.Fatalf("deleted records came back: %v", res.resurrected)
	}
	if res.collected == 0 {
		t.Fatal("b and c collected no tombstone after 91 days")
	}
	f := res.resync
	if f == nil {
		t.Fatal("a merged instead of resyncing fully")
	}
	if f.AwayDays != 91 || f.Forgotten == 0 {
		t.Fatalf("full resync %+v: want 91 days away and the deleted records forgotten", f)
	}
	t.Logf("%s with %s: collected %d tombstones on b and c; over %d sessions a received %d envelopes, sent %d, forgot %d records; %d bytes in, %d out, %d Merkle messages (%d round trips); resurrected 0",
		f, f.With, res.collected, f.Sessions, f.Received, f.Sent, f.Forgotten, f.BytesIn, f.BytesOut, f.MerkleMessages, (f.MerkleMessages+1)/2)
}

// 30 days apart, below the horizon: an ordinary merge; the deletes hold.
func TestThirtyDaysApart(t *testing.T) {
	res := runApart(t, 30, 0, false)
	if len(res.resurrected) > 0 {
		t.Fatalf("deleted records came back: %v", res.resurrected)
	}
	if res.collected != 0 {
		t.Fatalf("%d tombstones collected after 30 days", res.collected)
	}
	if res.resync != nil {
		t.Fatalf("a resynced fully after 30 days: %+v", res.resync)
	}
}

// TESTPLAN row 7 at size: b makes 10,000 changes (5,000 deletes, 5,000 new records) while
// a is away 91 days; a's full resync brings none of the deleted records back.
func TestNinetyDaysApartBulk(t *testing.T) {
	if testing.Short() {
		t.Skip("syncs tens of thousands of envelopes")
	}
	res := runApart(t, 91, 10000, false)
	if len(res.resurrected) > 0 {
		t.Fatalf("%d deleted records came back, first %v", len(res.resurrected), res.resurrected[0])
	}
	f := res.resync
	if f == nil {
		t.Fatal("a merged instead of resyncing fully")
	}
	if f.Forgotten < 5000 {
		t.Fatalf("a forgot %d records, want the 5,000 deleted while it was away", f.Forgotten)
	}
	t.Logf("%s with %s after 10,000 changes: collected %d tombstones on b and c; over %d sessions a received %d envelopes, sent %d, forgot %d records; %d bytes in, %d out, %d Merkle messages (%d round trips); resurrected 0",
		f, f.With, res.collected, f.Sessions, f.Received, f.Sent, f.Forgotten, f.BytesIn, f.BytesOut, f.MerkleMessages, (f.MerkleMessages+1)/2)
}

// Only b has collected when a comes back; c still holds the tombstones. Whatever a meets
// first, no deleted record comes back, and c's old tombstones (of records a forgot) do not
// make a believe its store was rolled back.
func TestNinetyDaysApartOneCollected(t *testing.T) {
	res := runApart(t, 91, 0, true)
	if len(res.resurrected) > 0 {
		t.Fatalf("deleted records came back: %v", res.resurrected)
	}
	if res.collected == 0 {
		t.Fatal("b collected nothing")
	}
}
