package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/meshsync/meshsync/merkle"
)

// Record-id order. An initial sync sends a fresh device the sender's records in the order
// of their ids (OrderedUpTo), so that the receiver's record index and Merkle
// tree grow by appends instead of by inserts at random places (ApplyInOrder): each commit
// then dirties a few pages at the end of each bucket instead of thousands across it.

// HeldRecord is one record as OrderedUpTo visits it: its id and the envelopes held for it,
// with their local sequence numbers. Raw aliases the read transaction: copy what is kept.
type HeldRecord struct {
	ID   merkle.ID
	Seqs []uint64
	Raw  [][]byte
}

// OrderedUpTo calls fn with the records whose ids come after after (every record when
// first is set), in id order, each with its envelopes numbered up to upto (a record with
// none is left out), until fn returns an error or limit records were visited (0: no
// limit). A record written after upto keeps only what it held at upto, and one replaced
// since has nothing left at upto: both reach a receiver that then continues by sequence
// from upto. It returns the last id visited and whether it visited any. It reads in one
// read transaction per call, so that a long transfer holds none open.
func (h Replication) OrderedUpTo(after merkle.ID, first bool, upto uint64, limit int, fn func(r *HeldRecord) error) (last merkle.ID, any bool, err error) {
	s := h.s
	last = after
	err = s.db.View(func(tx *bolt.Tx) error {
		t := s.newTx(tx)
		n := 0
		r := &HeldRecord{}
		return t.walkRecords(after, first, func(hr heldRecord) (bool, error) {
			if limit > 0 && n >= limit {
				return true, nil
			}
			r.ID = hr.id
			r.Seqs, r.Raw = r.Seqs[:0], r.Raw[:0]
			for i, seq := range hr.seqs {
				if seq > upto {
					continue
				}
				raw := hr.first
				if i > 0 {
					raw = t.envGet(seq)
				}
				if raw == nil {
					return false, fmt.Errorf("%w: envelope %d of record %x missing", ErrCorrupt, seq, bytes.Clone(hr.id[:6])) // a clone: hr stays on the stack
				}
				r.Seqs, r.Raw = append(r.Seqs, seq), append(r.Raw, raw)
			}
			n++
			if len(r.Raw) > 0 {
				if err := fn(r); err != nil {
					return false, err
				}
			}
			last, any = r.ID, true
			return false, nil
		})
	})
	return last, any, err
}

// ApplyInOrder is ApplyWith for envelopes that arrive in record-id order into a store
// that holds little of them (an initial sync): the transaction writes the record index
// and the Merkle tree as appends, packing their pages full. The result
// is the same as ApplyWith's; only the fill of the pages differs.
func (h Replication) ApplyInOrder(raw [][]byte, fn func(*Tx, ApplyResult) error) (ApplyResult, error) {
	return h.applyWith(h.s.prepare(raw, 1), fn, true)
}

// packIndexes sets the index buckets of t up for appends in key order (FillPercent is a
// setting of the open bucket, not stored).
func (t *Tx) packIndexes() {
	for _, name := range [][]byte{bucketItems, bucketTree} {
		if b := t.tx.Bucket(name); b != nil {
			b.FillPercent = appendFill
		}
	}
}

// appendFill is the fill of index pages written by appends in key order: nearly full,
// with a little room for the records' next versions.
const appendFill = 0.95
