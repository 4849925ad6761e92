package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

var backupPass = []byte("backup passphrase")
var fastBackup = &ExportOptions{WorkFactor: 10}

func exportBytes(t testing.TB, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.Export(&buf, backupPass, fastBackup); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBackupRestore(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	for i := 0; i < 20; i++ {
		a.Put("c", fmt.Sprint(i), []byte(fmt.Sprintf(`{"i":%d}`, i)))
	}
	putRaw(a, "blob", "b", []byte{1, 2})
	a.Delete("c", "7")
	file := exportBytes(t, a)
	dir := filepath.Join(t.TempDir(), "restored")
	r, st, err := Restore(dir, bytes.NewReader(file), backupPass, []byte("new device pass"), testOpts("restored"))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, r)
	if st.New != 21 || st.Envelopes != 21 {
		t.Errorf("restore stats %+v", st)
	}
	if r.Device().ID == a.Device().ID || r.Keys().MeshID() != a.Keys().MeshID() {
		t.Error("restore must keep the mesh and make a new device")
	}
	if envelopeSet(t, r) != envelopeSet(t, a) {
		t.Error("restored envelopes differ")
	}
	if _, err := r.Get("c", "7"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted record restored: %v", err)
	}
	// The restored device writes and syncs with the old one like any peer.
	r.Put("c", "1", []byte(`{"i":"restored"}`))
	mustApply(t, a, allEnvelopes(t, r))
	if rec, _ := a.Get("c", "1"); string(rec.Value) != `{"i":"restored"}` {
		t.Errorf("a sees %s", rec.Value)
	}
}

// TestRestoreInBatches: a restore writes its store in several transactions beside its
// final place and moves it there at the end: the restored store holds the same envelopes
// and root and verifies; a backup cut after several batches leaves no store and nothing of
// the attempt, and a later restore into the same directory works.
func TestRestoreInBatches(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	err := a.Update(func(tx *Tx) error {
		for i := range 300 {
			if err := tx.Put("c", fmt.Sprint(i), []byte(fmt.Sprintf(`{"i":%d,"pad":"%0500d"}`, i, i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	file := exportBytes(t, a)
	defer func(n int) { RestoreBatchBytes = n }(RestoreBatchBytes)
	RestoreBatchBytes = 16 << 10 // about 20 envelopes per transaction

	dir := filepath.Join(t.TempDir(), "restored")
	if _, _, err := Restore(dir, bytes.NewReader(file[:len(file)*3/4]), backupPass, testPass, testOpts("r")); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("restore of a backup cut after several batches: %v", err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("a failed restore left %v (%v)", ents, err)
	}
	r, st, err := Restore(dir, bytes.NewReader(file), backupPass, testPass, testOpts("r"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Envelopes != 300 || st.New != 300 {
		t.Errorf("restore stats %+v", st)
	}
	if envelopeSet(t, r) != envelopeSet(t, a) {
		t.Error("restored envelopes differ")
	}
	ra, _ := a.Replication().Root()
	rr, _ := r.Replication().Root()
	if ra != rr {
		t.Errorf("restored root %v, want %v", rr, ra)
	}
	if rec, err := r.Get("c", "299"); err != nil || !bytes.Contains(rec.Value, []byte(`"i":299`)) {
		t.Errorf("a restored record: %v %v", rec, err)
	}
	if _, err := os.Stat(filepath.Join(dir, restoreDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the restore left its working directory: %v", err)
	}
	// bbolt numbers its commits: the restore took more than a dozen, against one for the
	// envelopes of the same backup in one batch.
	RestoreBatchBytes = 64 << 20
	one, _, err := Restore(filepath.Join(t.TempDir(), "one"), bytes.NewReader(file), backupPass, testPass, testOpts("r"))
	if err != nil {
		t.Fatal(err)
	}
	if batched, whole := lastTxID(t, r), lastTxID(t, one); batched < whole+10 {
		t.Errorf("restore in batches of 16 KiB committed %d transactions, in one batch %d", batched, whole)
	}
	mustVerifyClose(t, one)
	mustVerifyClose(t, r)
	if _, _, err := Restore(dir, bytes.NewReader(file), backupPass, testPass, testOpts("r")); !errors.Is(err, ErrExists) {
		t.Errorf("restore over a store: %v", err)
	}
}

func TestImportOldBackupKeepsNewer(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	a.Put("c", "k", []byte(`"old"`))
	a.Put("c", "gone", []byte(`"x"`))
	old := exportBytes(t, a)
	a.Put("c", "k", []byte(`"new"`))
	a.Delete("c", "gone")
	before := envelopeSet(t, a)
	st, err := a.Import(bytes.NewReader(old), backupPass, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unchanged != 2 || st.New+st.Newer+st.Conflicting != 0 {
		t.Errorf("dry run stats %+v", st)
	}
	if _, err := a.Import(bytes.NewReader(old), backupPass, false); err != nil {
		t.Fatal(err)
	}
	if rec, _ := a.Get("c", "k"); string(rec.Value) != `"new"` {
		t.Errorf("old backup overwrote newer value: %s", rec.Value)
	}
	if _, err := a.Get("c", "gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old backup resurrected a deleted record")
	}
	if envelopeSet(t, a) != before {
		t.Error("old backup changed the store")
	}
	// Dry run of a newer backup into an older copy reports what would change and changes
	// nothing.
	b := peer(t, a, "b", nil)
	b.Put("c", "mine", []byte(`1`))
	snapshot := envelopeSet(t, b)
	st, err = b.Import(bytes.NewReader(exportBytes(t, a)), backupPass, true)
	if err != nil || st.New != 2 {
		t.Fatalf("dry run: %+v %v", st, err)
	}
	if envelopeSet(t, b) != snapshot {
		t.Error("dry run wrote to the store")
	}
	// Another mesh's backup is refused.
	other := mustInit(t, testOpts("o"))
	if _, err := other.Import(bytes.NewReader(old), backupPass, false); !errors.Is(err, ErrOtherMesh) {
		t.Errorf("import from another mesh: %v", err)
	}
}

// TestBackupRefusedWhole: every cut point, flipped bits, appended bytes and a wrong
// passphrase are refused with nothing applied.
func TestBackupRefusedWhole(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	for i := 0; i < 3; i++ {
		a.Put("c", fmt.Sprint(i), []byte(`{"x":1}`))
	}
	file := exportBytes(t, a)
	b := peer(t, a, "b", nil)
	b.Put("c", "own", []byte(`1`))
	want := envelopeSet(t, b)
	root0, _ := b.Replication().Root()
	try := func(name string, data []byte, pass []byte) {
		t.Helper()
		_, err := b.Import(bytes.NewReader(data), pass, false)
		if err == nil {
			t.Fatalf("%s: import accepted", name)
		}
		if !errors.Is(err, ErrBadBackup) && !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("%s: unclear error %v", name, err)
		}
	}
	step := 1
	if testing.Short() {
		step = 7
	}
	for cut := 0; cut < len(file); cut += step {
		try(fmt.Sprint("cut at ", cut), file[:cut], backupPass)
	}
	for i := 0; i < len(file); i += 1 + len(file)/300 {
		bad := bytes.Clone(file)
		bad[i] ^= 0x10
		try(fmt.Sprint("flip at ", i), bad, backupPass)
	}
	try("appended", append(bytes.Clone(file), 'x'), backupPass)
	try("wrong passphrase", file, []byte("nope"))
	if _, err := b.Import(bytes.NewReader(file), []byte("nope"), false); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase error: %v", err)
	}
	if envelopeSet(t, b) != want {
		t.Fatal("a refused backup changed the store")
	}
	if root, _ := b.Replication().Root(); root != root0 {
		t.Fatal("a refused backup changed the Merkle root")
	}
	// Restore of a damaged file leaves no store behind.
	dir := filepath.Join(t.TempDir(), "r")
	if _, _, err := Restore(dir, bytes.NewReader(file[:len(file)-20]), backupPass, testPass, testOpts("r")); err == nil {
		t.Fatal("restore of a truncated file succeeded")
	}
	if _, err := Open(dir, testPass, nil); !errors.Is(err, ErrNoStore) {
		t.Errorf("failed restore left a store: %v", err)
	}
}

func FuzzBackupReader(f *testing.F) {
	s, err := Init(filepath.Join(f.TempDir(), "s"), testPass, testOpts("f"))
	if err != nil {
		f.Fatal(err)
	}
	s.Put("c", "k", []byte(`{"a":1}`))
	var buf bytes.Buffer
	s.Export(&buf, backupPass, fastBackup)
	f.Add(buf.Bytes())
	f.Add([]byte("age-encryption.org/v1\n"))
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		before, _ := s.Replication().LastSeq()
		_, err := s.Import(bytes.NewReader(data), backupPass, false)
		if err == nil {
			return // only the genuine file (or a re-import of it) may pass
		}
		if after, _ := s.Replication().LastSeq(); after != before {
			t.Fatalf("a refused backup wrote to the store: %v", err)
		}
	})
}

// lastTxID is the id of the last transaction committed to s's file.
func lastTxID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}
