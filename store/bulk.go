package store

import (
	"bytes"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshsync/meshsync/internal/storehook"
	"github.com/meshsync/meshsync/merkle"
)

// The bulk layout. Almost all of a store's bytes are envelopes: they go under their local
// sequence numbers (bucketEnv), appended in order with pages packed full (appendEnvs). A
// small record index (items.go: leaves of records by id prefix and collection) is
// buffered by the transaction and written in key order at its end: the ids are uniform
// hashes, and bbolt splits nodes only at commit, so random inserts into one node would
// cost a copy of the whole node each. bulkFile writes the same layout and nothing else,
// for the bench (internal/storehook).

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
	//
	// A new file gets pages of storePageSize; bbolt reads an existing file's page size from
	// its meta page, so older files keep theirs.
	//
	// The map starts at initialMmapSize: bbolt otherwise maps the file anew at every
	// doubling of its size, copying every value of the open write transaction out of the
	// old map first (16 times in a million-record initial sync, up to 16 MiB each time),
	// and a remap waits for every read transaction to end.
	return &bolt.Options{Timeout: o.LockTimeout, NoSync: o.NoSync, FreelistType: bolt.FreelistArrayType, PageSize: storePageSize, InitialMmapSize: initialMmapSize}
}

// initialMmapSize is the address space a store file is mapped with from its open: 2 GiB
// where that costs nothing (64-bit, and not Windows, where bbolt grows the file to its map
// size); bbolt's own doubling elsewhere.
var initialMmapSize = func() int {
	if strconv.IntSize == 64 && runtime.GOOS != "windows" {
		return 2 << 30
	}
	return 0
}()

// storePageSize is the page size of a new store file, and of a compacted one (compact.go).
// An envelope of a 1 KiB value is about 1.2 KiB: a 4 KiB page holds three (0.90 full), a
// 16 KiB one thirteen (0.98). With 4 KiB pages a store lost about 110 bytes per record to
// the envelopes' page fill (docs/perf.md). The larger pages cost each commit more bytes to
// write (a push rewrites one page per bucket it touches and per tree level); the initial
// sync, in record-id order, appends and leaves few free pages whatever their size.
const storePageSize = 16 << 10

// storeAllocSize is how far ahead of its pages bbolt grows the file (its default is 16
// MiB), and so the most the file holds that it does not use yet. Each growth costs a
// truncate and an fsync. The commits of an initial sync (about 80 of 15 MB at a million
// records) each grow the file once whatever this size; small commits (pushes) grow it once
// per MiB they add. At 4 MiB the unused tail was up to 4 bytes of a million-record
// store's 1,290 per record; at 1 MiB, 0.1-0.3 measured, and the sync took as long.
const storeAllocSize = 1 << 20

// appendEnvs returns the envelope bucket of tx, set up for appends in sequence order.
func appendEnvs(tx *bolt.Tx) *bolt.Bucket {
	b := tx.Bucket(bucketEnv)
	b.FillPercent = 1 // appended in sequence order: pack pages full
	return b
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
	db.AllocSize = storeAllocSize
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

// Write appends envs under fresh sequence numbers and indexes them under one collection
// tag, in one committed transaction. The leaves are written in key order and packed as
// an initial sync in record-id order packs them.
func (f *bulkFile) Write(envs [][]byte, ids []merkle.ID) error {
	if len(envs) != len(ids) {
		return fmt.Errorf("bulk write: %d envelopes, %d ids", len(envs), len(ids))
	}
	return f.db.Update(func(tx *bolt.Tx) error {
		env := appendEnvs(tx)
		leaves := map[leafKey]*leaf{}
		for i, raw := range envs {
			f.seq++
			if err := env.Put(u64be(f.seq), raw); err != nil {
				return err
			}
			k := leafKeyOf(ids[i], Tag{1})
			l := leaves[k]
			if l == nil {
				if v := tx.Bucket(bucketItems).Get(k[:]); v != nil {
					var err error
					if l, err = unmarshalLeaf(v); err != nil {
						return err
					}
				} else {
					l = &leaf{}
				}
				leaves[k] = l
			}
			it := leafItem{seqs: []uint64{f.seq}}
			copy(it.suffix[:], ids[i][leafPrefix:])
			j, _ := slices.BinarySearchFunc(l.items, it, func(a, b leafItem) int { return bytes.Compare(a.suffix[:], b.suffix[:]) })
			l.items = slices.Insert(l.items, j, it)
		}
		b := tx.Bucket(bucketItems)
		b.FillPercent = appendFill // as an initial sync in record-id order writes it (ordered.go)
		for _, k := range slices.SortedFunc(maps.Keys(leaves), func(a, b leafKey) int { return bytes.Compare(a[:], b[:]) }) {
			if err := b.Put(k[:], leaves[k].marshal()); err != nil {
				return err
			}
		}
		return nil
	})
}

func (f *bulkFile) Close() error { return f.db.Close() }
