package node

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/meshsync/meshsync/store"
)

// Three devices paired with real invites converge on each other's writes, and every
// device learns the full device list.
func TestThreeDevicesConverge(t *testing.T) {
	base := runtime.NumGoroutine()
	nodes := newMesh(t, 3)
	for i, n := range nodes {
		if err := n.Put("notes", fmt.Sprintf("from-%d", i), []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		for i := range nodes {
			eventually(t, "converge", func() error { return hasValue(n, "notes", fmt.Sprintf("from-%d", i), fmt.Sprintf(`{"i":%d}`, i)) })
		}
		eventually(t, "device list", func() error {
			if d := n.Devices(); len(d) != 3 {
				return fmt.Errorf("%d devices", len(d))
			}
			return nil
		})
	}
	for _, n := range nodes {
		waitSynced(t, n)
		// A session the other device started may still run: wait for it to end.
		eventually(t, "up to date", func() error {
			st := n.States()
			if len(st.Devices) != 2 {
				return fmt.Errorf("states list %d devices, want 2", len(st.Devices))
			}
			for _, d := range st.Devices {
				if d.Status != StatusUpToDate || d.LastSync.IsZero() || !d.Connected {
					return fmt.Errorf("%s sees %s as %+v", n.self.Name, d.Name, d)
				}
			}
			return nil
		})
	}
	// Push smoke: a write on one device reaches the others without a sync call.
	start := time.Now()
	nodes[0].Put("notes", "pushed", []byte(`{"p":true}`))
	for _, n := range nodes[1:] {
		eventually(t, "push", func() error { return hasValue(n, "notes", "pushed", `{"p":true}`) })
	}
	t.Logf("push reached both devices in %v", time.Since(start))
	for _, n := range nodes {
		n.Close()
	}
	checkGoroutines(t, base)
}

// A device stopped and reopened keeps its sync states and its progress, and catches up
// through the fast path.
func TestRestartKeepsStateAndProgress(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	a.Put("notes", "1", []byte(`1`))
	eventually(t, "b has 1", func() error { return hasValue(b, "notes", "1", `1`) })
	waitSynced(t, b)
	cfg := b.cfg
	before := b.progress.get(a.id)
	// The envelopes b got from a are not sent back to a, before or after a restart.
	lastSeq, _ := b.st.Replication().LastSeq()
	echoes := func(n *Node) (k int) {
		f := n.progress.echoFilter(a.id)
		for seq := uint64(1); seq <= lastSeq; seq++ {
			if _, ok := f(seq); ok {
				k++
			}
		}
		return k
	}
	echoBefore := echoes(b)
	if echoBefore == 0 {
		t.Fatal("b recorded no echo ranges for what a sent")
	}
	b.Close()
	// Partition: a writes while b is down.
	for i := range 50 {
		a.Put("notes", fmt.Sprintf("k%d", i), []byte(`2`))
	}
	b2, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if got := b2.progress.get(a.id); got.Seq < before.Seq || got.Seq == 0 {
		t.Fatalf("progress after restart %+v, before %+v", got, before)
	}
	if got := echoes(b2); got != echoBefore {
		t.Fatalf("echo ranges after restart cover %d envelopes, before %d", got, echoBefore)
	}
	st := b2.States()
	if len(st.Devices) != 1 || st.Devices[0].LastSync.IsZero() || st.Devices[0].Addr == "" {
		t.Fatalf("state not restored: %+v", st)
	}
	mustStart(t, b2)
	for i := range 50 {
		eventually(t, "heal", func() error { return hasValue(b2, "notes", fmt.Sprintf("k%d", i), `2`) })
	}
	if got := b2.progress.get(a.id); got.Seq <= before.Seq {
		t.Fatalf("progress did not move: %+v", got)
	}
}

// Concurrent edits on two sides of a partition become the same conflict, with the same
// resolved value, on every device.
func TestConflictSameEverywhere(t *testing.T) {
	nodes := newMesh(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.Put("doc", "k", []byte(`{"v":"base"}`))
	for _, n := range nodes {
		eventually(t, "base", func() error { return hasValue(n, "doc", "k", `{"v":"base"}`) })
	}
	cfg := c.cfg
	c.Close()
	a.Put("doc", "k", []byte(`{"v":"a"}`))
	c2, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Put("doc", "k", []byte(`{"v":"c"}`)); err != nil {
		t.Fatal(err)
	}
	mustStart(t, c2)
	var want string
	for _, n := range []*Node{a, b, c2} {
		eventually(t, "conflict visible", func() error {
			rec, err := n.Get("doc", "k")
			if err != nil {
				return err
			}
			if rec.Versions != 2 || rec.Conflict == nil {
				return fmt.Errorf("versions %d conflict %v", rec.Versions, rec.Conflict)
			}
			if want == "" {
				want = string(rec.Value)
			}
			if string(rec.Value) != want {
				return fmt.Errorf("value %s, another device shows %s", rec.Value, want)
			}
			return nil
		})
	}
	eventually(t, "conflict state", func() error {
		for _, n := range []*Node{a, b, c2} {
			if st := n.States(); st.Conflicts > 0 {
				return nil
			}
		}
		return fmt.Errorf("no device reports the conflict in its states")
	})
}

// A removed device is refused: its connections are gated and its sync streams get nothing.
func TestRemovedDeviceRefused(t *testing.T) {
	nodes := newMesh(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		waitSynced(t, n)
	}
	if err := a.RemoveDevice(c.DeviceID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b learns of the removal", func() error {
		if _, ok := b.isMember(c.id); ok {
			return fmt.Errorf("c still a member on b")
		}
		if b.Host().Network().Connectedness(c.id) == 1 {
			return fmt.Errorf("b still connected to c")
		}
		return nil
	})
	if err := c.Put("notes", "from-c", []byte(`"c"`)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b} {
		ctx := ctxT(t, 10*time.Second)
		if _, err := c.syncWith(ctx, n.id); err == nil {
			t.Fatalf("removed device synced with %s", n.self.Name)
		}
	}
	a.Put("notes", "after", []byte(`1`))
	eventually(t, "b still syncs with a", func() error { return hasValue(b, "notes", "after", `1`) })
	waitSynced(t, a)
	for _, n := range []*Node{a, b} {
		if _, err := n.Get("notes", "from-c"); !isNotFound(err) {
			t.Errorf("%s accepted a write of the removed device: %v", n.self.Name, err)
		}
	}
	if _, err := c.Get("notes", "after"); !isNotFound(err) {
		t.Errorf("removed device received a new write: %v", err)
	}
	if d := a.Devices(); !slices.ContainsFunc(d, func(d Device) bool { return d.ID == c.DeviceID() && d.Removed }) {
		t.Errorf("device list does not show c removed: %+v", d)
	}
}

// fill writes n records of size bytes in transactions of 5,000.
func fill(t testing.TB, st *store.Store, n, size int) {
	t.Helper()
	val := make([]byte, size)
	for i := range val {
		val[i] = 'a' + byte(i%26)
	}
	doc := []byte(fmt.Sprintf(`{"d":%q}`, val[:max(0, size-8)]))
	for i := 0; i < n; i += 5000 {
		err := st.Update(func(tx *store.Tx) error {
			for j := i; j < min(i+5000, n); j++ {
				if err := tx.Put("bulk", fmt.Sprintf("r%07d", j), doc); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A fresh device receives 10,000 records; an interrupted transfer resumes without
// sending again what was applied.
func TestBulkSyncResumes(t *testing.T) {
	const applyBatch = 1000
	a, b := pairFresh(t, 10000, applyBatch)
	sub := b.Subscribe(20000)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		for i := 0; i < 3000; i++ {
			if _, ok := <-sub.C; !ok {
				return
			}
		}
	}()
	if _, err := b.syncWith(ctx, a.id); err == nil {
		t.Log("first session finished before the cancel; resume not exercised")
	}
	sub.Close()
	got, _ := b.List("bulk", "")
	applied := len(got)
	res, err := b.syncWith(ctxT(t, 120*time.Second), a.id)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := b.List("bulk", "")
	if len(all) != 10000 {
		t.Fatalf("b holds %d records, want 10000", len(all))
	}
	t.Logf("first session applied %d records, second received %d (%s)", applied, res.Received, res.Mode)
	if applied > 0 && applied < 10000 && res.Received > 10000-applied+applyBatch {
		t.Fatalf("resume re-sent too much: %d received after %d applied", res.Received, applied)
	}
	// Nothing left: a third session moves nothing but b's own device record (its
	// addresses), and nothing is echoed back to a.
	res, err = b.syncWith(ctxT(t, 60*time.Second), a.id)
	if err != nil || res.Received != 0 || res.Sent > 1 {
		t.Fatalf("third session: %+v %v", res, err)
	}
}
