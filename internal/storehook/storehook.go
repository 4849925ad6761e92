// Package storehook hands meshsync's own tools pieces of package store that are not its
// public API. Package store sets every hook when it initializes, so a program that imports
// store (directly or through node) finds them set.
//
// # Usage
//
//	f, err := storehook.OpenBulkFile(filepath.Join(dir, "limit.db"))
//	…
//	err = f.Write(envelopes, ids) // one committed transaction, in the store's layout
//
// # Caveats
//
// The hooks are for measurements and tools inside this module; nothing here is stable.
package storehook

import "github.com/meshsync/meshsync/merkle"

// BulkFile is a bare bbolt file written in a store's bulk layout and nothing else: the
// envelopes under their local sequence numbers, appended in order with pages packed full,
// and the record id index written in key order at the end of each transaction, with a
// store's bbolt options. No envelope is parsed or checked, and no Merkle tree is kept: it
// is the ceiling of what bbolt does for a store during a bulk sync.
type BulkFile interface {
	// Write appends envs, whose record ids are ids (one each), in one committed
	// transaction. Each id stands in for its record's antichain digest in the index.
	Write(envs [][]byte, ids []merkle.ID) error
	// Close closes the file.
	Close() error
}

// OpenBulkFile creates (or opens) the BulkFile at path. Set by package store.
var OpenBulkFile func(path string) (BulkFile, error)
