package store

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/meshsync/meshsync/merkle"
)

// Record-id order. An initial sync sends a fresh device the sender's records in the order
// of their ids (OrderedUpTo), so that the receiver's id index, collection index and Merkle
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
		// In chunks of orderedChunk records: the records from the id index in key order,
		// then their envelopes read in sequence order (the order of the file, so its pages
		// come in order), then fn in id order.
		type rec struct {
			id       merkle.ID
			from, to int // its envelopes in refs
		}
		type ref struct {
			seq uint64
			raw []byte
		}
		var recs []rec
		var refs []ref
		var order []int
		r := &HeldRecord{}
		c := tx.Bucket(bucketIDs).Cursor()
		envs := tx.Bucket(bucketEnv)
		var k, v []byte
		if first {
			k, v = c.First()
		} else if k, v = c.Seek(after[:]); k != nil && bytes.Equal(k, after[:]) {
			k, v = c.Next()
		}
		for visited := 0; k != nil && (limit <= 0 || visited < limit); {
			recs, refs = recs[:0], refs[:0]
			for ; k != nil && (limit <= 0 || visited < limit) && len(recs) < orderedChunk; k, v = c.Next() {
				if len(k) != len(merkle.ID{}) || len(v) < 40 || (len(v)-32)%8 != 0 {
					return fmt.Errorf("%w: id index entry %x of %d bytes", ErrCorrupt, k, len(v))
				}
				rc := rec{from: len(refs)}
				copy(rc.id[:], k)
				for p := v[32:]; len(p) > 0; p = p[8:] {
					if seq := be64(p); seq <= upto {
						refs = append(refs, ref{seq: seq})
					}
				}
				rc.to = len(refs)
				recs = append(recs, rc)
				visited++
			}
			order = order[:0]
			for i := range refs {
				order = append(order, i)
			}
			slices.SortFunc(order, func(a, b int) int { return cmp.Compare(refs[a].seq, refs[b].seq) })
			for _, i := range order {
				if refs[i].raw = envs.Get(u64be(refs[i].seq)); refs[i].raw == nil {
					return fmt.Errorf("%w: envelope %d missing", ErrCorrupt, refs[i].seq)
				}
			}
			for _, rc := range recs {
				r.ID = rc.id
				r.Seqs, r.Raw = r.Seqs[:0], r.Raw[:0]
				for _, rf := range refs[rc.from:rc.to] {
					r.Seqs, r.Raw = append(r.Seqs, rf.seq), append(r.Raw, rf.raw)
				}
				if len(r.Raw) > 0 {
					if err := fn(r); err != nil {
						return err
					}
				}
				last, any = rc.id, true
			}
		}
		return nil
	})
	return last, any, err
}

// ApplyInOrder is ApplyWith for envelopes that arrive in record-id order into a store
// that holds little of them (an initial sync): the transaction writes the id and
// collection index and the Merkle tree as appends, packing their pages full. The result
// is the same as ApplyWith's; only the fill of the pages differs.
func (h Replication) ApplyInOrder(raw [][]byte, fn func(*Tx, ApplyResult) error) (ApplyResult, error) {
	return h.applyWith(h.s.prepare(raw, 1), fn, true)
}

// packIndexes sets the index buckets of t up for appends in key order (FillPercent is a
// setting of the open bucket, not stored).
func (t *Tx) packIndexes() {
	for _, name := range [][]byte{bucketIDs, bucketColl, bucketTree} {
		if b := t.tx.Bucket(name); b != nil {
			b.FillPercent = appendFill
		}
	}
}

// orderedChunk is the records OrderedUpTo reads ahead of fn, whose envelopes it fetches
// in sequence order.
const orderedChunk = 256

// appendFill is the fill of index pages written by appends in key order: nearly full,
// with a little room for the records' next versions.
const appendFill = 0.95
