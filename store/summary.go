package store

import (
	"bytes"

	"github.com/meshsync/meshsync/merkle"
	bolt "go.etcd.io/bbolt"
)

// Summary returns the store's persistent Merkle tree as a merkle.Source for a
// reconciliation session. Each call reads in its own short transaction, so a session that
// waits on the network never holds the database open.
func (h Replication) Summary() merkle.Source {
	s := h.s
	return summary{s}
}

type summary struct{ s *Store }

func (m summary) Node(p merkle.Prefix) (merkle.Node, error) {
	var n merkle.Node
	err := m.s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketTree).Get(p.Key()); b != nil {
			return n.UnmarshalBinary(b)
		}
		return nil
	})
	return n, err
}

func (m summary) Items(p merkle.Prefix, limit int) ([]merkle.Item, error) {
	var out []merkle.Item
	err := m.s.db.View(func(tx *bolt.Tx) error {
		out = scanItems(tx, p, limit)
		return nil
	})
	return out, err
}

func scanItems(tx *bolt.Tx, p merkle.Prefix, limit int) []merkle.Item {
	lo, hi := p.Range()
	var out []merkle.Item
	c := tx.Bucket(bucketIDs).Cursor()
	for k, v := c.Seek(lo[:]); k != nil && bytes.Compare(k, hi[:]) <= 0; k, v = c.Next() {
		if limit > 0 && len(out) >= limit {
			break
		}
		var it merkle.Item
		copy(it.ID[:], k)
		copy(it.Digest[:], v)
		out = append(out, it)
	}
	return out
}

// Root is the summary of the whole store.
func (h Replication) Root() (merkle.Node, error) {
	s := h.s
	return s.Replication().Summary().Node(merkle.Prefix{})
}
