package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestBackupV1Imports: a backup written before backups were compressed (format version
// 1, committed bytes) still restores into a new store and imports into one of its mesh,
// with every record and the delete in place.
func TestBackupV1Imports(t *testing.T) {
	const path = "testdata/backup-v1/backup.age"
	var want struct {
		Records map[string]string `json:"records"`
		Deleted []string          `json:"deleted"`
	}
	b, err := os.ReadFile("testdata/backup-v1/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, st, err := Restore(filepath.Join(t.TempDir(), "restored"), f, fixtureBackupPass, testPass, testOpts("restored"))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, s)
	if st.Rejected != 0 || st.New == 0 {
		t.Errorf("restore stats %+v", st)
	}
	check := func(s *Store) {
		t.Helper()
		for name, v := range want.Records {
			c, k, _ := cut(name)
			rec, err := s.Get(c, k)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if string(rec.Value) != v {
				t.Errorf("%s = %s, want %s", name, rec.Value, v)
			}
		}
		for _, name := range want.Deleted {
			c, k, _ := cut(name)
			if _, err := s.Get(c, k); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %v, want deleted", name, err)
			}
		}
	}
	check(s)
	// Imported again into the store it restored: nothing new, nothing rejected.
	st, err = ImportFile(s, path, fixtureBackupPass, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.New != 0 || st.Newer != 0 || st.Rejected != 0 || st.Unchanged != st.Envelopes {
		t.Errorf("import stats %+v, want every envelope unchanged", st)
	}
	check(s)
}

// cut splits "collection/key".
func cut(name string) (collection, key string, ok bool) {
	for i := range len(name) {
		if name[i] == '/' {
			return name[:i], name[i+1:], true
		}
	}
	return name, "", false
}
