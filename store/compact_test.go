package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestCompactKeepsEveryRecord: a store with free pages (records overwritten and deleted)
// compacts into a smaller file that opens, verifies, and holds the same records, Merkle
// roots, envelopes, local state and device; and it takes writes afterwards.
func TestCompactKeepsEveryRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Init(dir, testPass, testOpts("dev"))
	if err != nil {
		t.Fatal(err)
	}
	value := func(i, round int) []byte {
		return fmt.Appendf(nil, "{\"i\":%d,\"round\":%d,\"pad\":%q}", i, round, bytes.Repeat([]byte{'x'}, 900))
	}
	for round := range 3 {
		err := s.Update(func(tx *Tx) error {
			for i := range 600 {
				if err := tx.PutRaw([]string{"notes", "todo"}[i%2], fmt.Sprintf("k%04d", i), value(i, round)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 600; i += 3 {
		if err := s.Delete([]string{"notes", "todo"}[i%2], fmt.Sprintf("k%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	roots, err := s.Replication().Roots()
	if err != nil {
		t.Fatal(err)
	}
	recs, envs, device := skewRecords(t, s), rawEnvelopes(t, s), s.Device()
	hdr, sealed := rawStore(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	rep, err := Compact(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if rep.FreePagesBefore == 0 || rep.BytesAfter >= rep.BytesBefore || fi.Size() != rep.BytesAfter {
		t.Errorf("compaction report %+v (file now %d bytes): want free pages before and a smaller file", rep, fi.Size())
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+compactSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the copy is left beside the store: %v", err)
	}

	s, err = Open(dir, testPass, testOpts("dev"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Verify(); err != nil || !v.OK() {
		t.Fatalf("verify after compaction: %v %+v", err, v)
	}
	again, err := s.Replication().Roots()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(roots, again) {
		t.Errorf("Merkle roots changed: %v, then %v", roots, again)
	}
	if got := skewRecords(t, s); got != recs {
		t.Errorf("records changed:\n%s\nthen\n%s", recs, got)
	}
	if got := rawEnvelopes(t, s); !maps.EqualFunc(envs, got, bytes.Equal) {
		t.Errorf("envelopes changed: %d, then %d", len(envs), len(got))
	}
	if h, sl := rawStore(t, s); !bytes.Equal(h, hdr) || !maps.EqualFunc(sl, sealed, bytes.Equal) {
		t.Error("the header or the sealed local state changed")
	}
	if s.Device() != device {
		t.Errorf("device %+v, then %+v", device, s.Device())
	}
	if err := s.Put("notes", "after", []byte(`"compacted"`)); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get("notes", "after"); err != nil || string(r.Value) != `"compacted"` {
		t.Errorf("a write after compaction reads back %v, %v", r, err)
	}
	mustVerifyClose(t, s)
}

// TestCompactFixture: a committed fixture of an older layout (and 4 KiB pages) compacts
// into a file of 16 KiB pages, then opens (and migrates) holding what its
// expected.json says.
func TestCompactFixture(t *testing.T) {
	for _, ver := range []string{"v1", "v2"} {
		t.Run(ver, func(t *testing.T) {
			e := loadFixtureExpectOf(t, ver)
			dir := fixtureDirOf(t, ver, "store")
			rep, err := Compact(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.PageSizeBefore != 4096 || rep.PageSize != storePageSize {
				t.Errorf("compaction report %+v: want the fixture's 4 KiB pages rewritten into %d-byte ones", rep, storePageSize)
			}
			s, err := Open(dir, fixtureStorePass, fixtureOpts(e))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			checkFixtureStore(t, s, e)
			if got := s.db.Info().PageSize; got != storePageSize {
				t.Errorf("the compacted fixture opens with %d-byte pages, want %d", got, storePageSize)
			}
		})
	}
}

// TestCompactRefusesOpenStore: a store another holder has open is not compacted, and
// stays as it was; a directory without a store is named as such.
func TestCompactRefusesOpenStore(t *testing.T) {
	s := mustInit(t, nil)
	if err := s.Put("notes", "a", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(s.Dir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compact(s.Dir(), nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("compacting an open store: %v, want ErrLocked", err)
	}
	if r, err := s.Get("notes", "a"); err != nil || string(r.Value) != "1" {
		t.Errorf("after a refused compaction the store reads %v, %v", r, err)
	}
	s.Close()
	after, err := os.ReadFile(filepath.Join(s.Dir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a refused compaction changed the file")
	}
	if _, err := Compact(t.TempDir(), nil); !errors.Is(err, ErrNoStore) {
		t.Errorf("compacting an empty directory: %v, want ErrNoStore", err)
	}
}

// TestOpenTakesRenamedFile: an Open that waited for the lock of a file that a compaction
// then renamed a new file over opens the new file, not the old one it locked.
func TestOpenTakesRenamedFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Init(dir, testPass, testOpts("dev"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, FileName)
	held, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second}) // as Compact holds it
	if err != nil {
		t.Fatal(err)
	}
	copied, err := bolt.Open(path+compactSuffix, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bolt.Compact(copied, held, 0)
	if err == nil {
		err = copied.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("test-copy"), []byte{1}) })
	}
	if cerr := copied.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	type opened struct {
		s   *Store
		err error
	}
	done := make(chan opened, 1)
	go func() {
		o := testOpts("dev")
		o.LockTimeout = time.Minute
		s, err := Open(dir, testPass, o)
		done <- opened{s, err}
	}()
	// Give the Open time to wait on the held file's lock; the test holds either way.
	time.Sleep(200 * time.Millisecond)
	if err := os.Rename(path+compactSuffix, path); err != nil {
		t.Fatal(err)
	}
	held.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.s.Close()
	var marked bool
	_ = r.s.db.View(func(tx *bolt.Tx) error {
		marked = tx.Bucket(bucketMeta).Get([]byte("test-copy")) != nil
		return nil
	})
	if !marked {
		t.Error("Open kept the file it locked, gone from the directory, instead of the one renamed in")
	}
}
