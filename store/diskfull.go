package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// A full disk (or a full quota) makes a commit fail while bbolt writes pages, grows the
// file or syncs it. bbolt rolls the transaction back: the file keeps its last committed
// state, the store stays readable, and the next commit, once there is space again, writes
// the same pages anew. So a full disk needs no reopening; it only needs a clear error.
//
// bbolt reports some of these errors as text only ("file resize error: no space left on
// device"), so the mapping also matches the errno's message.
var diskFullErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT}

// remapMu serialises remap across stores (it is rare enough to share one lock).
var remapMu sync.Mutex

// isDiskFull reports whether err comes from a full disk or quota.
func isDiskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrDiskFull) {
		return true
	}
	msg := err.Error()
	for _, e := range diskFullErrnos {
		if errors.Is(err, e) || strings.Contains(msg, e.Error()) {
			return true
		}
	}
	return false
}

// commitFailed turns the error of a failed read-write transaction into the store's own:
// a full disk becomes ErrDiskFull with what to do about it. When bbolt lost its memory map
// (a failed grow that could not map the file again), the database file is reopened so that
// the store keeps working; see remap. Other errors pass through unchanged.
func (s *Store) commitFailed(err error) error {
	if err == nil {
		s.commits.Add(1)
		return nil
	}
	if errors.Is(err, bolterrors.ErrInvalidMapping) || strings.Contains(err.Error(), "mmap") {
		if rerr := s.remap(); rerr != nil {
			err = fmt.Errorf("%w (reopening the database file also failed: %v)", err, rerr)
		}
	}
	if isDiskFull(err) && !errors.Is(err, ErrDiskFull) {
		return fmt.Errorf("%w: nothing of this write was saved and the store is still readable; "+
			"free space on the disk that holds %s, then write again: %w", ErrDiskFull, s.dir, err)
	}
	return err
}

// remap reopens the bbolt file after bbolt lost its memory map: a failed mmap in a commit
// leaves every later transaction failing with bolterrors.ErrInvalidMapping until the file
// is opened again. The writer lock is free here (the failed transaction has ended), the
// file holds its last committed state, and readers fail fast rather than block on the
// broken handle.
//
// Caveat: Store.db is a plain field, so a reader that loads it at the same instant races
// with the swap. This path runs only after the kernel refused to map the file (out of
// address space), where the store has already failed.
func (s *Store) remap() error {
	remapMu.Lock()
	defer remapMu.Unlock()
	if probe := s.db.View(func(*bolt.Tx) error { return nil }); !errors.Is(probe, bolterrors.ErrInvalidMapping) {
		return nil // still mapped (or another goroutine reopened it): nothing to repair
	}
	_ = s.db.Close()
	db, err := openDB(filepath.Join(s.dir, FileName), s.opts)
	if err != nil {
		return err
	}
	s.db = db
	return nil
}

// update is bolt's Update for the store's own bookkeeping writes, with a full disk (and a
// lost memory map) handled as for record writes (see commitFailed).
func (s *Store) update(fn func(*bolt.Tx) error) error {
	return s.commitFailed(s.db.Update(fn))
}
