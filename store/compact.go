package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Compaction. bbolt never gives pages back to the file system: a page a commit freed stays
// in the file, on the free list, until a later commit reuses it, and bbolt writes the whole
// free list at every commit. After an initial sync (random ids inserted in large batches)
// a store holds many free pages and half-filled index pages. Compact copies the live
// keys, in key order with pages packed full, into a new file beside the store's and
// renames it over the old one: the same keys, values and bucket sequences, so the same
// records, Merkle roots and local state, in fewer pages.
//
// It runs on a closed store (it takes the file lock as Open does: a running daemon makes
// it fail with ErrLocked) and needs no passphrase: it copies sealed bytes as they are.
// A crash before the rename leaves the old file in place and a partial copy named
// FileName + compactSuffix, which the next Compact removes; the rename itself is atomic.

const compactSuffix = ".compact"

// compactTxBytes bounds the key and value bytes copied per transaction of a compaction,
// so that a large store does not build one transaction of its whole size in memory.
const compactTxBytes = 64 << 20

// CompactReport is what Compact did to a store file.
type CompactReport struct {
	BytesBefore int64 `json:"bytes_before"`
	BytesAfter  int64 `json:"bytes_after"`
	// FreePagesBefore is the pages the old file held free (or pending release).
	FreePagesBefore int `json:"free_pages_before"`
	// PageSizeBefore is the old file's page size, PageSize the new one's (16 KiB, whatever
	// the old file had).
	PageSizeBefore int `json:"page_size_before"`
	PageSize       int `json:"page_size"`
	// Keys is the keys copied, over every bucket.
	Keys int64 `json:"keys"`
}

// Compact rewrites the store file in dir into a new file without its free pages, with its
// pages packed full, and puts the new file in place of the old one (see above). The store
// must not be open: Compact fails with ErrLocked while another process holds it, and
// with ErrNoStore when dir holds none. On a full disk it fails with ErrDiskFull and
// leaves the store as it was.
func Compact(dir string, opts *Options) (CompactReport, error) {
	var rep CompactReport
	o := opts.withDefaults()
	path := filepath.Join(dir, FileName)
	tmp := path + compactSuffix
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("compact store %s: %w", dir, ErrNoStore)
	} else if err != nil {
		return rep, fmt.Errorf("compact store %s: %w", dir, err)
	}
	rep.BytesBefore = fi.Size()
	src, err := openDB(path, o)
	if err != nil {
		return rep, fmt.Errorf("compact: %w", err)
	}
	defer src.Close()
	rep.PageSizeBefore = src.Info().PageSize
	st := src.Stats()
	rep.FreePagesBefore = st.FreePageN + st.PendingPageN
	before, err := bucketKeys(src)
	if err != nil {
		return rep, fmt.Errorf("compact store %s: %w", dir, err)
	}
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("compact store %s: remove an earlier partial copy: %w", dir, err)
	}
	fail := func(err error) (CompactReport, error) {
		os.Remove(tmp)
		if isDiskFull(err) {
			err = fmt.Errorf("%w: free space on the disk that holds %s (compacting needs room for a second copy of the store): %v", ErrDiskFull, dir, err)
		}
		return rep, fmt.Errorf("compact store %s: %w", dir, err)
	}
	// The copy is synced once, at its end: until the rename it is nobody's store.
	dopts := boltOptions(o)
	dopts.NoSync = true
	dopts.PageSize = storePageSize // bulk.go
	rep.PageSize = storePageSize
	dst, err := bolt.Open(tmp, 0o600, dopts)
	if err != nil {
		return fail(err)
	}
	if err := bolt.Compact(dst, src, compactTxBytes); err != nil {
		dst.Close()
		return fail(err)
	}
	after, err := bucketKeys(dst)
	if err == nil {
		err = sameKeys(before, after)
	}
	var used int64
	if err == nil {
		err = dst.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	}
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	// bbolt grows a file ahead of its use, by up to 16 MiB at a time; the copy's pages
	// end at used, and the next commit grows it again when it needs to.
	if err == nil {
		err = truncateSynced(tmp, used)
	}
	if err != nil {
		return fail(err)
	}
	for _, n := range after {
		rep.Keys += n
	}
	// The old file stays open, and locked, until the new one is in place: an Open that
	// waited for the lock finds the new file (openDB checks that it locked the file the
	// path names).
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		return rep, fmt.Errorf("compact store %s: %w", dir, err)
	}
	if fi, err := os.Stat(path); err == nil {
		rep.BytesAfter = fi.Size()
	}
	return rep, nil
}

// bucketKeys counts the keys of each top-level bucket of db.
func bucketKeys(db *bolt.DB) (map[string]int64, error) {
	n := map[string]int64{}
	err := db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil || tx.Bucket(bucketMeta).Get(metaHeader) == nil {
			return fmt.Errorf("%w: no header", ErrCorrupt)
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			n[string(name)] = int64(b.Stats().KeyN)
			return nil
		})
	})
	return n, err
}

// sameKeys reports a copy whose buckets do not hold as many keys as the original's.
func sameKeys(want, got map[string]int64) error {
	for name, n := range want {
		if got[name] != n {
			return fmt.Errorf("the copy's bucket %q holds %d keys, the store's %d", name, got[name], n)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("the copy holds %d buckets, the store %d", len(got), len(want))
	}
	return nil
}

// truncateSynced cuts the file at path to n bytes, durably.
func truncateSynced(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() <= n {
		return err
	}
	if err := f.Truncate(n); err != nil {
		return fmt.Errorf("truncate the copy: %w", err)
	}
	return f.Sync()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
