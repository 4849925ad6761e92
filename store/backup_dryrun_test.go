package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshsync/meshsync/resolve"
)

// rotatedPair returns two stores of one mesh: a removed b, rotated to epoch 1 (for no other
// device) and wrote notes/after under it; old notes were written before, on both.
func rotatedPair(t *testing.T) (a, b *Store) {
	t.Helper()
	a = mustInit(t, testOpts("a"))
	b = peer(t, a, "b", nil)
	writeNotes(t, a, "old", 5)
	syncBoth(t, a, b)
	revoke(t, a, b)
	if _, err := a.Keys().RotateKey(map[resolve.DeviceID]string{}); err != nil {
		t.Fatal(err)
	}
	if err := a.Put("notes", "after", []byte(`"sealed under epoch 1"`)); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// rotatedBackup returns a store b of a's mesh that lacks the key of epoch 1, and a backup
// of a taken after a rotated epoch 1 (so the backup carries that key).
func rotatedBackup(t *testing.T) (b *Store, backup []byte) {
	t.Helper()
	a, b := rotatedPair(t)
	if err := b.Keys().LoadKeyEpochs(); err != nil {
		t.Fatal(err)
	}
	if n := len(b.keys.keysOf(1)); n != 0 {
		t.Fatalf("b holds %d keys of epoch 1 before the import", n)
	}
	return b, exportWF(t, a, 10)
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// TestImportDryRunChangesNothing: a dry run leaves the store file byte for byte as it was
// and installs none of the backup's epoch keys, yet counts the epoch-1 envelope as
// readable.
func TestImportDryRunChangesNothing(t *testing.T) {
	b, backup := rotatedBackup(t)
	path := filepath.Join(b.Dir(), FileName)
	before := fileSum(t, path)
	st, err := b.Import(bytes.NewReader(backup), backupPass, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rejected != 0 || st.New == 0 {
		t.Errorf("dry run stats %+v, want new records and none rejected", st)
	}
	if n := len(b.keys.keysOf(1)); n != 0 {
		t.Errorf("dry run installed %d keys of epoch 1", n)
	}
	if after := fileSum(t, path); after != before {
		t.Errorf("dry run changed the store file")
	}
	if _, err := b.Get("notes", "after"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after a dry run, notes/after: %v, want ErrNotFound", err)
	}
}

// TestImportKeysOnlyAfterManifest: a real import of a backup whose manifest does not
// match is refused and leaves no key of the backup behind, in memory or on disk; the
// intact backup then installs them.
func TestImportKeysOnlyAfterManifest(t *testing.T) {
	b, backup := rotatedBackup(t)
	lines := backupLines(ageOpen(t, backup))
	last := len(lines) - 1
	lines[last] = bytes.Replace(lines[last], []byte(`"sha256":"`), []byte(`"sha256":"00`), 1)
	bad := ageSeal(t, joinBackupLines(lines))
	if _, err := b.Import(bytes.NewReader(bad), backupPass, false); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("import of an altered manifest: %v, want ErrBadBackup", err)
	}
	if n := len(b.keys.keysOf(1)); n != 0 {
		t.Errorf("a refused import installed %d keys of epoch 1", n)
	}
	if _, err := b.Import(bytes.NewReader(backup), backupPass, false); err != nil {
		t.Fatal(err)
	}
	if n := len(b.keys.keysOf(1)); n != 1 {
		t.Errorf("the intact import installed %d keys of epoch 1, want 1", n)
	}
	if _, err := b.Get("notes", "after"); err != nil {
		t.Errorf("notes/after after the import: %v", err)
	}
}
