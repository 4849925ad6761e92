package store

import (
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Footprint is where a store's bytes on disk go: each bucket's bytes in use (keys, values
// and page headers) and allocated (whole pages), the envelopes split into their clear
// header and their ciphertext, and the pages free in the file.
type Footprint struct {
	FileBytes int64 // the database file
	PageSize  int
	Records   int64 // records in the Merkle forest
	// Envelopes counts the envelopes held; EnvelopeHeaderBytes is their clear headers
	// (format, id, key epoch, version: everything but the ciphertext) and
	// CiphertextBytes their sealed payloads (value, collection and key, padding, tag,
	// nonce included in neither: it is in the header).
	Envelopes           int64
	EnvelopeHeaderBytes int64
	CiphertextBytes     int64
	// Buckets holds, by bucket name (env, items, tree, local, hist, meta), its keys,
	// the bytes its pages use and the bytes of the pages it holds.
	Buckets map[string]BucketFootprint
	// FreeBytes is the pages of the file free for reuse (and pending release).
	FreeBytes int64
}

// BucketFootprint is one bucket's share of the file.
type BucketFootprint struct {
	Keys       int64
	InuseBytes int64 // used bytes of its branch and leaf pages
	AllocBytes int64 // bytes of the pages it holds
}

// Footprint measures where the store's bytes go (`meshsync bench`). It reads every page
// and every envelope: it costs as much as reading the whole store.
func (h Replication) Footprint() (Footprint, error) {
	s := h.s
	f := Footprint{Buckets: map[string]BucketFootprint{}}
	fi, err := os.Stat(filepath.Join(s.dir, FileName))
	if err != nil {
		return f, fmt.Errorf("footprint: %w", err)
	}
	f.FileBytes = fi.Size()
	f.PageSize = s.db.Info().PageSize
	st := s.db.Stats()
	f.FreeBytes = int64(st.FreePageN+st.PendingPageN) * int64(f.PageSize)
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			b := tx.Bucket(name)
			if b == nil {
				continue
			}
			bs := b.Stats()
			f.Buckets[string(name)] = BucketFootprint{Keys: int64(bs.KeyN),
				InuseBytes: int64(bs.BranchInuse + bs.LeafInuse + bs.InlineBucketInuse),
				AllocBytes: int64(bs.BranchAlloc + bs.LeafAlloc)}
		}
		roots, err := h.Roots()
		if err != nil {
			return err
		}
		for _, r := range roots {
			f.Records += int64(r.Root.Count)
		}
		return tx.Bucket(bucketEnv).ForEach(func(_, raw []byte) error {
			env, err := UnmarshalEnvelope(raw)
			if err != nil {
				return err
			}
			f.Envelopes++
			f.CiphertextBytes += int64(len(env.Ciphertext))
			f.EnvelopeHeaderBytes += int64(len(raw) - len(env.Ciphertext))
			return nil
		})
	})
	if err != nil {
		return f, fmt.Errorf("footprint: %w", err)
	}
	return f, nil
}
