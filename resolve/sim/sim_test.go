package sim

import (
	"errors"
	"flag"
	"os"
	"strconv"
	"testing"

	"github.com/meshsync/meshsync/resolve"
)

var (
	seedFlag  = flag.Int64("seed", -1, "replay one simulator seed (also env MESHSYNC_SEED)")
	seedsFlag = flag.Int("seeds", 1000, "number of simulator seeds to run")
)

// TestConvergence runs the simulator over many seeds; a failure prints
// seed=N, replayed with -seed N or MESHSYNC_SEED=N.
func TestConvergence(t *testing.T) {
	first, n := uint64(0), *seedsFlag
	if testing.Short() {
		n = 100
	}
	seed := *seedFlag
	if env := os.Getenv("MESHSYNC_SEED"); env != "" && seed < 0 {
		v, err := strconv.ParseInt(env, 10, 64)
		if err != nil {
			t.Fatalf("MESHSYNC_SEED=%q: %v", env, err)
		}
		seed = v
	}
	if seed >= 0 {
		first, n = uint64(seed), 1
	}
	var total Report
	total.Conflicts = map[resolve.ConflictType]int{}
	failed := 0
	for s := first; s < first+uint64(n); s++ {
		rep, err := Run(Config{Seed: s})
		if err != nil {
			failed++
			t.Errorf("seed=%d: %v", s, err)
			if failed >= 5 {
				t.Fatal("stopping after 5 failing seeds")
			}
			continue
		}
		total.Puts += rep.Puts
		total.Deletes += rep.Deletes
		total.PolicyChanges += rep.PolicyChanges
		total.Decisions += rep.Decisions
		total.Delivered += rep.Delivered
		total.Duplicated += rep.Duplicated
		total.Dropped += rep.Dropped
		total.Partitions += rep.Partitions
		total.Clamped += rep.Clamped
		for k, v := range rep.Conflicts {
			total.Conflicts[k] += v
		}
	}
	t.Logf("%d seeds: puts=%d deletes=%d policies=%d decisions=%d delivered=%d duplicated=%d dropped=%d partitions=%d clamped=%d conflicts at end=%v",
		n, total.Puts, total.Deletes, total.PolicyChanges, total.Decisions, total.Delivered, total.Duplicated, total.Dropped, total.Partitions, total.Clamped, total.Conflicts)
	// The workload must actually produce conflicts of every type.
	if n >= 100 {
		for _, ct := range []resolve.ConflictType{resolve.UpdateUpdate, resolve.UpdateDelete, resolve.CreateCreate, resolve.TypeMismatch} {
			if total.Conflicts[ct] == 0 {
				t.Errorf("no %s conflict in %d seeds: the workload is too tame", ct, n)
			}
		}
	}
}

func TestRunErrors(t *testing.T) {
	if _, err := Run(Config{Seed: 1, Replicas: 1}); err == nil || errors.Is(err, ErrDiverged) {
		t.Errorf("one replica: %v", err)
	}
}
