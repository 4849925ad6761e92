package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/meshsync/meshsync/resolve"
)

// nonceKey is what must never repeat: a nonce under one data key (mesh key, key epoch).
type nonceKey struct {
	epoch uint32
	nonce [24]byte
}

// Row 16: no two envelopes of a mesh share a (key, nonce) pair, across restarts and
// across a store put back from an old copy of its file (which rewinds every counter the
// file holds). Seals go through the keyring directly, as every write does, in "sessions"
// that each start from a fresh keyring; then through real stores that are closed,
// reopened and restored. 10^5 seals by default, MESHSYNC_SEALS=N for the nightly 10^6 or
// the plan's 10^7.
func TestNonceUniqueness(t *testing.T) {
	seals := 100_000
	if n, err := strconv.Atoi(os.Getenv("MESHSYNC_SEALS")); err == nil && n > 0 {
		seals = n
	}
	if testing.Short() {
		seals = 10_000
	}
	a := mustInit(t, testOpts("a"))
	mesh := a.keys.mesh
	seen := make(map[nonceKey]struct{}, seals+4096)
	dups := 0
	note := func(e *Envelope) {
		k := nonceKey{e.KeyEpoch, e.Nonce}
		if _, ok := seen[k]; ok {
			dups++
		}
		seen[k] = struct{}{}
	}
	// The same record, version and payload again and again after a "restart" or a
	// "restore": the associated data repeats exactly, so only the nonce keeps them apart.
	id := a.keys.recordID("notes", "k")
	v := resolve.Version{Device: a.Device().ID, Clock: 1, VV: resolve.VersionVector{a.Device().ID: 1}}
	p := &payload{Collection: "notes", Key: "k", Value: resolve.Value{Kind: resolve.KindJSON, Data: []byte(`{}`)}}
	const sessions = 20
	for s := range sessions {
		k := newKeyring(mesh) // a restart: nothing survives but the mesh key
		for i := range seals / sessions {
			if i%2 == 1 { // half the seals rewind to the same version, as a restore would
				v.VV[a.Device().ID] = uint64(s*seals + i)
			}
			e, err := k.seal(id, v, p)
			if err != nil {
				t.Fatal(err)
			}
			note(e)
		}
	}
	// Real stores: writes, a restart, an old copy put back, writes again (reusing the
	// counters the old copy holds) — every envelope ever made.
	dir, file := a.Dir(), filepath.Join(a.Dir(), FileName)
	write := func(s *Store, round int) {
		err := s.Update(func(tx *Tx) error {
			for i := range 200 {
				if err := tx.Put("notes", fmt.Sprint("k", i), []byte(fmt.Sprintf(`{"r":%d}`, round))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range allEnvelopes(t, s) {
			e, err := UnmarshalEnvelope(raw)
			if err != nil {
				t.Fatal(err)
			}
			if r := envRound(t, s, e); r == round {
				note(e)
			}
		}
	}
	write(a, 0)
	a.Close()
	copyFile(t, file, file+".old")
	restores := 0
	for round := 1; round <= 6; round++ {
		if round%2 == 1 {
			copyFile(t, file+".old", file) // back to the state after round 0
			restores++
		}
		a = reopen(t, dir)
		write(a, round)
		a.Close()
	}
	a = reopen(t, dir)
	t.Cleanup(func() { mustVerifyClose(t, a) })
	t.Logf("seals checked: %d (%d sessions, %d store restores), duplicate (key, nonce) pairs: %d", len(seen)+dups, sessions, restores, dups)
	if dups != 0 {
		t.Fatalf("%d duplicate (key, nonce) pairs", dups)
	}
}

// envRound opens e and returns the "r" field of its value.
func envRound(t testing.TB, s *Store, e *Envelope) int {
	t.Helper()
	p, err := s.keys.open(e)
	if err != nil {
		t.Fatal(err)
	}
	var r int
	fmt.Sscanf(string(p.Value.Data), `{"r":%d}`, &r)
	return r
}
