package store

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/meshsync/meshsync/resolve"
)

// forgeNote seals a JSON record under s's keys with the version vector vv, written by dev.
func forgeNote(t testing.TB, s *Store, key string, dev resolve.DeviceID, vv resolve.VersionVector) []byte {
	t.Helper()
	raw, err := s.Replication().SealForTest(Forgery{
		Collection: "notes", Key: key, Value: []byte(`{"v":"forged"}`),
		Version: resolve.Version{Device: dev, Clock: resolve.Timestamp(1 << 40), VV: vv},
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// ownCounter is s's own counter in the version of collection notes, key.
func ownCounter(t testing.TB, s *Store, key string) uint64 {
	t.Helper()
	rec, err := s.Get("notes", key)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Version.VV[s.Device().ID]
}

// Issue 15, finding 4 (test plan row 27): a member sends counters no device can reach. The
// victim refuses those above MaxCounter by name, its floor moves by at most MaxFloorStep
// per transaction, its own counter never wraps, and it keeps writing; every store verifies
// clean at cleanup.
func TestHostileCountersNeverWrap(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	m := peer(t, a, "m", nil) // the hostile member
	self, mdev := a.Device().ID, m.Device().ID
	if err := a.Put("notes", "mine", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}

	// Counters above MaxCounter are refused, whoever they count, with ErrCounterRange.
	refused := []struct {
		name string
		vv   resolve.VersionVector
	}{
		{"victim's counter at 2^64-1 (the wrap of finding 4)", resolve.VersionVector{self: math.MaxUint64, mdev: 1}},
		{"victim's counter just past the limit", resolve.VersionVector{self: MaxCounter + 1, mdev: 1}},
		{"writer's own counter at 2^64-1", resolve.VersionVector{mdev: math.MaxUint64}},
		{"a third device at 2^63", resolve.VersionVector{"0123456789abcdef": 1 << 63, mdev: 1}},
	}
	for i, c := range refused {
		res, err := a.Replication().Apply([][]byte{forgeNote(t, m, fmt.Sprint("refused", i), mdev, c.vv)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rejected) != 1 || !errors.Is(res.Rejected[0].Err, ErrCounterRange) {
			t.Errorf("%s: got %+v, want one rejection for ErrCounterRange", c.name, res.Rejected)
		}
	}
	if err := a.Put("notes", "after-refused", []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if c := ownCounter(t, a, "after-refused"); c != 1 {
		t.Errorf("after refused envelopes a counts %d for a new record, want 1", c)
	}

	// At the limit: accepted, but the floor moves by MaxFloorStep per transaction at most.
	// Two transactions; the second carries a batch of 50 such envelopes.
	at := func(key string) []byte {
		return forgeNote(t, m, key, mdev, resolve.VersionVector{self: MaxCounter, mdev: 1})
	}
	mustApply(t, a, [][]byte{at("pinned")})
	var batch [][]byte
	for i := range 50 {
		batch = append(batch, at(fmt.Sprint("pinned", i)))
	}
	mustApply(t, a, batch)
	if err := a.Put("notes", "fresh", []byte(`{"v":3}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := ownCounter(t, a, "fresh"), 2*MaxFloorStep+1; got != want {
		t.Errorf("after two transactions at the limit a counts %d for a new record, want %d", got, want)
	}
	// The record whose held version counts a at the limit cannot take a write of a's: it
	// fails by name instead of wrapping. Every other record still can.
	if err := a.Put("notes", "pinned", []byte(`{"v":4}`)); !errors.Is(err, ErrCounterExhausted) {
		t.Errorf("write over a counter at the limit: %v, want ErrCounterExhausted", err)
	}
	for i := range 100 {
		if err := a.Put("notes", "mine", []byte(fmt.Sprintf(`{"v":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	if c := ownCounter(t, a, "mine"); c <= 2*MaxFloorStep || c > 2*MaxFloorStep+101 {
		t.Errorf("a counts %d for its own record", c)
	}

	// The floor persists, and a store with no hostile envelopes still syncs both ways.
	syncBoth(t, a, m)
}

// A store put back from an old copy still takes its floor from what the mesh shows: the
// bound leaves ordinary rollbacks alone.
func TestFloorStepLeavesRollbackAlone(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	self := a.Device().ID
	// b shows a counter of a's that a never reached (it wrote 1000 times on a copy since).
	mustApply(t, a, [][]byte{forgeNote(t, b, "r", self, resolve.VersionVector{self: 1000})})
	if err := a.Put("notes", "new", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if c := ownCounter(t, a, "new"); c != 1001 {
		t.Errorf("a counts %d after seeing 1000, want 1001", c)
	}
}
