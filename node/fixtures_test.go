package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshsync/meshsync/store"
)

// copyFixture copies a committed store fixture (store/testdata/v1/<name>) into a fresh
// directory and reads what it holds.
func copyFixture(t *testing.T, name string) (dir string, exp fixtureExpect) {
	t.Helper()
	src := filepath.Join("..", "store", "testdata", "v1")
	b, err := os.ReadFile(filepath.Join(src, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFileT(t, filepath.Join(src, name, store.FileName), filepath.Join(dir, store.FileName))
	return dir, exp
}

// TestNodeOpensV1Fixtures: a node opens the stores a node of the code before store header
// version 2 left (a device and a blind replica): the store migrates, and the node comes up
// under the same peer id, with its device list, and again after a restart.
func TestNodeOpensV1Fixtures(t *testing.T) {
	for _, c := range []struct {
		name string
		pass []byte
		peer func(fixtureExpect) string
	}{
		{"store", fixtureStorePass, func(e fixtureExpect) string { return e.PeerID }},
		{"replica", fixtureReplicaPass, func(e fixtureExpect) string { return e.Replica.PeerID }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, exp := copyFixture(t, c.name)
			now := exp.Created.Add(time.Hour)
			for range 2 {
				n, err := Open(context.Background(), Config{Dir: dir, Passphrase: c.pass, Now: func() time.Time { return now }})
				if err != nil {
					t.Fatal(err)
				}
				if got := n.PeerID().String(); got != c.peer(exp) {
					t.Errorf("peer id %s, want %s", got, c.peer(exp))
				}
				if len(n.Devices()) < 3 {
					t.Errorf("device list %+v", n.Devices())
				}
				if err := n.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestV1FixtureUpgradesToSignedRecords: a store from before signed records is moved to
// them when a node first opens it: the devices its list named stay members, every record
// that carries authority is signed, and a device paired from it afterwards takes every
// record it holds (none is refused as unsigned), so the two converge byte for byte.
func TestV1FixtureUpgradesToSignedRecords(t *testing.T) {
	dir, exp := copyFixture(t, "store")
	cfg := testConfig(t, "upgraded")
	cfg.Dir, cfg.Passphrase = dir, fixtureStorePass
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if ok, err := n.st.Authority().Upgraded(); err != nil || !ok {
		t.Fatalf("not upgraded: %v", err)
	}
	members, err := n.st.Authority().Members()
	if err != nil {
		t.Fatal(err)
	}
	listed := 0
	for _, d := range n.Devices() {
		if !d.Removed {
			listed++
		}
	}
	current := 0
	for _, m := range members {
		if !m.Removed {
			current++
		}
	}
	if listed < 2 || current < listed {
		t.Errorf("after the upgrade: %d members, %d devices listed (%+v)", current, listed, n.Devices())
	}
	if got := n.PeerID().String(); got != exp.PeerID {
		t.Errorf("peer id %s, want %s", got, exp.PeerID)
	}
	mustStart(t, n)
	code, _, err := n.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	j, err := Join(ctxT(t, 30*time.Second), testConfig(t, "joiner"), code, "joiner")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	mustStart(t, j)
	eventually(t, "the joiner holds what the upgraded store holds", func() error {
		n.SyncNow(context.Background())
		a, b := envelopesOf(t, n), envelopesOf(t, j)
		if len(a) != len(b) {
			return fmt.Errorf("%d envelopes on the upgraded device, %d on the joiner", len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				return fmt.Errorf("envelope sets differ")
			}
		}
		return nil
	})
}
