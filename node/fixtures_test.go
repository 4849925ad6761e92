package node

import (
	"context"
	"encoding/json"
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
