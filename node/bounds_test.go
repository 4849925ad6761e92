package node

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// Issue 15, findings 4 and 5, and test plan row 27: a hostile member over real loopback
// hosts. Figures (heap, honest latency) are logged, never asserted, except the heap budget.

// verifyClean fails when n's store does not verify.
func verifyClean(t *testing.T, n *Node) {
	t.Helper()
	rep, err := n.st.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("%s: verify found problems: %v", n.self.Name, rep.Problems)
	}
}

// Finding 4: counters of 2^64-1 sent by a member, by push and by sync, are refused by
// name; counters at the limit are taken without spending the victim's counter space; the
// victim keeps writing, an honest device keeps syncing with it, and every store verifies.
func TestHostileCountersOverHosts(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	m := newHostile(t, a, "m")
	victim, mdev := a.self.ID, m.self.ID

	// By push: the stream ends, and the refusal is counted.
	wrap := m.seal("notes", "wrap", `{"v":"forged"}`, version(mdev, resolve.VersionVector{victim: math.MaxUint64, mdev: 1}), 0)
	push, err := m.openPush(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	push.batch(0, 1, wrap)
	if !push.ended(10 * time.Second) {
		t.Error("push of a counter of 2^64-1: the stream was not reset")
	}
	push.close()

	// By sync, on the fast path after an honest session.
	if _, err := m.syncWith(ctxT(t, 30*time.Second), a.id); err != nil {
		t.Fatal(err)
	}
	// Version 4: the sequence order, which a version-5 device still speaks with an older
	// one (the id order from nothing has its own bounds: TestHostileOrderedStream).
	sess, err := m.openSync(ctxT(t, 10*time.Second), func(h *wire.Hello) { h.RootFP[0] ^= 1; h.LastSeq += 1; h.Version = 4 })
	if err != nil {
		t.Fatal(err)
	}
	from := sess.theirs.KnownSeq
	wrap2 := m.seal("notes", "wrap2", `{"v":"forged"}`, version(mdev, resolve.VersionVector{victim: math.MaxUint64 - 1, mdev: 2}), 0)
	sess.batch(from, from+1, wrap2)
	sess.end(1)
	if !sess.ended(10 * time.Second) {
		t.Error("sync of a counter of 2^64-2: the session did not end")
	}
	sess.close()
	if got := a.bounded.counters.Load(); got != 2 {
		t.Errorf("counted %d counter refusals, want 2", got)
	}
	for _, k := range []string{"wrap", "wrap2"} {
		if _, err := a.Get("notes", k); !isNotFound(err) {
			t.Errorf("forged record %s: %v, want not found", k, err)
		}
	}

	// At the limit: taken, and the victim's floor rises by MaxFloorStep at most.
	push, err = m.openPush(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	atLimit := m.seal("notes", "pinned", `{"v":"forged"}`, version(mdev, resolve.VersionVector{victim: store.MaxCounter, mdev: 3}), 0)
	push.batch(0, 1, atLimit)
	if _, b, err := push.readFrame(); err != nil {
		t.Fatalf("push at the limit: %v", err)
	} else if ack, err := wire.UnmarshalAck(b); err != nil || ack.Applied != 1 {
		t.Fatalf("push at the limit: ack %+v %v", ack, err)
	}
	push.close()

	// The victim keeps writing, and the honest device hears it.
	for i := range 20 {
		if err := a.Put("notes", fmt.Sprint("after", i), []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatalf("victim's write %d: %v", i, err)
		}
	}
	rec, err := a.Get("notes", "after19")
	if err != nil {
		t.Fatal(err)
	}
	// One step of the floor, perhaps two if the envelope came back in a later
	// transaction, plus the counters the victim had already seen of its own.
	if c := rec.Version.VV[victim]; c == 0 || c > 2*store.MaxFloorStep {
		t.Errorf("victim counts %d for a new record, want at most 2*MaxFloorStep", c)
	}
	if err := a.Put("notes", "pinned", []byte(`{}`)); !errors.Is(err, store.ErrCounterExhausted) {
		t.Errorf("write over the pinned record: %v, want ErrCounterExhausted", err)
	}
	eventually(t, "honest device hears the victim", func() error { return hasValue(b, "notes", "after19", `{"i":19}`) })
	for _, n := range []*Node{a, b} {
		verifyClean(t, n)
	}
}

// Finding 5, Merkle mode: an envelope the reconciliation did not ask for ends the session,
// counted, and is not applied.
func TestHostileUnaskedEnvelope(t *testing.T) {
	nodes := newMesh(t, 2)
	a := nodes[0]
	m := newHostile(t, a, "m")
	for i := range 5 {
		a.Put("notes", fmt.Sprint("k", i), []byte(`{}`))
	}
	var epoch [16]byte
	epoch[0] = 0xee
	sess, err := m.openSync(ctxT(t, 10*time.Second), func(h *wire.Hello) { h.Epoch = epoch; h.RootCount++ })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sess.reconcile(); err != nil {
		t.Fatal(err)
	}
	mdev := m.self.ID
	sess.batch(0, 0, m.seal("notes", "unasked", `{"v":"unasked"}`, version(mdev, resolve.VersionVector{mdev: 9}), 0))
	sess.end(1)
	if !sess.ended(10 * time.Second) {
		t.Error("an unasked envelope did not end the session")
	}
	sess.close()
	eventually(t, "the unasked envelope counted", func() error {
		if got := a.bounded.unasked.Load(); got != 1 {
			return fmt.Errorf("counted %d unasked envelopes, want 1", got)
		}
		return nil
	})
	if _, err := a.Get("notes", "unasked"); !isNotFound(err) {
		t.Errorf("unasked record: %v, want not found", err)
	}
}

// Finding 5, fast path: a batch beyond the sequence range the hello claimed, or holding
// more envelopes than its range has numbers, ends the session, counted.
func TestHostileBeyondClaim(t *testing.T) {
	nodes := newMesh(t, 2)
	a := nodes[0]
	m := newHostile(t, a, "m")
	if _, err := m.syncWith(ctxT(t, 30*time.Second), a.id); err != nil {
		t.Fatal(err)
	}
	mdev := m.self.ID
	env := func(i int) []byte {
		return m.seal("notes", fmt.Sprint("x", i), `{}`, version(mdev, resolve.VersionVector{mdev: uint64(100 + i)}), 0)
	}
	cases := []struct {
		name     string
		from, to func(known uint64) uint64
		envs     int
	}{
		{"range past the claim", func(k uint64) uint64 { return k }, func(k uint64) uint64 { return k + 5 }, 2},
		{"more envelopes than the range", func(k uint64) uint64 { return k }, func(k uint64) uint64 { return k + 2 }, 3},
	}
	for i, c := range cases {
		// Claims two envelopes past what the target holds of it.
		known := a.progress.get(m.id).Seq
		// Version 4: the sequence order from what the target holds, even from nothing.
		sess, err := m.openSync(ctxT(t, 10*time.Second), func(h *wire.Hello) { h.RootFP[0] ^= 1; h.LastSeq = known + 2; h.Version = 4 })
		if err != nil {
			t.Fatal(err)
		}
		var envs [][]byte
		for j := range c.envs {
			envs = append(envs, env(10*i+j))
		}
		k := sess.theirs.KnownSeq
		if k != known {
			t.Fatalf("the target knows sequence %d of m, the test %d", k, known)
		}
		sess.batch(c.from(k), c.to(k), envs...)
		sess.end(uint64(c.envs))
		if !sess.ended(10 * time.Second) {
			t.Errorf("%s: the session did not end", c.name)
		}
		sess.close()
		// The handler counts as it ends the session; the reset may reach us first.
		eventually(t, c.name+": counted", func() error {
			if got := a.bounded.claim.Load(); got != uint64(i+1) {
				return fmt.Errorf("counted %d, want %d", got, i+1)
			}
			return nil
		})
	}
}

// Finding 5, sessions per device: a member opens 100 sync sessions at once and holds
// them. The target answers two and resets the rest before reading anything; the honest
// device's sync latency is logged before, during and after.
func TestHostileSessionFlood(t *testing.T) {
	const flood = 100
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	m := newHostile(t, a, "m")
	before := honestRoundTrip(t, a, b, "before")
	runtime.GC()
	heap := watchHeap()

	var answered, refused atomic.Int64
	var held []*hostileSession
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, err := m.openSync(ctxT(t, 20*time.Second), nil)
			if err != nil {
				refused.Add(1)
				return
			}
			answered.Add(1)
			mu.Lock()
			held = append(held, sess) // holds the session open: it sends nothing more
			mu.Unlock()
		}()
	}
	wg.Wait()
	during := honestRoundTrip(t, a, b, "during")
	for _, s := range held {
		s.close()
	}
	after := honestRoundTrip(t, a, b, "after")
	peak := heap.Stop()
	t.Logf("%d concurrent sessions: %d answered, %d reset (the target counted %d)", flood, answered.Load(), refused.Load(), a.inbound.refused.Load())
	t.Logf("honest sync: %v before, %v during, %v after the flood", before.Round(time.Millisecond), during.Round(time.Millisecond), after.Round(time.Millisecond))
	t.Logf("peak heap in use: %s", mib(peak))
	if answered.Load() > maxInbound {
		t.Errorf("the target answered %d concurrent sessions of one device, want at most %d", answered.Load(), maxInbound)
	}
	if peak > heapBudget {
		t.Errorf("heap peaked at %s, over the %s budget", mib(peak), mib(heapBudget))
	}
}

// boundsHeapBudget is what the sessions of huge batches may add to the test process's heap
// over its level before the attack: with the bounds, two sessions of about 20 MiB each, their
// apply transactions and the attacker's own frames; without them, every frame sent.
const boundsHeapBudget = 128 << 20

// Finding 5, memory: a member claims a huge range on the fast path and sends batches of
// megabyte envelopes in several sessions at once. The target applies each session's
// envelopes every session.DefaultApplyBytes, runs two sessions at most, and its heap stays bounded.
func TestHostileHugeBatches(t *testing.T) {
	sessions, frames := 6, 16
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	m := newHostile(t, a, "m")
	if _, err := m.syncWith(ctxT(t, 30*time.Second), a.id); err != nil {
		t.Fatal(err)
	}
	var envs [][]byte
	for i := range 3 {
		envs = append(envs, m.bigRaw(fmt.Sprint("big", i), store.MaxValueSize-4096, uint64(1000+i)))
	}
	before := honestRoundTrip(t, a, b, "before")
	// Collect often, so that the heap in use follows what is live rather than how much
	// garbage the collector lets pile up.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	heap := watchHeap()

	var wg sync.WaitGroup
	var sentBytes atomic.Int64
	var ran atomic.Int64
	start := make(chan struct{})
	for range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, err := m.openSync(ctxT(t, 60*time.Second), func(h *wire.Hello) { h.RootFP[0] ^= 1; h.LastSeq = 1 << 40 })
			if err != nil {
				return
			}
			defer sess.close()
			ran.Add(1)
			<-start
			from := sess.theirs.KnownSeq
			for range frames {
				body := (&wire.Batch{From: from, To: from + 3, Envelopes: envs}).Marshal()
				if err := sess.write(wire.TypeBatch, body); err != nil {
					return
				}
				sentBytes.Add(int64(len(body)))
				from += 3
			}
			sess.end(uint64(3 * frames))
			sess.ended(30 * time.Second)
		}()
	}
	time.Sleep(500 * time.Millisecond) // let every session get its answer (or reset)
	close(start)
	wg.Wait()
	peak := heap.Stop()
	after := honestRoundTrip(t, a, b, "after")
	t.Logf("%d sessions of %d frames each: %d ran, %s sent", sessions, frames, ran.Load(), mib(uint64(sentBytes.Load())))
	t.Logf("heap in use: %s before, peak %s (+%s)", mib(base), mib(peak), mib(peak-min(peak, base)))
	t.Logf("honest sync: %v before, %v after", before.Round(time.Millisecond), after.Round(time.Millisecond))
	if peak > base+boundsHeapBudget {
		t.Errorf("heap rose by %s, over the %s budget", mib(peak-base), mib(boundsHeapBudget))
	}
	verifyClean(t, a)
}
