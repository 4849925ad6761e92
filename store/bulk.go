package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshsync/meshsync/internal/storehook"
	"github.com/meshsync/meshsync/merkle"
)

// The bulk layout. Almost all of a store's bytes are envelopes: they go under their local
// sequence numbers (bucketEnv), appended in order with pages packed full (appendEnvs). A
// small index from record id to the antichain digest and the sequences beside it
// (bucketIDs, idEntry) is buffered by the transaction and written in key order at its end
// (putIDs): the ids are uniform hashes, and bbolt splits nodes only at commit, so random
// inserts into one node would cost a copy of the whole node each. bulkFile writes the same
// layout and nothing else, for the bench (internal/storehook).

// boltOptions are the bbolt options of a store file.
func boltOptions(o Options) *bolt.Options {
	// The free list is synced (bbolt's default): without it every open walks every page,
	// which costs unlock time and resident memory in proportion to the file.
	//
	// bbolt writes the whole free list, sorted, at every commit. The array free list keeps
	// it sorted and merges it in one pass; the hashmap one rebuilds and sorts it from its
	// span maps each time (67 % of a push's CPU at 1M records, docs/perf.md). The map wins
	// only at allocating runs of many pages in a fragmented file, which a store rarely does:
	// its pages are single leaves and branches. The type is not part of the file.
	return &bolt.Options{Timeout: o.LockTimeout, NoSync: o.NoSync, FreelistType: bolt.FreelistArrayType}
}

// compactPageSize is the page size of a compacted store file (compact.go). An envelope of
// a 1 KiB value is about 1.2 KiB: a 4 KiB page holds three (0.90 full), a 16 KiB one
// thirteen (0.98). A new store keeps bbolt's default, the OS page size (4 KiB on most
// machines): its initial sync inserts uniform ids in large transactions, each rewriting
// a larger share of the index the larger its pages, and at 1M records a 16 KiB file held
// 278 B of free pages per record against 97 with 4 KiB, more than the fill it saved
// (docs/perf.md). bbolt reads a file's page size from its meta page.
const compactPageSize = 16 << 10

// appendEnvs returns the envelope bucket of tx, set up for appends in sequence order.
func appendEnvs(tx *bolt.Tx) *bolt.Bucket {
	b := tx.Bucket(bucketEnv)
	b.FillPercent = 1 // appended in sequence order: pack pages full
	return b
}

// marshal encodes e as the ids bucket holds it: the digest, then 8 bytes per sequence.
func (e idEntry) marshal() []byte {
	b := make([]byte, 32, 32+8*len(e.seqs))
	copy(b, e.digest[:])
	for _, seq := range e.seqs {
		b = append(b, u64be(seq)...)
	}
	return b
}

// putIDs writes encoded index entries into the ids bucket in key order.
func putIDs(b *bolt.Bucket, ids map[merkle.ID][]byte) error {
	for _, id := range slices.SortedFunc(maps.Keys(ids), func(a, b merkle.ID) int { return bytes.Compare(a[:], b[:]) }) {
		if err := b.Put(id[:], ids[id]); err != nil {
			return err
		}
	}
	return nil
}

// bulkFile is storehook.BulkFile: a bare bbolt file with a store's options and buckets.
type bulkFile struct {
	db  *bolt.DB
	seq uint64
}

func init() {
	storehook.OpenBulkFile = func(path string) (storehook.BulkFile, error) {
		f, err := openBulkFile(path)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
}

func openBulkFile(path string) (*bulkFile, error) {
	db, err := bolt.Open(path, 0o600, boltOptions(Options{LockTimeout: time.Second}))
	if err != nil {
		return nil, fmt.Errorf("open bulk file: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open bulk file: %w", err)
	}
	return &bulkFile{db: db}, nil
}

// Write appends envs under fresh sequence numbers, each with an index entry whose id
// stands in for the antichain digest (the same size), in one committed transaction. The
// id index pages are packed as an initial sync in record-id order packs them.
func (f *bulkFile) Write(envs [][]byte, ids []merkle.ID) error {
	if len(envs) != len(ids) {
		return fmt.Errorf("bulk write: %d envelopes, %d ids", len(envs), len(ids))
	}
	return f.db.Update(func(tx *bolt.Tx) error {
		env := appendEnvs(tx)
		idx := make(map[merkle.ID][]byte, len(ids))
		for i, raw := range envs {
			f.seq++
			if err := env.Put(u64be(f.seq), raw); err != nil {
				return err
			}
			idx[ids[i]] = idEntry{digest: merkle.Digest(ids[i]), seqs: []uint64{f.seq}}.marshal()
		}
		ids := tx.Bucket(bucketIDs)
		ids.FillPercent = appendFill // as an initial sync in record-id order writes it (ordered.go)
		return putIDs(ids, idx)
	})
}

func (f *bulkFile) Close() error { return f.db.Close() }
