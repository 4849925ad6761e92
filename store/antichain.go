package store

import (
	"bytes"
	"crypto/sha256"
	"slices"

	"github.com/meshsync/meshsync/resolve"
)

// An antichain is the set of versions of one record that no other version the store holds
// dominates. Merging is pure and order-independent: the result is the set of maximal
// envelopes of everything seen, where two envelopes with equal version vectors (the same
// write, re-sealed) are ordered by preferEnvelope. Any two stores that have seen the same
// envelopes therefore hold byte-identical antichains.

// hashed pairs an envelope with its canonical bytes and their hash.
type hashed struct {
	env  *Envelope
	raw  []byte
	hash [32]byte
}

func newHashed(e *Envelope) (hashed, error) {
	raw, err := e.MarshalBinary()
	if err != nil {
		return hashed{}, err
	}
	return hashed{env: e, raw: raw, hash: sha256.Sum256(raw)}, nil
}

// preferEnvelope reports whether a should be kept over b when both carry the same version
// vector: a newer key epoch (a re-seal) first, then the lower hash.
func preferEnvelope(a, b hashed) bool {
	if a.env.KeyEpoch != b.env.KeyEpoch {
		return a.env.KeyEpoch > b.env.KeyEpoch
	}
	return bytes.Compare(a.hash[:], b.hash[:]) < 0
}

// mergeAntichain adds in to set and reports the new set and whether anything changed.
// set must already be an antichain sorted by hash; the result is too.
func mergeAntichain(set []hashed, in hashed) ([]hashed, bool) {
	out := make([]hashed, 0, len(set)+1)
	for i, e := range set {
		switch in.env.Version.VV.Compare(e.env.Version.VV) {
		case resolve.Before:
			return set, false // in is dominated: nothing changes
		case resolve.Equal:
			if e.hash == in.hash || preferEnvelope(e, in) {
				return set, false
			}
			// in replaces e; nothing else in set can be dominated by in, since nothing
			// in an antichain is dominated by e. (out already holds set[:i]: start over.)
			out = append(out[:0], set[:i]...)
			out = append(out, set[i+1:]...)
			out = append(out, in)
			sortByHash(out)
			return out, true
		case resolve.After:
			// e is dominated by in: drop it.
		default:
			out = append(out, e)
		}
	}
	out = append(out, in)
	sortByHash(out)
	return out, true
}

func sortByHash(s []hashed) {
	slices.SortFunc(s, func(a, b hashed) int { return bytes.Compare(a.hash[:], b.hash[:]) })
}

// antichainDigest is the Merkle digest of a record: the hash of its envelopes' hashes in
// order.
func antichainDigest(set []hashed) [32]byte {
	var small [4 * sha256.Size]byte // a record rarely holds more than four versions: no allocation
	b := small[:0]
	for _, e := range set {
		b = append(b, e.hash[:]...)
	}
	return sha256.Sum256(b)
}
