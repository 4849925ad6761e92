package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The committed fixtures of store header version 1 (testdata/v1/README.md).
var (
	fixtureStorePass   = []byte("fixture store passphrase")
	fixtureReplicaPass = []byte("fixture replica passphrase")
	fixtureBackupPass  = []byte("fixture backup passphrase")
)

// fixtureExpect is testdata/v1/expected.json: what the fixtures hold.
type fixtureExpect struct {
	Created    time.Time         `json:"created"`
	MeshID     string            `json:"mesh_id"`
	Device     DeviceInfo        `json:"device"`
	PeerID     string            `json:"peer_id"`
	KXPublic   string            `json:"kx_public"`
	Epochs     []KeyEpoch        `json:"epochs"`
	Records    map[string]string `json:"records"`
	History    int               `json:"history"`
	LocalNames []string          `json:"local_names"`
	Replica    struct {
		Device DeviceInfo `json:"device"`
		PeerID string     `json:"peer_id"`
	} `json:"replica"`
}

func loadFixtureExpect(t testing.TB) fixtureExpect {
	t.Helper()
	return loadFixtureExpectOf(t, "v1")
}

// loadFixtureExpectOf is loadFixtureExpect for the fixtures of version ver (testdata/ver).
func loadFixtureExpectOf(t testing.TB, ver string) fixtureExpect {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", ver, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e fixtureExpect
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// fixtureDir copies the committed store fixture name ("store" or "replica") into a fresh
// directory: opening it migrates it, and the committed bytes must stay as they are.
func fixtureDir(t testing.TB, name string) string {
	t.Helper()
	return fixtureDirOf(t, "v1", name)
}

// fixtureDirOf is fixtureDir for the fixtures of version ver (testdata/ver).
func fixtureDirOf(t testing.TB, ver, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join("testdata", ver, name, FileName), filepath.Join(dir, FileName))
	return dir
}

// fixtureOpts opens a fixture at the time it was made (plus an hour), so that its
// conflict history is still within the retention period.
func fixtureOpts(e fixtureExpect) *Options {
	now := e.Created.Add(time.Hour)
	return &Options{Now: func() time.Time { return now }}
}

// rawFile reads what the file holds without the store: the header and the sealed values
// of the local and history buckets, keyed by the name each is sealed under.
func rawFile(t testing.TB, dir string) (hdr []byte, sealed map[string][]byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return rawDB(t, db)
}

// rawStore is rawFile of an open store.
func rawStore(t testing.TB, s *Store) (hdr []byte, sealed map[string][]byte) {
	t.Helper()
	return rawDB(t, s.db)
}

func rawDB(t testing.TB, db *bolt.DB) (hdr []byte, sealed map[string][]byte) {
	t.Helper()
	sealed = map[string][]byte{}
	err := db.View(func(tx *bolt.Tx) error {
		hdr = append([]byte(nil), tx.Bucket([]byte("meta")).Get([]byte("header"))...)
		if err := tx.Bucket([]byte("local")).ForEach(func(k, v []byte) error {
			sealed[string(k)] = append([]byte(nil), v...)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket([]byte("hist")).ForEach(func(k, v []byte) error {
			sealed["hist/"+string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return hdr, sealed
}
