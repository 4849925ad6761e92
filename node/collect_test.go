package node

import (
	"context"
	"testing"
	"time"
)

// TestRestartDoesNotCollectAgain: the tombstone collection reads the whole store, so it
// runs once per CollectEvery across restarts, not at every start of the network (which
// made every reconnect cost O(records)).
func TestRestartDoesNotCollectAgain(t *testing.T) {
	a := newMesh(t, 1)[0]
	collected := func() (time.Time, bool) {
		var at time.Time
		ok, err := a.st.Local().Get(localCollected, &at)
		if err != nil {
			t.Fatal(err)
		}
		return at, ok
	}
	eventually(t, "the first start collects", func() error {
		if _, ok := collected(); !ok {
			return context.DeadlineExceeded
		}
		return nil
	})
	first, _ := collected()
	for range 3 {
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
		mustStart(t, a)
	}
	if at, _ := collected(); !at.Equal(first) {
		t.Errorf("a restart collected again (at %v, first at %v)", at, first)
	}
	if due := a.collectDue(); due < a.cfg.CollectEvery/2 {
		t.Errorf("next collection due in %v after a restart, want about %v", due, a.cfg.CollectEvery)
	}
}
