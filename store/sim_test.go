package store

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/meshsync/meshsync/resolve"
)

var simSeeds = flag.Int("store-sim-seeds", 30, "seeds of TestStoreConvergence (30 per PR beside the 1,000 of the pure simulator in resolve/sim; 1,000+ nightly)")

// simReplica is one device of the simulation: a real bbolt store in its own directory.
type simReplica struct {
	dir   string
	s     *Store
	clock *fakeClock
	acked []simWrite
}

// simWrite is a write the store acknowledged: it must survive, or be superseded by a
// version that saw it.
type simWrite struct {
	collection, key string
	vv              resolve.VersionVector
}

// simMsg is a batch of envelopes on its way from one replica to another.
type simMsg struct {
	from, to int
	envs     [][]byte
}

// TestStoreConvergence is test-plan row 4 over real stores: 3-7 replicas (bbolt files,
// clocks that drift apart) write, delete and conflict; batches of envelopes travel with
// random delay, reordering, duplication and loss; links partition and heal; replicas crash
// and reopen their files. After healing, every replica holds the same Merkle root and
// reads the same records, and every acknowledged write is present or superseded by a
// version that saw it. MESHSYNC_SEED=N replays one seed; -store-sim-seeds N runs more.
func TestStoreConvergence(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	seeds := *simSeeds
	first := uint64(1)
	if v := os.Getenv("MESHSYNC_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		first, seeds = n, 1
	}
	var msgs, ops, crashes, maxRounds int
	for seed := first; seed < first+uint64(seeds); seed++ {
		m, o, c, r := simulate(t, seed, false)
		if t.Failed() {
			t.Fatalf("seed %d failed: replay with MESHSYNC_SEED=%d go test -run TestStoreConvergence ./store/", seed, seed)
		}
		msgs, ops, crashes, maxRounds = msgs+m, ops+o, crashes+c, max(maxRounds, r)
	}
	t.Logf("%d seeds: %d operations, %d messages, %d crashes; at most %d anti-entropy rounds to converge after healing", seeds, ops, msgs, crashes, maxRounds)
}

// TestStoreConvergenceScoped is TestStoreConvergence with mixed scopes: each replica holds
// every collection or a part of them (notes, todo, photos), and batches carry everything
// the sender holds. After healing, the replicas that hold a collection read the same
// records of it, none holds a record outside its scope, and the union of what they read
// is what one store that took every batch reads.
func TestStoreConvergenceScoped(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	seeds := max(*simSeeds/3, 1)
	for seed := uint64(1000); seed < 1000+uint64(seeds); seed++ {
		simulate(t, seed, true)
		if t.Failed() {
			t.Fatalf("seed %d failed", seed)
		}
	}
}

func simulate(t *testing.T, seed uint64, scoped bool) (msgs, ops, crashes, rounds int) {
	rng := rand.New(rand.NewPCG(seed, 0x51a1))
	k := 3 + rng.IntN(5)
	base := t.TempDir()
	reps := make([]*simReplica, k)
	var mesh []byte
	for i := range reps {
		c := newFakeClock()
		c.Add(time.Duration(rng.IntN(600)-300) * time.Second) // clocks up to 5 min apart
		o := &Options{KDF: testKDF, DeviceName: fmt.Sprint("r", i), Now: c.Now, NoSync: true, MeshKey: mesh}
		s, err := Init(filepath.Join(base, fmt.Sprint(i)), testPass, o)
		if err != nil {
			t.Fatal(err)
		}
		if mesh == nil {
			mesh = s.keys.mesh
		}
		reps[i] = &simReplica{dir: s.Dir(), s: s, clock: c}
	}
	colls := []string{"notes", "todo"}
	scopes := make([][]string, k)
	if scoped {
		colls = append(colls, "photos")
		choices := [][]string{nil, {"notes"}, {"todo"}, {"notes", "photos"}, {"photos", "todo"}}
		for i, r := range reps {
			scopes[i] = choices[rng.IntN(len(choices))]
			sc, _ := NewScope(scopes[i]...)
			if _, err := r.s.Replication().SetScope(sc, ScopeOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	held := func(i int) []string {
		if scopes[i] == nil {
			return colls
		}
		return scopes[i]
	}
	defer func() {
		for _, r := range reps {
			r.s.Close()
		}
	}()
	cut := map[[2]int]bool{}
	var queue []simMsg
	keys := []string{"a", "b", "c", "d", "e", "f"}
	steps := 60 + rng.IntN(60)
	for range steps {
		r := reps[rng.IntN(k)]
		r.clock.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
		switch x := rng.IntN(100); {
		case x < 35: // a local write or delete
			hc := held(slices.Index(reps, r))
			c, key := hc[rng.IntN(len(hc))], keys[rng.IntN(len(keys))]
			var err error
			if rng.IntN(4) == 0 {
				err = r.s.Delete(c, key)
			} else {
				err = r.s.Put(c, key, []byte(fmt.Sprintf(`{"seed":%d,"op":%d}`, seed, ops)))
			}
			if err != nil && !isNotFoundErr(err) {
				t.Fatalf("seed %d: write: %v", seed, err)
			}
			if err == nil {
				rec := simVersion(t, r.s, c, key)
				r.acked = append(r.acked, simWrite{c, key, rec})
			}
			ops++
		case x < 70: // send a batch: everything since a random point (duplicates included)
			to := rng.IntN(k)
			from := slices.Index(reps, r)
			if to == from || cut[[2]int{from, to}] {
				continue
			}
			last, _ := r.s.Replication().LastSeq()
			after := uint64(0)
			if last > 0 {
				after = rng.Uint64N(last + 1)
			}
			var envs [][]byte
			r.s.Replication().Since(after, 0, func(_ uint64, b []byte) error { envs = append(envs, bytes.Clone(b)); return nil })
			if len(envs) > 0 && rng.IntN(10) != 0 { // 10 % lost
				queue = append(queue, simMsg{from, to, envs})
				if rng.IntN(10) == 0 { // 10 % duplicated
					queue = append(queue, simMsg{from, to, envs})
				}
			}
		case x < 90: // deliver one queued batch, in any order
			if len(queue) == 0 {
				continue
			}
			j := rng.IntN(len(queue))
			m := queue[j]
			queue = slices.Delete(queue, j, j+1)
			simDeliver(t, seed, reps[m.to].s, m.envs)
			msgs++
		case x < 95: // partition or heal a link
			a, b := rng.IntN(k), rng.IntN(k)
			cut[[2]int{a, b}] = !cut[[2]int{a, b}]
		default: // crash: close and reopen the file
			r.s.Close()
			s, err := Open(r.dir, testPass, &Options{Now: r.clock.Now, NoSync: true})
			if err != nil {
				t.Fatalf("seed %d: reopen: %v", seed, err)
			}
			r.s = s
			crashes++
		}
	}
	// Heal: anti-entropy rounds (everything both ways between every pair) until no
	// replica changes.
	for rounds = 1; rounds <= 5; rounds++ {
		changed := false
		for i := range reps {
			for j := range reps {
				if i == j {
					continue
				}
				var envs [][]byte
				reps[i].s.Replication().Since(0, 0, func(_ uint64, b []byte) error { envs = append(envs, bytes.Clone(b)); return nil })
				if simDeliver(t, seed, reps[j].s, envs) > 0 {
					changed = true
				}
				msgs++
			}
		}
		if !changed {
			break
		}
	}
	if scoped {
		simCheckScoped(t, seed, reps, held, colls)
		return msgs, ops, crashes, rounds
	}
	root0, _ := reps[0].s.Replication().Root()
	list0, _ := reps[0].s.List("", "")
	for i, r := range reps {
		root, _ := r.s.Replication().Root()
		if root != root0 {
			t.Errorf("seed %d: replica %d root %d/%x, replica 0 %d/%x", seed, i, root.Count, root.FP[:4], root0.Count, root0.FP[:4])
		}
		list, err := r.s.List("", "")
		if err != nil {
			t.Fatal(err)
		}
		if simListing(list) != simListing(list0) {
			t.Errorf("seed %d: replica %d reads other records than replica 0", seed, i)
		}
		rep, err := r.s.Verify()
		if err != nil || !rep.OK() {
			t.Errorf("seed %d: replica %d fails verify: %v %v", seed, i, err, rep)
		}
	}
	// Every acknowledged write is held, or a held version saw it.
	for i, r := range reps {
		for _, w := range r.acked {
			if !simCovered(t, reps[0].s, w) {
				t.Errorf("seed %d: replica %d's write to %s/%s (%v) is lost", seed, i, w.collection, w.key, w.vv)
			}
		}
	}
	return msgs, ops, crashes, rounds
}

func isNotFoundErr(err error) bool { return errors.Is(err, ErrNotFound) }

// simListing is what a user reads: each record's names, kind, value and winning version.
func simListing(recs []Record) string {
	var b bytes.Buffer
	for _, r := range recs {
		fmt.Fprintf(&b, "%s/%s %d %s %v %d %v\n", r.Collection, r.Key, r.Kind, r.Value, r.Version, r.Versions, r.Conflict != nil)
	}
	return b.String()
}

// simDeliver applies a batch and returns how many envelopes changed the store.
func simDeliver(t *testing.T, seed uint64, s *Store, envs [][]byte) int {
	res, err := s.Replication().Apply(envs)
	if err != nil {
		t.Fatalf("seed %d: apply: %v", seed, err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("seed %d: %d envelopes rejected: %v", seed, len(res.Rejected), res.Rejected[0].Err)
	}
	return res.Added
}

// simVersion is the version vector of the record's newest local version.
func simVersion(t *testing.T, s *Store, collection, key string) resolve.VersionVector {
	var vv resolve.VersionVector
	err := s.View(func(tx *Tx) error {
		set, err := tx.antichain(s.keys.recordID(collection, key))
		if err != nil {
			return err
		}
		for _, h := range set {
			if h.env.Version.Device == s.device.ID && (vv == nil || h.env.Version.VV.Compare(vv) == resolve.After) {
				vv = h.env.Version.VV
			}
		}
		return nil
	})
	if err != nil || vv == nil {
		t.Fatalf("version of %s/%s: %v", collection, key, err)
	}
	return vv
}

// simCovered reports whether s holds w's version or one that dominates it.
func simCovered(t *testing.T, s *Store, w simWrite) bool {
	ok := false
	s.View(func(tx *Tx) error {
		set, err := tx.antichain(s.keys.recordID(w.collection, w.key))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range set {
			if c := w.vv.Compare(h.env.Version.VV); c == resolve.Equal || c == resolve.Before {
				ok = true
			}
		}
		return nil
	})
	return ok
}

// simCheckScoped checks a healed simulation with mixed scopes against a reference store
// that took every replica's envelopes.
func simCheckScoped(t *testing.T, seed uint64, reps []*simReplica, held func(int) []string, colls []string) {
	ref := mustInit(t, &Options{KDF: testKDF, DeviceName: "ref", MeshKey: reps[0].s.keys.mesh, NoSync: true})
	defer ref.Close()
	for _, r := range reps {
		var envs [][]byte
		r.s.Replication().Since(0, 0, func(_ uint64, b []byte) error { envs = append(envs, bytes.Clone(b)); return nil })
		simDeliver(t, seed, ref, envs)
	}
	for _, c := range colls {
		want, err := ref.List(c, "")
		if err != nil {
			t.Fatal(err)
		}
		holders := 0
		for i, r := range reps {
			if !slices.Contains(held(i), c) {
				if _, err := r.s.List(c, ""); !errors.Is(err, ErrOutOfScope) {
					t.Errorf("seed %d: replica %d lists %s outside its scope: %v", seed, i, c, err)
				}
				continue
			}
			holders++
			got, err := r.s.List(c, "")
			if err != nil {
				t.Fatal(err)
			}
			if simListing(got) != simListing(want) {
				t.Errorf("seed %d: replica %d (scope %v) reads other %s than the union:\n%s\nwant\n%s", seed, i, held(i), c, simListing(got), simListing(want))
			}
		}
		if holders == 0 && len(want) > 0 {
			t.Errorf("seed %d: %d records of %s held by no replica", seed, len(want), c)
		}
	}
	for i, r := range reps {
		roots, _ := r.s.Replication().Roots()
		var app int
		for _, rt := range roots {
			if !rt.Tag.Reserved() {
				app++
			}
		}
		if app > len(held(i)) {
			t.Errorf("seed %d: replica %d (scope %v) holds %d collections", seed, i, held(i), app)
		}
		rep, err := r.s.Verify()
		if err != nil || !rep.OK() {
			t.Errorf("seed %d: replica %d fails verify: %v %v", seed, i, err, rep)
		}
		for _, w := range r.acked {
			if !simCovered(t, ref, w) {
				t.Errorf("seed %d: replica %d's write to %s/%s (%v) is lost", seed, i, w.collection, w.key, w.vv)
			}
		}
	}
}
