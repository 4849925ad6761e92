package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// Fixture passphrases, named in store/testdata/v1/README.md.
var (
	fixtureStorePass   = []byte("fixture store passphrase")
	fixtureReplicaPass = []byte("fixture replica passphrase")
	fixtureBackupPass  = []byte("fixture backup passphrase")
)

// fixtureExpect is what a fixture holds, written next to it as expected.json so that the
// store's tests can check what they read from it.
type fixtureExpect struct {
	Created    time.Time         `json:"created"`
	Commit     string            `json:"commit"`
	MeshID     string            `json:"mesh_id"`
	Device     store.DeviceInfo  `json:"device"`
	PeerID     string            `json:"peer_id"`
	KXPublic   string            `json:"kx_public"`
	Epochs     []store.KeyEpoch  `json:"epochs"`
	Records    map[string]string `json:"records"` // "collection/key" -> JSON value (live records only)
	History    int               `json:"history"`
	LocalNames []string          `json:"local_names"` // the names PutLocal wrote, as node uses them
	Replica    struct {
		Device store.DeviceInfo `json:"device"`
		PeerID string           `json:"peer_id"`
	} `json:"replica"`
}

// TestWriteStoreFixtures writes store fixtures made by the code as it is: a device's store
// that went through a node (identity, key-agreement key, a rotated epoch key, peer
// progress, a resolved conflict's history), a blind replica's store, and a backup of the
// device's store. It runs only when asked:
//
//	MESHSYNC_WRITE_FIXTURES=/tmp/fx go test -run TestWriteStoreFixtures ./node/
//
// and writes store/, replica/, backup.age and expected.json into that directory. The
// committed copy (store/testdata/v1) was made at commit 53dd635, before the store header's
// version 2; the store's tests open those committed bytes.
func TestWriteStoreFixtures(t *testing.T) {
	out := os.Getenv("MESHSYNC_WRITE_FIXTURES")
	if out == "" {
		t.Skip("set MESHSYNC_WRITE_FIXTURES=DIR to write store fixtures into DIR")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acfg := testConfig(t, "a")
	acfg.Passphrase = fixtureStorePass
	a, err := Init(ctx, acfg, "fixture-laptop")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mustStart(t, a)
	bcfg := testConfig(t, "b")
	code, _, err := a.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Join(ctxT(t, 30*time.Second), bcfg, code, "fixture-phone")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustStart(t, b)
	rcode, _, err := a.InviteReplica(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rcfg := testConfig(t, "r")
	rcfg.Passphrase = fixtureReplicaPass
	r, err := Join(ctxT(t, 30*time.Second), rcfg, rcode, "fixture-box")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mustStart(t, r)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Put("notes", "hello", []byte(`{"text":"hello from the laptop"}`)))
	must(a.Put("notes", "gone", []byte(`{"text":"deleted soon"}`)))
	must(a.Delete("notes", "gone"))
	must(b.Put("todo", "milk", []byte(`{"done":false}`)))
	waitSyncedAll(t, a, b)

	// A conflict, resolved on a: its losing value stays in a's history.
	// The concurrent write comes from a detached copy of the mesh (a store joined with the
	// mesh key that never syncs), so that the two writes are concurrent for sure.
	c, err := store.Init(filepath.Join(t.TempDir(), "c"), fixtureStorePass, &store.Options{MeshKey: a.Store().Keys().MeshKeyForPairing(), DeviceName: "detached", KDF: store.KDFParams(testmode.KDF)})
	must(err)
	must(c.Put("notes", "shared", []byte(`{"v":"detached"}`)))
	must(a.Store().Put("notes", "shared", []byte(`{"v":"laptop"}`)))
	var raw [][]byte
	_, err = c.Replication().Since(0, 0, func(_ uint64, e []byte) error { raw = append(raw, append([]byte(nil), e...)); return nil })
	must(err)
	must(c.Close())
	if _, err := a.Store().Replication().Apply(raw); err != nil {
		t.Fatal(err)
	}
	cs, err := a.Store().Conflicts().List()
	must(err)
	if len(cs) == 0 {
		t.Fatal("no conflict to resolve")
	}
	for _, c := range cs {
		must(a.Store().Conflicts().Resolve(c.ID, 1, nil, 0))
	}

	// A key rotation granted to b: both devices hold the epoch-1 key in their local state.
	bkx, err := b.Store().Keys().KeyAgreementKey()
	must(err)
	if _, err := a.Store().Keys().RotateKey(map[resolve.DeviceID]string{b.Store().Device().ID: bkx}); err != nil {
		t.Fatal(err)
	}
	must(a.Put("notes", "after-rotation", []byte(`{"epoch":1}`)))
	waitSyncedAll(t, a, b)
	eventually(t, "the replica holds a's envelopes", func() error {
		ar, _ := a.Store().Replication().Root()
		rr, _ := r.Store().Replication().Root()
		if ar != rr {
			r.SyncNow(ctx)
			return fmt.Errorf("replica holds %d records, a %d", rr.Count, ar.Count)
		}
		return nil
	})

	var exp fixtureExpect
	exp.Created = time.Now().UTC().Truncate(time.Second)
	exp.Commit = os.Getenv("MESHSYNC_FIXTURE_COMMIT")
	mid := a.Store().Keys().MeshID()
	exp.MeshID = fmt.Sprintf("%x", mid)
	exp.Device = a.Store().Device()
	exp.PeerID = a.PeerID().String()
	exp.KXPublic, err = a.Store().Keys().KeyAgreementKey()
	must(err)
	exp.Epochs, err = a.Store().Keys().KeyEpochs()
	must(err)
	exp.Records = map[string]string{}
	for _, coll := range []string{"notes", "todo"} {
		recs, err := a.Store().List(coll, "")
		must(err)
		for _, rec := range recs {
			exp.Records[coll+"/"+rec.Key] = string(rec.Value)
		}
	}
	hist, err := a.Store().Conflicts().History("", "")
	must(err)
	exp.History = len(hist)
	exp.Replica.Device = r.Store().Device()
	exp.Replica.PeerID = r.PeerID().String()

	if _, err := store.ExportFile(a.Store(), filepath.Join(out, "backup.age"), fixtureBackupPass, nil); err != nil {
		t.Fatal(err)
	}
	must(b.Close())
	must(r.Close())
	must(a.Close())
	exp.LocalNames = localNames(t, filepath.Join(acfg.Dir, store.FileName))
	compactInto(t, filepath.Join(acfg.Dir, store.FileName), filepath.Join(out, "store", store.FileName))
	compactInto(t, filepath.Join(rcfg.Dir, store.FileName), filepath.Join(out, "replica", store.FileName))
	js, err := json.MarshalIndent(exp, "", "  ")
	must(err)
	must(os.WriteFile(filepath.Join(out, "expected.json"), append(js, '\n'), 0o644))
}

func waitSyncedAll(t *testing.T, ns ...*Node) {
	t.Helper()
	for _, n := range ns {
		waitSynced(t, n)
	}
}

// localNames lists the names in a store file's local bucket (they are clear; the values are
// sealed).
func localNames(t *testing.T, path string) []string {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var names []string
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("local")).ForEach(func(k, _ []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// compactInto copies a bbolt file into a fresh, compact one at dst.
func compactInto(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(dst)
	from, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	to, err := bolt.Open(dst, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bolt.Compact(to, from, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := to.Close(); err != nil {
		t.Fatal(err)
	}
}
