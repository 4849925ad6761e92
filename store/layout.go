package store

import (
	"bytes"
	"fmt"

	"github.com/meshsync/meshsync/merkle"
	bolt "go.etcd.io/bbolt"
)

// The store layout. Layout 1 (every store before collection tags, testdata/v1 and v2)
// kept envelopes without a tag, one Merkle tree over the whole store, and a collection
// index keyed by a 16-byte hash under the index key. Layout 2 tags every envelope with its
// collection (envelope format 2), keeps one tree per tag, and keys the collection index
// by tag and id (summary.go), so that devices can hold part of the mesh (scope.go).
//
// migrateLayout moves a layout-1 store to layout 2 in one transaction: a device opens
// every envelope and tags it (the ciphertext stays as it is: the tag is outside the
// associated data, so every device makes the same bytes of the same envelope), then the
// id index (digests and envelope order change with the bytes), the collection index and
// the forest are rebuilt. A blind replica cannot open envelopes: it files them under the
// zero tag, and tags each when a device sends the record tagged (apply.go, tagLegacy).
// A crash before the commit leaves the layout-1 store as it was.

var metaLayout = []byte("layout")

const layoutTagged = 2

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
	case layout == layoutTagged:
		return nil
	case layout > layoutTagged:
		return fmt.Errorf("%w: store layout %d is newer than this meshsync knows (%d): update meshsync", ErrCorrupt, layout, layoutTagged)
	}
	err := s.update(func(tx *bolt.Tx) error {
		t := s.newTx(tx)
		for _, b := range [][]byte{bucketTree, bucketColl} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		envs := tx.Bucket(bucketEnv)
		var ids []merkle.ID
		c := tx.Bucket(bucketIDs).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			var id merkle.ID
			copy(id[:], k)
			ids = append(ids, id)
		}
		for _, id := range ids {
			entry, _, err := t.loadEntry(id)
			if err != nil {
				return err
			}
			set := make([]hashed, 0, len(entry.seqs))
			bySeq := map[[32]byte]uint64{}
			for _, seq := range entry.seqs {
				raw := envs.Get(u64be(seq))
				if raw == nil {
					return fmt.Errorf("%w: envelope %d of record %x missing", ErrCorrupt, seq, id[:6])
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
			next := idEntry{digest: antichainDigest(set)}
			for _, h := range set {
				next.seqs = append(next.seqs, bySeq[h.hash])
			}
			if t.ids == nil {
				t.ids = map[merkle.ID][]byte{}
			}
			t.ids[id] = next.marshal()
			tag := tagOf(set)
			t.indexCollection(tag, id)
			if err := t.treeUpdate(tag, id, nil, next.digest); err != nil {
				return err
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(metaLayout, []byte{layoutTagged}); err != nil {
			return err
		}
		if layoutHook != nil {
			return layoutHook()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tag records with their collections (store layout %d): %w", layoutTagged, err)
	}
	return nil
}
