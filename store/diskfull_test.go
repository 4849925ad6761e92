package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDiskFullMapping checks which errors become ErrDiskFull: the errnos themselves,
// wrapped, and bbolt's text-only wrapping of a failed grow.
func TestDiskFullMapping(t *testing.T) {
	s := &Store{dir: "/data/meshsync"}
	for _, tc := range []struct {
		err  error
		full bool
	}{
		{syscall.ENOSPC, true},
		{syscall.EDQUOT, true},
		{&os.PathError{Op: "write", Path: "/data/meshsync/meshsync.db", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("file resize error: %s", &os.PathError{Op: "truncate", Path: "x", Err: syscall.ENOSPC}), true},
		{syscall.EIO, false},
		{ErrInvalid, false},
		{fmt.Errorf("%w: key too long", ErrInvalid), false},
	} {
		got := s.commitFailed(tc.err)
		if errors.Is(got, ErrDiskFull) != tc.full {
			t.Errorf("%v: ErrDiskFull %v, want %v", tc.err, !tc.full, tc.full)
		}
		if !errors.Is(got, tc.err) && !strings.Contains(got.Error(), tc.err.Error()) {
			t.Errorf("%v: the cause is lost: %v", tc.err, got)
		}
		if tc.full && (!strings.Contains(got.Error(), "disk full") || !strings.Contains(got.Error(), "free space on the disk that holds /data/meshsync")) {
			t.Errorf("%v: message does not say disk full and what to do: %v", tc.err, got)
		}
		if !tc.full && got != tc.err {
			t.Errorf("%v: changed to %v", tc.err, got)
		}
	}
	if s.commitFailed(nil) != nil {
		t.Error("nil error mapped to non-nil")
	}
}

// TestDiskFull fills a real small file system (a 4 MiB tmpfs, and an 8 MiB ext4 image on
// a loop device; root only, skipped otherwise) with writes: Put fails with ErrDiskFull
// saying what to do, the store stays readable and verifies, a write that hit the full disk
// left nothing behind, and once space is freed writes succeed again on the same open store.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts file systems")
	}
	t.Run("tmpfs", func(t *testing.T) {
		mnt := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
		fillDisk(t, mnt)
	})
	t.Run("ext4", func(t *testing.T) {
		if _, err := exec.LookPath("mkfs.ext4"); err != nil {
			t.Skip("no mkfs.ext4")
		}
		dir := t.TempDir()
		img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
		if err := os.Mkdir(mnt, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img, "8M").CombinedOutput(); err != nil {
			t.Skipf("mkfs.ext4: %v %s", err, out)
		}
		if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
			t.Skipf("cannot mount an ext4 image on a loop device (needs root): %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
		fillDisk(t, mnt)
	})
}

// fillDisk runs the disk-full scenario on the file system mounted at mnt.
func fillDisk(t *testing.T, mnt string) {
	// Ballast to free later: space comes back the way a person would free it.
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Init(filepath.Join(mnt, "s"), testPass, testOpts("full"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	value := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat(fmt.Sprint(i%10), 60000)))
	}
	var acked []string
	var full error
	for i := 0; i < 10000 && full == nil; i++ {
		if i%7 == 6 { // a batch of 10 now and then
			keys := make([]string, 10)
			err := s.Update(func(t *Tx) error {
				for j := range keys {
					keys[j] = fmt.Sprintf("batch%d-%d", i, j)
					if err := t.Put("c", keys[j], value(i)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				full = err
				for _, k := range keys { // all or nothing
					if _, gerr := s.Get("c", k); !errors.Is(gerr, ErrNotFound) {
						t.Errorf("failed batch left %s behind (%v)", k, gerr)
					}
				}
				break
			}
			acked = append(acked, keys...)
			continue
		}
		key := fmt.Sprint("k", i)
		if err := s.Put("c", key, value(i)); err != nil {
			full = err
			if _, gerr := s.Get("c", key); !errors.Is(gerr, ErrNotFound) {
				t.Errorf("failed put left %s behind (%v)", key, gerr)
			}
			break
		}
		acked = append(acked, key)
	}
	if full == nil {
		t.Fatal("the file system never filled up")
	}
	t.Logf("disk full after %d acknowledged writes: %v", len(acked), full)
	if !errors.Is(full, ErrDiskFull) {
		t.Fatalf("error is not ErrDiskFull: %v", full)
	}
	if msg := full.Error(); !strings.Contains(msg, "disk full") || !strings.Contains(msg, "free space") {
		t.Errorf("error does not say disk full and what to do: %v", full)
	}

	before := len(acked)
	// Still full: more writes either fit in what is left or fail the same way; nothing
	// else goes wrong.
	failed := 0
	for i := 0; i < 2000 && failed < 3; i++ {
		key := fmt.Sprint("again", i)
		switch err := s.Put("c", key, value(i)); {
		case err == nil:
			acked = append(acked, key)
		case errors.Is(err, ErrDiskFull):
			failed++
		default:
			t.Fatalf("write %d on a full disk: %v", i, err)
		}
	}
	if failed == 0 {
		t.Fatal("2000 more writes fitted on the full disk")
	}
	t.Logf("then %d more writes fitted in freed pages before 3 more failed", len(acked)-before)
	checkReadable := func(when string) {
		t.Helper()
		rep, err := s.Verify()
		if err != nil || !rep.OK() {
			t.Fatalf("%s: verify: %v %v", when, err, rep)
		}
		for _, k := range acked {
			if _, err := s.Get("c", k); err != nil {
				t.Fatalf("%s: acknowledged %s: %v", when, k, err)
			}
		}
		recs, err := s.List("c", "")
		if err != nil || len(recs) != len(acked) {
			t.Fatalf("%s: list: %d records (%v), want %d", when, len(recs), err, len(acked))
		}
	}
	checkReadable("disk full")

	// Space comes back: the same open store writes again.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ { // 300 KB: the ballast freed 1 MiB
		key := fmt.Sprint("after", i)
		if err := s.Put("c", key, value(i)); err != nil {
			t.Fatalf("write %d after space was freed: %v", i, err)
		}
		acked = append(acked, key)
	}
	checkReadable("space freed")
	s.Close()
	s2, err := Open(filepath.Join(mnt, "s"), testPass, nil)
	if err != nil {
		t.Fatal(err)
	}
	s = s2
	checkReadable("reopened")
}
