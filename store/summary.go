package store

import (
	"bytes"
	"slices"

	"github.com/meshsync/meshsync/merkle"
	bolt "go.etcd.io/bbolt"
)

// The store's Merkle summary is a forest: one tree per collection tag, over the same id
// space (tree.go's nodes are keyed by tag, then prefix). Fingerprints are sums, so the
// summary of any set of collections is the sum of their trees, node by node: two devices
// reconcile over the collections both hold (Summary), a blind replica over all of them.

// TagRoot is the root of one collection's tree: its tag, item count and fingerprint.
type TagRoot struct {
	Tag  Tag
	Root merkle.Node
}

// Roots returns the root of every collection tree the store holds, in tag order.
func (h Replication) Roots() ([]TagRoot, error) {
	var out []TagRoot
	err := h.s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTree).Cursor()
		for k, v := c.First(); k != nil; {
			if len(k) < len(Tag{}) {
				return ErrCorrupt
			}
			var r TagRoot
			copy(r.Tag[:], k)
			if bytes.Equal(k[len(Tag{}):], merkle.Root().Key()) {
				if err := r.Root.UnmarshalBinary(v); err != nil {
					return err
				}
				out = append(out, r)
			}
			next, ok := r.Tag.next()
			if !ok {
				break
			}
			k, v = c.Seek(next[:])
		}
		return nil
	})
	return out, err
}

// next is the tag after t in byte order (false after the last).
func (t Tag) next() (Tag, bool) {
	for i := len(t) - 1; i >= 0; i-- {
		t[i]++
		if t[i] != 0 {
			return t, true
		}
	}
	return t, false
}

// Summary returns the summary of the collections of tags (nil: every collection the store
// holds) as a merkle.Source for a reconciliation session. Each call reads in its own short
// transaction, so a session that waits on the network never holds the database open.
func (h Replication) Summary(tags []Tag) merkle.Source {
	if tags == nil {
		roots, _ := h.Roots() // an error shows again at the first read
		for _, r := range roots {
			tags = append(tags, r.Tag)
		}
	}
	return summary{h.s, slices.Clone(tags)}
}

type summary struct {
	s    *Store
	tags []Tag
}

func (m summary) Node(p merkle.Prefix) (merkle.Node, error) {
	var sum merkle.Node
	err := m.s.db.View(func(tx *bolt.Tx) error {
		if p.Level() >= treeLevels { // below the stored levels: from the leaf (items.go)
			t := m.s.newTx(tx)
			for _, tag := range m.tags {
				items, err := t.itemsOf(tag, p, 0)
				if err != nil {
					return err
				}
				for _, it := range items {
					sum.Add(it)
				}
			}
			return nil
		}
		tree := tx.Bucket(bucketTree)
		for _, tag := range m.tags {
			if b := tree.Get(treeNode{tag, p}.key()); b != nil {
				var n merkle.Node
				if err := n.UnmarshalBinary(b); err != nil {
					return err
				}
				sum.AddNode(n)
			}
		}
		return nil
	})
	return sum, err
}

func (m summary) Items(p merkle.Prefix, limit int) ([]merkle.Item, error) {
	var out []merkle.Item
	err := m.s.db.View(func(tx *bolt.Tx) error {
		t := m.s.newTx(tx)
		for _, tag := range m.tags {
			items, err := t.itemsOf(tag, p, limit)
			if err != nil {
				return err
			}
			out = append(out, items...)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b merkle.Item) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// Root is the summary of the whole store: the sum of every collection's tree.
func (h Replication) Root() (merkle.Node, error) {
	roots, err := h.Roots()
	var sum merkle.Node
	for _, r := range roots {
		sum.AddNode(r.Root)
	}
	return sum, err
}
