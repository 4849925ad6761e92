package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteBackupV1Fixture writes testdata/backup-v1/: a backup exported by Export as it
// stood before backups were compressed (format version 1), and what it holds. It runs only
// with MESHSYNC_WRITE_BACKUP_FIXTURE=DIR; the committed copy was made at commit cf2c940.
func TestWriteBackupV1Fixture(t *testing.T) {
	dir := os.Getenv("MESHSYNC_WRITE_BACKUP_FIXTURE")
	if dir == "" {
		t.Skip("MESHSYNC_WRITE_BACKUP_FIXTURE not set")
	}
	s, err := Init(filepath.Join(t.TempDir(), "s"), testPass, testOpts("fixture-v1"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[string]string{}
	for i, v := range []string{`{"title":"milk","n":1}`, `"hello"`, `[1,2,3]`} {
		k := string(rune('a' + i))
		if err := s.Put("notes", k, []byte(v)); err != nil {
			t.Fatal(err)
		}
		rec, err := s.Get("notes", k)
		if err != nil {
			t.Fatal(err)
		}
		want["notes/"+k] = string(rec.Value) // as the store reads it back (canonical JSON)
	}
	if err := s.Put("notes", "gone", []byte(`"soon deleted"`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("notes", "gone"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ExportFile(s, filepath.Join(dir, "backup.age"), fixtureBackupPass, &ExportOptions{WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(map[string]any{"records": want, "deleted": []string{"notes/gone"}}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "expected.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
