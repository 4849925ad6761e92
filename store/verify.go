package store

import (
	"bytes"
	"fmt"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
	bolt "go.etcd.io/bbolt"
)

// Report is what Verify found.
type Report struct {
	Envelopes int      `json:"envelopes"`
	Records   int      `json:"records"`
	Problems  []string `json:"problems"`
}

// OK reports whether Verify found nothing wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

const maxProblems = 100

func (r *Report) addf(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	} else if len(r.Problems) == maxProblems {
		r.Problems = append(r.Problems, "… more problems not listed")
	}
}

// Verify opens every envelope and checks every index: the record index against the
// envelopes, each antichain, and the Merkle tree against a rebuild from the record index; and it opens every sealed local value and history entry. It reports exactly what is wrong; an error means the check itself could not run.
func (s *Store) Verify() (*Report, error) {
	r := &Report{Problems: []string{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		t := s.newTx(tx)
		if err := s.loadEpochKeys(tx); err != nil {
			return err
		}
		var last uint64
		if v := tx.Bucket(bucketMeta).Get(metaSeq); len(v) == 8 {
			last = be64(v)
		}
		owner := map[uint64]merkle.ID{}
		held := map[merkle.ID]bool{}
		rebuilt := map[treeNode]*merkle.Node{}
		c := tx.Bucket(bucketItems).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != leafKeyLen {
				r.addf("record index: key of %d bytes", len(k))
				continue
			}
			lk := leafKey(k)
			l, err := unmarshalLeaf(v)
			if err != nil {
				r.addf("record index: leaf %x: %v", k, err)
				continue
			}
			if len(l.items) == 0 {
				r.addf("record index: leaf %x is empty", k)
			}
			for _, it := range l.items {
				r.Records++
				id, err := t.envID(it.seqs[0])
				if err != nil {
					r.addf("record index: leaf %x: %v", k, err)
					continue
				}
				if !bytes.Equal(id[:leafPrefix], k[:leafPrefix]) || !bytes.Equal(id[leafPrefix:leafPrefix+leafSuffix], it.suffix[:]) {
					r.addf("envelope %d: holds id %x, indexed under %x%x", it.seqs[0], id[:8], k[:leafPrefix], it.suffix)
					continue
				}
				if held[id] {
					r.addf("record %x: indexed twice", id[:6])
				}
				held[id] = true
				set, err := t.loadSet(id, idEntry{tag: lk.tag(), seqs: it.seqs})
				if err != nil {
					r.addf("record %x: %v", id[:6], err)
					continue
				}
				for i, seq := range it.seqs {
					if seq > last {
						r.addf("record %x: envelope sequence %d above the last sequence %d", id[:6], seq, last)
					}
					if prev, dup := owner[seq]; dup {
						r.addf("envelope %d claimed by records %x and %x", seq, prev[:6], id[:6])
					}
					owner[seq] = id
					e := set[i].env
					if e.ID != id {
						r.addf("envelope %d: holds id %x, indexed under %x", seq, e.ID[:6], id[:6])
					}
					if e.Tag != lk.tag() {
						r.addf("envelope %d: collection tag differs from its record's leaf", seq)
					}
					if s.keys.blind {
						continue // a replica checks structure only: it cannot open envelopes
					}
					if e.Tag == (Tag{}) {
						r.addf("envelope %d: no collection tag (a device tags every envelope)", seq)
					}
					if _, err := s.keys.open(e); err != nil {
						r.addf("envelope %d: %v", seq, err)
					}
				}
				for i := range set {
					if i > 0 && bytes.Compare(set[i-1].hash[:], set[i].hash[:]) >= 0 {
						r.addf("record %x: versions out of order or repeated", id[:6])
					}
					for j := range set {
						if i != j && set[i].env.Version.VV.Compare(set[j].env.Version.VV) == resolve.After {
							r.addf("record %x: holds a version dominated by another", id[:6])
						}
					}
				}
				digest := antichainDigest(set)
				for l := range treeLevels {
					p := treeNode{lk.tag(), merkle.PrefixOf(id, l)}
					n := rebuilt[p]
					if n == nil {
						n = &merkle.Node{}
						rebuilt[p] = n
					}
					n.Add(merkle.Item{ID: id, Digest: digest})
				}
			}
		}
		envs := tx.Bucket(bucketEnv).Cursor()
		for k, _ := envs.First(); k != nil; k, _ = envs.Next() {
			r.Envelopes++
			if len(k) != 8 {
				r.addf("envelope key of %d bytes", len(k))
				continue
			}
			if _, ok := owner[be64(k)]; !ok {
				r.addf("envelope %d belongs to no record", be64(k))
			}
		}
		seen := 0
		tc := tx.Bucket(bucketTree).Cursor()
		for k, v := tc.First(); k != nil; k, v = tc.Next() {
			if len(k) < len(Tag{}) {
				r.addf("merkle tree: bad node key %x", k)
				continue
			}
			q, err := merkle.ParsePrefixKey(k[len(Tag{}):])
			if err != nil {
				r.addf("merkle tree: bad node key %x: %v", k, err)
				continue
			}
			var p treeNode
			copy(p.tag[:], k)
			p.p = q
			var n merkle.Node
			if err := n.UnmarshalBinary(v); err != nil {
				r.addf("merkle tree: node %x: %v", k, err)
				continue
			}
			want := rebuilt[p]
			if want == nil || *want != n {
				r.addf("merkle tree: node %x differs from a rebuild", k)
			}
			seen++
		}
		if seen != len(rebuilt) {
			r.addf("merkle tree: %d nodes stored, a rebuild has %d", seen, len(rebuilt))
		}
		s.verifyLocal(tx, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return r, nil
}
