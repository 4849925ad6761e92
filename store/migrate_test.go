package store

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// openV1 opens the sealed values of a version-1 file with the key its version derived
// from the root secret (the mesh key of a device): what migration must carry over.
func openV1(t testing.TB, dir string, pass []byte) map[string][]byte {
	t.Helper()
	hb, sealed := rawFile(t, dir)
	h, err := parseHeader(hb)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != headerV1 {
		t.Fatalf("fixture header at version %d, want 1", h.Version)
	}
	sec, err := h.unwrap(pass)
	if err != nil {
		t.Fatal(err)
	}
	plain := map[string][]byte{}
	for name, v := range sealed {
		p, err := openLocalWith(subkey(sec.root, labelLocal), name, v)
		if err != nil {
			t.Fatalf("v1 value %q: %v", name, err)
		}
		plain[name] = p
	}
	return plain
}

// localPlain opens every sealed value of an open store's file with its local key.
func localPlain(t testing.TB, s *Store) map[string][]byte {
	t.Helper()
	_, sealed := rawStore(t, s)
	plain := map[string][]byte{}
	for name, v := range sealed {
		p, err := s.openLocal(name, v)
		if err != nil {
			t.Fatalf("value %q after migration: %v", name, err)
		}
		plain[name] = p
	}
	return plain
}

func headerVersionOf(t testing.TB, s *Store) byte {
	t.Helper()
	hb, _ := rawStore(t, s)
	h, err := parseHeader(hb)
	if err != nil {
		t.Fatal(err)
	}
	return h.Version
}

// checkFixtureStore checks that s holds what the device fixture held.
func checkFixtureStore(t *testing.T, s *Store, e fixtureExpect) {
	t.Helper()
	if rep, err := s.Verify(); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	if s.Device() != e.Device {
		t.Errorf("device %+v, want %+v", s.Device(), e.Device)
	}
	if err := s.Keys().LoadKeyEpochs(); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, coll := range []string{"notes", "todo"} {
		recs, err := s.List(coll, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got[coll+"/"+r.Key] = string(r.Value)
		}
	}
	if !maps.Equal(got, e.Records) {
		t.Errorf("records %v, want %v", got, e.Records)
	}
	kx, err := s.Keys().KeyAgreementKey()
	if err != nil || kx != e.KXPublic {
		t.Errorf("key-agreement key %q %v, want %q", kx, err, e.KXPublic)
	}
	eps, err := s.Keys().KeyEpochs()
	if err != nil || len(eps) != len(e.Epochs) || eps[0].KeyID != e.Epochs[0].KeyID {
		t.Errorf("key epochs %+v %v, want %+v", eps, err, e.Epochs)
	}
	h, err := s.Conflicts().History("", "")
	if err != nil || len(h) != e.History {
		t.Errorf("history %d entries %v, want %d", len(h), err, e.History)
	}
}

// TestOpenMigratesV1Fixture opens the committed store of header version 1 (made by the code
// before version 2, through a node): the open migrates it, every local value and history
// entry carries over byte for byte under the new local key, the store verifies and reads
// as before, and a second open finds version 2 and changes nothing.
func TestOpenMigratesV1Fixture(t *testing.T) {
	e := loadFixtureExpect(t)
	dir := fixtureDir(t, "store")
	before := openV1(t, dir, fixtureStorePass)
	if names := slices.Sorted(maps.Keys(before)); len(names) < len(e.LocalNames) {
		t.Fatalf("fixture holds %v", names)
	}

	start := time.Now()
	s, err := Open(dir, fixtureStorePass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("open with migration: %v (%d sealed values)", time.Since(start), len(before))
	if v := headerVersionOf(t, s); v != headerV2 {
		t.Fatalf("header version %d after open, want 2", v)
	}
	after := localPlain(t, s)
	if !maps.EqualFunc(before, after, bytes.Equal) {
		t.Errorf("local values changed in migration:\nbefore %q\nafter  %q", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
	checkFixtureStore(t, s, e)
	s.Close()

	hb1, sealed1 := rawFile(t, dir)
	s, err = Open(dir, fixtureStorePass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	checkFixtureStore(t, s, e)
	s.Close()
	hb2, sealed2 := rawFile(t, dir)
	if !bytes.Equal(hb1, hb2) || !maps.EqualFunc(sealed1, sealed2, bytes.Equal) {
		t.Error("a second open rewrote the header or local values")
	}
	if _, err := Open(dir, []byte("wrong"), fixtureOpts(e)); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
}

// TestOpenMigratesV1ReplicaFixture: the blind replica's store migrates too (its local key
// came from its own passphrase-wrapped secret; now from a local secret as a device's does)
// and keeps its token and identity.
func TestOpenMigratesV1ReplicaFixture(t *testing.T) {
	e := loadFixtureExpect(t)
	dir := fixtureDir(t, "replica")
	before := openV1(t, dir, fixtureReplicaPass)
	r, err := Open(dir, fixtureReplicaPass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, r)
	if !r.Blind() || r.Device() != e.Replica.Device {
		t.Fatalf("blind %v device %+v, want %+v", r.Blind(), r.Device(), e.Replica.Device)
	}
	if v := headerVersionOf(t, r); v != headerV2 {
		t.Fatalf("header version %d after open, want 2", v)
	}
	if after := localPlain(t, r); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Error("local values changed in migration")
	}
	if before["x/identity"] == nil || before[localToken] == nil {
		t.Errorf("fixture replica lacks identity or token: %v", slices.Sorted(maps.Keys(before)))
	}
	if rk, err := r.Keys().Subkey(PurposeRendezvous); err != nil || len(rk) != 32 {
		t.Errorf("replica rendezvous key: %v", err)
	}
}

// TestMigrationInterruptedStillOpens: a migration that stops before its commit (as a crash
// would) leaves the version-1 file as it was, byte for byte in its header and local values;
// the next open migrates it.
func TestMigrationInterruptedStillOpens(t *testing.T) {
	e := loadFixtureExpect(t)
	dir := fixtureDir(t, "store")
	hb0, sealed0 := rawFile(t, dir)
	crash := errors.New("crash before commit")
	migrateHook = func() error { return crash }
	_, err := Open(dir, fixtureStorePass, fixtureOpts(e))
	migrateHook = nil
	if !errors.Is(err, crash) {
		t.Fatalf("open with an interrupted migration: %v", err)
	}
	hb1, sealed1 := rawFile(t, dir)
	if !bytes.Equal(hb0, hb1) || !maps.EqualFunc(sealed0, sealed1, bytes.Equal) {
		t.Fatal("an interrupted migration changed the file")
	}
	s, err := Open(dir, fixtureStorePass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := headerVersionOf(t, s); v != headerV2 {
		t.Fatalf("header version %d, want 2", v)
	}
	checkFixtureStore(t, s, e)
}

// TestChangePassphraseRewrapsLocalSecret: a passphrase change rewraps the mesh key and the
// local secret and re-encrypts nothing: the local values keep their bytes, the old
// passphrase no longer opens the store and the new one opens everything.
func TestChangePassphraseRewrapsLocalSecret(t *testing.T) {
	e := loadFixtureExpect(t)
	dir := fixtureDir(t, "store")
	s, err := Open(dir, fixtureStorePass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	_, sealed0 := rawStore(t, s)
	newPass := []byte("a new passphrase")
	if err := s.Keys().ChangePassphrase([]byte("wrong"), newPass, nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("change with a wrong passphrase: %v", err)
	}
	if err := s.Keys().ChangePassphrase(fixtureStorePass, newPass, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, sealed1 := rawFile(t, dir)
	if !maps.EqualFunc(sealed0, sealed1, bytes.Equal) {
		t.Error("a passphrase change re-encrypted local values")
	}
	if _, err := Open(dir, fixtureStorePass, fixtureOpts(e)); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("old passphrase: %v", err)
	}
	s, err = Open(dir, newPass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkFixtureStore(t, s, e)
}

// TestV1BackupFixtureImports: a backup written by the code before header version 2 restores
// into a new store (which reads every record, those of epoch 1 too) and imports into the
// migrated store it came from as nothing new. A backup carries the mesh key, the epoch keys
// and the envelopes, never local state or the local key: the format did not change.
func TestV1BackupFixtureImports(t *testing.T) {
	e := loadFixtureExpect(t)
	backup := filepath.Join("testdata", "v1", "backup.age")
	f, err := os.Open(backup)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, st, err := Restore(filepath.Join(t.TempDir(), "restored"), f, fixtureBackupPass, testPass, &Options{KDF: testKDF, DeviceName: "restored"})
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, r)
	if st.Rejected != 0 || st.Envelopes == 0 {
		t.Errorf("restore: %+v", st)
	}
	if v := headerVersionOf(t, r); v != headerV2 {
		t.Errorf("restored store at header version %d", v)
	}
	for k, want := range e.Records {
		coll, key, _ := strings.Cut(k, "/")
		rec, err := r.Get(coll, key)
		if err != nil || string(rec.Value) != want {
			t.Errorf("restored %s: %v %v, want %s", k, rec, err, want)
		}
	}

	dir := fixtureDir(t, "store")
	s, err := Open(dir, fixtureStorePass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, s)
	st, err = ImportFile(s, backup, fixtureBackupPass, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rejected != 0 || st.New != 0 || st.Newer != 0 || st.Unchanged != st.Envelopes {
		t.Errorf("import into the store it came from: %+v", st)
	}
}

// TestMigrationOnFullDiskOpensAsV1: a migration that cannot commit for want of disk space
// leaves the store at version 1 and opens it as it is (the local key still from the mesh
// key, every local value readable); a passphrase change then migrates it first, and the
// next open finds version 2.
func TestMigrationOnFullDiskOpensAsV1(t *testing.T) {
	e := loadFixtureExpect(t)
	dir := fixtureDir(t, "store")
	migrateHook = func() error { return ErrDiskFull }
	s, err := Open(dir, fixtureStorePass, fixtureOpts(e))
	migrateHook = nil
	if err != nil {
		t.Fatal(err)
	}
	if v := headerVersionOf(t, s); v != headerV1 {
		t.Fatalf("header version %d after a failed migration, want 1", v)
	}
	checkFixtureStore(t, s, e)
	newPass := []byte("a new passphrase")
	if err := s.Keys().ChangePassphrase(fixtureStorePass, newPass, nil); err != nil {
		t.Fatal(err)
	}
	if v := headerVersionOf(t, s); v != headerV2 {
		t.Fatalf("header version %d after a passphrase change, want 2", v)
	}
	checkFixtureStore(t, s, e)
	s.Close()
	s, err = Open(dir, newPass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkFixtureStore(t, s, e)
}
