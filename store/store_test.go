package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshsync/meshsync/resolve"
)

func TestPutGetListDelete(t *testing.T) {
	s := mustInit(t, nil)
	if err := s.Put("notes", "a", []byte(`{"title": "hello", "n": 1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("notes", "b", []byte(`[1,2]`)); err != nil {
		t.Fatal(err)
	}
	if err := putRaw(s, "blobs", "x", []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Get("notes", "a")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(rec.Value), `{"n":1,"title":"hello"}`; got != want {
		t.Errorf("Get = %s, want canonical %s", got, want)
	}
	if rec.Kind != resolve.KindJSON || rec.Version.Device != s.Device().ID {
		t.Errorf("record kind %v device %v", rec.Kind, rec.Version.Device)
	}
	raw, err := s.Get("blobs", "x")
	if err != nil || raw.Kind != resolve.KindRaw || !bytes.Equal(raw.Value, []byte{0, 1, 2}) {
		t.Fatalf("raw get = %+v, %v", raw, err)
	}
	list, err := s.List("notes", "")
	if err != nil || len(list) != 2 || list[0].Key != "a" || list[1].Key != "b" {
		t.Fatalf("List notes = %+v, %v", list, err)
	}
	all, err := s.List("", "")
	if err != nil || len(all) != 3 {
		t.Fatalf("List all = %d records, %v", len(all), err)
	}
	pre, _ := s.List("notes", "b")
	if len(pre) != 1 || pre[0].Key != "b" {
		t.Fatalf("prefix list = %+v", pre)
	}
	// Overwrite, then delete.
	if err := s.Put("notes", "a", []byte(`{"title":"bye"}`)); err != nil {
		t.Fatal(err)
	}
	rec, _ = s.Get("notes", "a")
	if string(rec.Value) != `{"title":"bye"}` || rec.Version.VV[s.Device().ID] != 2 {
		t.Errorf("after overwrite: %s vv=%v", rec.Value, rec.Version.VV)
	}
	if err := s.Delete("notes", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("notes", "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete("notes", "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete("notes", "never"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete missing: %v, want ErrNotFound", err)
	}
	list, _ = s.List("notes", "")
	if len(list) != 1 {
		t.Errorf("deleted record still listed: %+v", list)
	}
	// A write after a delete brings the record back with a higher version.
	if err := s.Put("notes", "a", []byte(`{"again":true}`)); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Get("notes", "a"); err != nil || rec.Version.VV[s.Device().ID] != 4 {
		t.Errorf("re-put: %+v %v", rec, err)
	}
}

func TestBadInput(t *testing.T) {
	s := mustInit(t, nil)
	cases := []struct {
		name string
		err  error
		do   func() error
	}{
		{"not json", ErrInvalid, func() error { return s.Put("c", "k", []byte(`{bad`)) }},
		{"empty collection", ErrInvalid, func() error { return s.Put("", "k", []byte(`1`)) }},
		{"empty key", ErrInvalid, func() error { return s.Put("c", "", []byte(`1`)) }},
		{"reserved", ErrReserved, func() error { return s.Put("_policy", "k", []byte(`1`)) }},
		{"long key", ErrInvalid, func() error { return s.Put("c", string(make([]byte, MaxNameSize+1)), []byte(`1`)) }},
		{"bad utf8", ErrInvalid, func() error { return s.Put("c", "\xff", []byte(`1`)) }},
		{"too large", ErrTooLarge, func() error { return putRaw(s, "c", "k", make([]byte, MaxValueSize+1)) }},
	}
	for _, c := range cases {
		if err := c.do(); !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		}
	}
	if l, _ := s.List("", ""); len(l) != 0 {
		t.Errorf("bad input left records behind: %+v", l)
	}
}

func TestWrongPassphraseAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s, err := Init(dir, testPass, testOpts("laptop"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("c", "k", []byte(`"v"`)); err != nil {
		t.Fatal(err)
	}
	dev := s.Device()
	s.Close()
	if _, err := Init(dir, testPass, testOpts("x")); !errors.Is(err, ErrExists) {
		t.Errorf("Init over a store: %v, want ErrExists", err)
	}
	_, err = Open(dir, []byte("wrong"), nil)
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Open with wrong passphrase: %v", err)
	}
	if want := "wrong passphrase"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none"), testPass, nil); !errors.Is(err, ErrNoStore) {
		t.Errorf("Open missing: %v", err)
	}
	s, err = Open(dir, testPass, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, s)
	if s.Device() != dev {
		t.Errorf("device changed across reopen: %v vs %v", s.Device(), dev)
	}
	if rec, err := s.Get("c", "k"); err != nil || string(rec.Value) != `"v"` {
		t.Errorf("after reopen: %v %v", rec, err)
	}
	// A second opener is told who holds the store.
	if _, err := Open(dir, testPass, &Options{LockTimeout: 50e6}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	} else if !bytes.Contains([]byte(err.Error()), []byte(fmt.Sprint(os.Getpid()))) {
		t.Errorf("lock error %q does not name the process", err)
	}
}

func TestChangePassphrase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s, err := Init(dir, testPass, testOpts("a"))
	if err != nil {
		t.Fatal(err)
	}
	s.Put("c", "k", []byte(`1`))
	var before []byte
	s.Replication().Since(0, 0, func(_ uint64, raw []byte) error { before = bytes.Clone(raw); return nil })
	if err := s.Keys().ChangePassphrase([]byte("nope"), []byte("new"), nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("ChangePassphrase with wrong old: %v", err)
	}
	if err := s.Keys().ChangePassphrase(testPass, []byte("new pass"), nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir, testPass, nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("old passphrase still opens: %v", err)
	}
	s, err = Open(dir, []byte("new pass"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, s)
	var after []byte
	s.Replication().Since(0, 0, func(_ uint64, raw []byte) error { after = bytes.Clone(raw); return nil })
	if !bytes.Equal(before, after) {
		t.Error("changing the passphrase re-encrypted records")
	}
}

func TestKDFFloor(t *testing.T) {
	old := kdfFloor
	kdfFloor = DefaultKDF
	defer func() { kdfFloor = old }()
	dir := filepath.Join(t.TempDir(), "s")
	if _, err := Init(dir, testPass, &Options{KDF: KDFParams{Time: 1, Memory: 1024, Threads: 1}}); !errors.Is(err, ErrWeakKDF) {
		t.Fatalf("Init below the floor: %v", err)
	}
	// A store made with weak parameters (as if someone edited the header) is refused.
	kdfFloor = testKDF
	s, err := Init(dir, testPass, testOpts("a"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	kdfFloor = DefaultKDF
	if _, err := Open(dir, testPass, nil); !errors.Is(err, ErrWeakKDF) {
		t.Errorf("Open below the floor: %v, want ErrWeakKDF", err)
	}
}

func TestHeaderTamper(t *testing.T) {
	h, err := newHeader(secrets{root: make([]byte, meshKeySize), local: make([]byte, localSecretSize)}, testPass, testKDF)
	if err != nil {
		t.Fatal(err)
	}
	b := h.marshal()
	// Raising the memory cost in the header (authenticated) makes the unwrap fail.
	for _, i := range []int{len(headerPrefix) + 5, len(headerPrefix) + 12, len(b) - 1} {
		bad := bytes.Clone(b)
		bad[i] ^= 1
		h2, err := parseHeader(bad)
		if err != nil {
			continue
		}
		if _, err := h2.unwrap(testPass); err == nil {
			t.Errorf("flipping header byte %d still unwraps", i)
		}
	}
}

func TestSubscribe(t *testing.T) {
	s := mustInit(t, nil)
	sub := s.Subscribe(2)
	s.Put("c", "1", []byte(`1`))
	s.Put("c", "2", []byte(`2`))
	s.Put("c", "3", []byte(`3`))
	c1, c2 := <-sub.C, <-sub.C
	if c1.Key != "1" || c2.Key != "2" || !c1.Local {
		t.Errorf("changes %+v %+v", c1, c2)
	}
	if sub.Missed() != 1 {
		t.Errorf("missed = %d, want 1", sub.Missed())
	}
	sub.Close()
	sub.Close()
	if _, ok := <-sub.C; ok {
		t.Error("channel open after Close")
	}
	sub2 := s.Subscribe(0)
	s.Close()
	if _, ok := <-sub2.C; ok {
		t.Error("subscription open after store Close")
	}
}

func TestCanaryNotOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s, err := Init(dir, testPass, testOpts("canary-device-name-7f3a"))
	if err != nil {
		t.Fatal(err)
	}
	canaries := []string{"canary-collection-91ac", "canary-key-c0ffee", "canary-value-deadbeef", "canary-raw-5b1d", "canary-device-name-7f3a"}
	for i := 0; i < 50; i++ {
		s.Put(canaries[0], fmt.Sprintf("%s-%d", canaries[1], i), []byte(fmt.Sprintf(`{"secret":"%s-%d"}`, canaries[2], i)))
	}
	putRaw(s, canaries[0], "raw", []byte(canaries[3]))
	s.Delete(canaries[0], canaries[1]+"-3")
	var backup bytes.Buffer
	if _, err := s.Export(&backup, []byte("backup pass"), &ExportOptions{WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	mesh := s.keys.mesh
	s.Close()
	db, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"database": db, "backup": backup.Bytes()} {
		for _, c := range canaries {
			if bytes.Contains(data, []byte(c)) {
				t.Errorf("%s file contains canary %q in clear", name, c)
			}
		}
		if bytes.Contains(data, mesh) || bytes.Contains(data, testPass) {
			t.Errorf("%s file contains the mesh key or passphrase", name)
		}
	}
}

// TestListSeesOwnWrites: a List inside an Update sees the transaction's own writes.
func TestListSeesOwnWrites(t *testing.T) {
	s := mustInit(t, nil)
	err := s.Update(func(tx *Tx) error {
		for i := 0; i < 5; i++ {
			if err := tx.Put("c", fmt.Sprint(i), []byte(`1`)); err != nil {
				return err
			}
		}
		l, err := tx.List("c", "")
		if err != nil || len(l) != 5 {
			return fmt.Errorf("list inside the transaction: %d records, %v", len(l), err)
		}
		return tx.Put("c", "after", []byte(`2`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List("c", ""); len(l) != 6 {
		t.Errorf("after commit: %d records", len(l))
	}
}
