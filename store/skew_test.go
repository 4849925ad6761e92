package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshsync/meshsync/resolve"
)

// skewReplica is one device of TestClockSkewReplicas: a store whose wall clock runs at a
// fixed offset from the others.
type skewReplica struct {
	name   string
	offset time.Duration
	clk    *fakeClock
	dir    string
	s      *Store
	own    [][]byte // the envelopes it wrote before it heard from anyone
}

// lastClock is the store's hybrid clock (the largest timestamp it issued or took in).
func (r *skewReplica) lastClock() resolve.Timestamp {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.s.clock.Last
}

// applyBounded applies envs to the replica and fails when remote timestamps pulled its
// hybrid clock beyond both where it was and its wall clock plus maxSkew.
func (r *skewReplica) applyBounded(t *testing.T, envs [][]byte, maxSkew time.Duration, when string) ApplyResult {
	t.Helper()
	before := r.lastClock()
	res := mustApply(t, r.s, envs)
	// Wall parts: a remote clock exactly at the bound is taken with its logical counter.
	limit := max(before.WallMs(), r.clk.Now().Add(maxSkew).UnixMilli())
	if last := r.lastClock(); last.WallMs() > limit {
		t.Errorf("%s: replica %s: hybrid clock pulled to %v, %v past its wall clock %v (bound %v, clock before %v)",
			when, r.name, last, last.Time().Sub(r.clk.Now()), r.clk.Now(), maxSkew, before)
	}
	return res
}

// skewRecords is a comparable rendering of every live record as the application reads it.
func skewRecords(t *testing.T, s *Store) string {
	t.Helper()
	recs, err := s.List("", "")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range recs {
		conflict := "-"
		if r.Conflict != nil {
			conflict = string(r.Conflict.Type)
		}
		fmt.Fprintf(&b, "%s/%s=%s by %s at %v (%d versions, conflict %s)\n",
			r.Collection, r.Key, r.Value, r.Version.Device, r.Version.Clock, r.Versions, conflict)
	}
	return b.String()
}

// skewConverged reports whether every replica holds the same envelopes, the same Merkle
// root and reads the same records.
func skewConverged(t *testing.T, rs []*skewReplica) bool {
	t.Helper()
	root0, err := rs[0].s.Replication().Root()
	if err != nil {
		t.Fatal(err)
	}
	set0, recs0 := envelopeSet(t, rs[0].s), skewRecords(t, rs[0].s)
	for _, r := range rs[1:] {
		root, err := r.s.Replication().Root()
		if err != nil {
			t.Fatal(err)
		}
		if root != root0 || envelopeSet(t, r.s) != set0 || skewRecords(t, r.s) != recs0 {
			return false
		}
	}
	return true
}

// skewGossip runs rounds in which every replica pulls everything from one random other,
// until all converge; it returns the rounds, the envelopes shipped and the pulls that
// reported a remote clock beyond the bound.
func skewGossip(t *testing.T, rng *rand.Rand, rs []*skewReplica, maxSkew time.Duration, phase string) (rounds, shipped, flagged int) {
	t.Helper()
	for !skewConverged(t, rs) {
		rounds++
		if rounds > 4*len(rs) {
			t.Fatalf("%s: replicas still differ after %d gossip rounds", phase, rounds-1)
		}
		for i, r := range rs {
			j := rng.IntN(len(rs) - 1)
			if j >= i {
				j++
			}
			envs := allEnvelopes(t, rs[j].s)
			shipped += len(envs)
			if res := r.applyBounded(t, envs, maxSkew, phase); res.Skew > 0 {
				flagged++
			}
		}
	}
	return rounds, shipped, flagged
}

// TestClockSkewReplicas is test plan row 6: eight replicas of one mesh whose wall clocks
// are offset by 0, ±5 minutes, ±1 day, ±1 year and +10 years write concurrently to the same
// records and exchange envelopes with Store.Apply. They converge to identical envelopes,
// roots and records; a remote clock more than MaxSkew ahead is flagged (ApplyResult.Skew,
// Store.ClockSkew) and one within the bound is not; no hybrid clock is ever pulled more
// than MaxSkew past its own wall clock; and no clock runs backwards across a reopen with the
// wall clock set back. MESHSYNC_SEED=N replays the gossip order.
func TestClockSkewReplicas(t *testing.T) {
	const maxSkew = 10 * time.Minute // the default bound, set explicitly
	const year = 365 * 24 * time.Hour
	seed := rand.Uint64()
	if s, err := strconv.ParseUint(os.Getenv("MESHSYNC_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (MESHSYNC_SEED=%d replays)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 6))
	base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	specs := []struct {
		name   string
		offset time.Duration
	}{
		{"0", 0}, {"+5m", 5 * time.Minute}, {"-5m", -5 * time.Minute}, {"+1d", 24 * time.Hour},
		{"-1d", -24 * time.Hour}, {"+1y", year}, {"-1y", -year}, {"+10y", 10 * year},
	}
	rs := make([]*skewReplica, len(specs))
	var meshKey []byte
	for i, sp := range specs {
		r := &skewReplica{name: sp.name, offset: sp.offset, clk: &fakeClock{t: base.Add(sp.offset)}, dir: filepath.Join(t.TempDir(), "r")}
		s, err := Init(r.dir, testPass, &Options{KDF: testKDF, DeviceName: sp.name, Now: r.clk.Now, MaxSkew: maxSkew, MeshKey: meshKey})
		if err != nil {
			t.Fatal(err)
		}
		r.s = s
		meshKey = s.keys.mesh
		rs[i] = r
	}
	t.Cleanup(func() {
		for _, r := range rs {
			mustVerifyClose(t, r.s)
		}
	})

	// Phase 1: every replica writes, with its clock frozen, the same five shared records
	// (created concurrently everywhere) and one record of its own, before hearing from
	// anyone: every timestamp it issues is its wall time exactly.
	for _, r := range rs {
		for k := range 5 {
			if err := r.s.Put("shared", fmt.Sprint("k", k), []byte(fmt.Sprintf(`{"by":%q,"k":%d}`, r.name, k))); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.s.Put("own", r.name, []byte(fmt.Sprintf(`{"by":%q}`, r.name))); err != nil {
			t.Fatal(err)
		}
		r.own = allEnvelopes(t, r.s)
		if w := r.lastClock().Time(); !w.Equal(r.clk.Now()) {
			t.Fatalf("replica %s wrote at %v, its wall clock reads %v", r.name, w, r.clk.Now())
		}
	}

	// Phase 2: every replica takes in every other replica's writes, one writer per Apply.
	// The pair is flagged exactly when the writer's clock is more than maxSkew ahead of the
	// receiver's (10 minutes exactly, -5m receiving +5m, is within the bound), and then by
	// how far it is ahead. No receiver's clock goes past its wall clock plus maxSkew, and
	// within the bound it does follow the writer.
	flaggedPairs, pairs := 0, 0
	for _, r := range rs {
		var worst time.Duration // largest flagged skew for this receiver
		follow := time.Duration(0)
		for _, w := range rs {
			if w == r {
				continue
			}
			pairs++
			res := r.applyBounded(t, w.own, maxSkew, "phase 2")
			ahead := w.offset - r.offset
			var want time.Duration
			if ahead > maxSkew {
				want = ahead
				worst = max(worst, ahead)
			}
			if ahead > 0 {
				follow = max(follow, min(ahead, maxSkew))
			}
			if res.Skew != want {
				t.Errorf("receiver %s, writer %s (%v ahead): ApplyResult.Skew = %v, want %v", r.name, w.name, ahead, res.Skew, want)
			}
			if res.Skew > 0 {
				flaggedPairs++
			}
		}
		if got := r.s.Replication().ClockSkew(); got != worst {
			t.Errorf("receiver %s: Store.ClockSkew = %v, want %v", r.name, got, worst)
		}
		if got, want := r.lastClock().Time(), r.clk.Now().Add(follow); !got.Equal(want) {
			t.Errorf("receiver %s: hybrid clock at %v after the exchange, want %v (its wall clock plus %v)", r.name, got, want, follow)
		}
	}
	wantFlagged := 0
	for _, r := range rs {
		for _, w := range rs {
			if w.offset-r.offset > maxSkew {
				wantFlagged++
			}
		}
	}
	if flaggedPairs != wantFlagged {
		t.Errorf("flagged %d of %d (receiver, writer) pairs, want %d", flaggedPairs, pairs, wantFlagged)
	}
	if !skewConverged(t, rs) {
		t.Fatal("replicas differ after every one took in every other's writes")
	}
	// The shared records were created concurrently on eight devices: every replica reads
	// the same create/create conflict and the same winner, the device with the largest
	// clock (+10 years: the documented caveat of a far-future clock under the timestamp
	// strategy, which the skew report is there to surface).
	for k := range 5 {
		rec, err := rs[0].s.Get("shared", fmt.Sprint("k", k))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Conflict == nil || rec.Versions != len(rs) {
			t.Errorf("shared/k%d: %d versions, conflict %v: want %d concurrent versions reported as a conflict", k, rec.Versions, rec.Conflict, len(rs))
		}
		if want := fmt.Sprintf(`{"by":"+10y","k":%d}`, k); string(rec.Value) != want {
			t.Errorf("shared/k%d = %s, want %s", k, rec.Value, want)
		}
	}
	t.Logf("phase 2: %d of %d (receiver, writer) pairs flagged (want %d); converged after one all-to-all exchange", flaggedPairs, pairs, wantFlagged)

	// Phase 3: time moves on by a minute everywhere and every replica writes again (its
	// hybrid clock now partly pulled ahead by others); random gossip until convergence.
	// A clock pulled ahead travels on to the next replica, which clamps it again: no
	// replica ever goes past its own wall clock plus maxSkew.
	for _, r := range rs {
		r.clk.Add(time.Minute)
		if err := r.s.Put("shared", "k0", []byte(fmt.Sprintf(`{"by":%q,"round":2}`, r.name))); err != nil {
			t.Fatal(err)
		}
		if err := r.s.Put("own", r.name, []byte(fmt.Sprintf(`{"by":%q,"round":2}`, r.name))); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	rounds, shipped, flagged := skewGossip(t, rng, rs, maxSkew, "phase 3")
	t.Logf("phase 3: converged in %d gossip rounds (%d envelopes shipped, %v), %d of %d pulls flagged",
		rounds, shipped, time.Since(start).Round(time.Millisecond), flagged, rounds*len(rs))

	// Phase 4: every replica closes; its wall clock is set back a day (the +10-year one is
	// corrected to real time), and it reopens and writes. Its clock must not run
	// backwards: the new write is later than every timestamp it issued or took in.
	for _, r := range rs {
		before := r.lastClock()
		mustVerifyClose(t, r.s)
		if r.offset == 10*year {
			r.clk.t = base.Add(2 * time.Minute)
		} else {
			r.clk.Add(-24 * time.Hour)
		}
		s, err := Open(r.dir, testPass, &Options{Now: r.clk.Now, MaxSkew: maxSkew})
		if err != nil {
			t.Fatal(err)
		}
		r.s = s
		if got := r.lastClock(); got != before {
			t.Errorf("replica %s: hybrid clock %v after reopen, %v before", r.name, got, before)
		}
		if err := r.s.Put("own", r.name, []byte(fmt.Sprintf(`{"by":%q,"round":3}`, r.name))); err != nil {
			t.Fatal(err)
		}
		rec, err := r.s.Get("own", r.name)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Version.Clock <= before {
			t.Errorf("replica %s: clock ran backwards across reopen: wrote at %v, had reached %v", r.name, rec.Version.Clock, before)
		}
	}
	rounds, shipped, flagged = skewGossip(t, rng, rs, maxSkew, "phase 4")
	t.Logf("phase 4 (reopened, wall clocks set back): converged in %d gossip rounds (%d envelopes shipped), %d of %d pulls flagged",
		rounds, shipped, flagged, rounds*len(rs))
	for _, r := range rs {
		t.Logf("replica %-5s offset %-12v Store.ClockSkew %v", r.name, r.offset, r.s.Replication().ClockSkew())
	}
}
