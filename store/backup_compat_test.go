package store

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"filippo.io/age"
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

// ageSealRaw encrypts inner as it is (no compression) under the backup passphrase.
func ageSealRaw(t testing.TB, inner []byte) []byte {
	t.Helper()
	rcpt, err := age.NewScryptRecipient(string(backupPass))
	if err != nil {
		t.Fatal(err)
	}
	rcpt.SetWorkFactor(1)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(inner)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gz compresses b as one gzip member.
func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestBackupCompressed: a backup is compressed before it is encrypted (`age -d | gunzip`
// shows the lines), is smaller than the lines it holds, and restores. The layers must
// agree: version 2 lines sent uncompressed, version 1 lines compressed, and bytes after the
// compressed stream are refused, each with nothing written.
func TestBackupCompressed(t *testing.T) {
	s, err := Init(filepath.Join(t.TempDir(), "s"), testPass, testOpts("s"))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, s)
	for i := range 200 {
		v := fmt.Sprintf(`{"title":"note %d","body":"the same words again and again, as notes are"}`, i)
		if err := s.Put("notes", strconv.Itoa(i), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := s.Export(&buf, backupPass, fastBackup); err != nil {
		t.Fatal(err)
	}
	lines := ageOpen(t, buf.Bytes()) // fails unless the age payload is gzip
	if buf.Len() >= len(lines) {
		t.Errorf("backup of %d bytes holds %d bytes of lines: not compressed", buf.Len(), len(lines))
	}
	t.Logf("backup %d bytes, lines %d bytes (%.2f)", buf.Len(), len(lines), float64(buf.Len())/float64(len(lines)))
	r, st, err := Restore(filepath.Join(t.TempDir(), "r"), bytes.NewReader(buf.Bytes()), backupPass, testPass, testOpts("r"))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, r)
	if st.New < 200 || st.Rejected != 0 {
		t.Errorf("restore %+v", st)
	}
	if rec, err := r.Get("notes", "7"); err != nil || !bytes.Contains(rec.Value, []byte("note 7")) {
		t.Errorf("notes/7 after restore: %s, %v", rec.Value, err)
	}

	v1 := bytes.Replace(lines, []byte(`"version":2`), []byte(`"version":1`), 1)
	for name, file := range map[string][]byte{
		"version 2 uncompressed":  ageSealRaw(t, lines),
		"version 1 compressed":    ageSealRaw(t, gz(t, v1)),
		"data after the stream":   ageSealRaw(t, append(gz(t, lines), '{')),
		"two compressed streams":  ageSealRaw(t, append(gz(t, lines), gz(t, lines)...)),
		"compressed stream short": ageSealRaw(t, gz(t, lines)[:len(gz(t, lines))-6]),
	} {
		before, _ := r.Replication().LastSeq()
		if _, err := r.Import(bytes.NewReader(file), backupPass, false); !errors.Is(err, ErrBadBackup) {
			t.Errorf("%s: %v, want ErrBadBackup", name, err)
		}
		if after, _ := r.Replication().LastSeq(); after != before {
			t.Errorf("%s: the store changed", name)
		}
	}
}

// FuzzBackupInner fuzzes what is inside a backup's age layer (the age layer itself is
// authenticated: FuzzBackupReader): gzip or not, JSON lines, manifest. Whatever it holds,
// a refused backup writes nothing.
func FuzzBackupInner(f *testing.F) {
	s, err := Init(filepath.Join(f.TempDir(), "s"), testPass, testOpts("f"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	s.Put("c", "k", []byte(`{"a":1}`))
	var buf bytes.Buffer
	if _, err := s.Export(&buf, backupPass, fastBackup); err != nil {
		f.Fatal(err)
	}
	lines := ageOpen(f, buf.Bytes())
	f.Add(gz(f, lines))
	f.Add(bytes.Replace(lines, []byte(`"version":2`), []byte(`"version":1`), 1))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, inner []byte) {
		before, _ := s.Replication().LastSeq()
		if _, err := s.Import(bytes.NewReader(ageSealRaw(t, inner)), backupPass, false); err == nil {
			return
		}
		if after, _ := s.Replication().LastSeq(); after != before {
			t.Fatal("a refused backup wrote to the store")
		}
	})
}

// TestExportProgress: an export reports its progress up to every envelope it wrote, and an
// import of the file reports the bytes read up to the file's size.
func TestExportProgress(t *testing.T) {
	s, err := Init(filepath.Join(t.TempDir(), "s"), testPass, testOpts("s"))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, s)
	if err := s.Update(func(tx *Tx) error {
		for i := range 3000 {
			if err := tx.PutRaw("bulk", strconv.Itoa(i), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var last, total int64
	path := filepath.Join(t.TempDir(), "b.age")
	info, err := ExportFile(s, path, backupPass, &ExportOptions{WorkFactor: 1, Progress: func(d, n int64) { last, total = d, n }})
	if err != nil {
		t.Fatal(err)
	}
	if last < 2048 || last > int64(info.Envelopes) || total < last {
		t.Errorf("export progress ended at %d of %d, %d envelopes written", last, total, info.Envelopes)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	last, total = 0, 0
	if _, err := ImportFileProgress(s, path, backupPass, true, func(d, n int64) { last, total = d, n }); err != nil {
		t.Fatal(err)
	}
	if last != fi.Size() || total != fi.Size() {
		t.Errorf("import progress ended at %d of %d bytes, file of %d", last, total, fi.Size())
	}
}
