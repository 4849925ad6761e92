package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/meshsync/meshsync/merkle"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The store layout. Layout 1 (every store before collection tags, testdata/v1 and v2)
// kept envelopes without a tag, one Merkle tree over the whole store, and a collection
// index keyed by a 16-byte hash under the index key. Layout 2 (testdata/v3) tags every
// envelope with its collection (envelope format 2), keeps one tree per tag, and keys the
// collection index by tag and id, so that devices can hold part of the mesh (scope.go).
// Both keep an id index (bucket "ids": record id -> antichain digest, then 8 bytes per
// envelope sequence) and tree nodes down to level 5. Layout 3 replaces the id and
// collection indexes with the record index (items.go) and keeps tree levels 0 to 4: about
// 180 bytes less per record at a million records (docs/perf.md).
//
// migrateLayout moves a layout-1 or layout-2 store to layout 3 in one transaction: it
// reads the old id index; a device opens every untagged envelope and tags it (the
// ciphertext stays as it is: the tag is outside the associated data, so every device
// makes the same bytes of the same envelope); then the record index and the forest are
// built and the old indexes dropped. A blind replica cannot open envelopes: it files
// untagged ones under the zero tag, and tags each when a device sends the record tagged
// (apply.go, tagLegacy). A crash before the commit leaves the store as it was.

var metaLayout = []byte("layout")

// The old indexes, read only by the migration.
var (
	bucketIDs  = []byte("ids")  // record id -> digest of its antichain, then the seqs of its envelopes
	bucketColl = []byte("coll") // collection tag || record id -> nothing
)

const (
	layoutTagged  = 2
	layoutIndexed = 3
	layoutCurrent = layoutIndexed
)

// layoutHook, when set by a test, runs at the end of the layout migration's transaction.
var layoutHook func() error

func (s *Store) migrateLayout() error {
	var layout byte = 1
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaLayout); len(v) == 1 {
			layout = v[0]
		}
		return nil
	})
	switch {
	case layout == layoutCurrent:
		return nil
	case layout > layoutCurrent:
		return fmt.Errorf("%w: store layout %d is newer than this meshsync knows (%d): update meshsync", ErrCorrupt, layout, layoutCurrent)
	}
	err := s.update(func(tx *bolt.Tx) error {
		t := s.newTx(tx)
		old := tx.Bucket(bucketIDs)
		if old == nil {
			return fmt.Errorf("%w: layout %d store without its id index", ErrCorrupt, layout)
		}
		type entry struct {
			id   merkle.ID
			seqs []uint64
		}
		var entries []entry
		err := old.ForEach(func(k, v []byte) error {
			if len(k) != len(merkle.ID{}) || len(v) < 40 || (len(v)-32)%8 != 0 {
				return fmt.Errorf("%w: id index entry %x of %d bytes", ErrCorrupt, k, len(v))
			}
			e := entry{}
			copy(e.id[:], k)
			for p := v[32:]; len(p) > 0; p = p[8:] {
				e.seqs = append(e.seqs, be64(p))
			}
			entries = append(entries, e)
			return nil
		})
		if err != nil {
			return err
		}
		for _, b := range [][]byte{bucketIDs, bucketColl, bucketTree} {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
		}
		for _, b := range [][]byte{bucketTree, bucketItems} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		envs := tx.Bucket(bucketEnv)
		for _, e := range entries {
			set := make([]hashed, 0, len(e.seqs))
			bySeq := map[[32]byte]uint64{}
			for _, seq := range e.seqs {
				raw := envs.Get(u64be(seq))
				if raw == nil {
					return fmt.Errorf("%w: envelope %d of record %x missing", ErrCorrupt, seq, e.id[:6])
				}
				env, err := UnmarshalEnvelope(raw)
				if err != nil {
					return fmt.Errorf("%w: envelope %d: %v", ErrCorrupt, seq, err)
				}
				if !s.keys.blind && env.Tag == (Tag{}) {
					p, err := s.keys.open(env)
					if err != nil {
						return fmt.Errorf("envelope %d: %w", seq, err)
					}
					env.Tag = s.keys.tag(p.Collection)
				}
				h, err := newHashed(env)
				if err != nil {
					return err
				}
				if !bytes.Equal(h.raw, raw) {
					if err := envs.Put(u64be(seq), h.raw); err != nil {
						return err
					}
				}
				bySeq[h.hash] = seq
				set = append(set, h)
			}
			sortByHash(set)
			seqs := make([]uint64, 0, len(set))
			for _, h := range set {
				seqs = append(seqs, bySeq[h.hash])
			}
			tag := tagOf(set)
			if err := t.setEntry(e.id, tag, seqs, idEntry{}, false); err != nil {
				return err
			}
			if err := t.treeUpdate(tag, e.id, nil, antichainDigest(set)); err != nil {
				return err
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(metaLayout, []byte{layoutCurrent}); err != nil {
			return err
		}
		if layoutHook != nil {
			return layoutHook()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuild the record index (store layout %d to %d): %w", layout, layoutCurrent, err)
	}
	return nil
}
