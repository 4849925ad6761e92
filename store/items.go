package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/meshsync/meshsync/merkle"
)

// The record index (layout 3). A record is found by its id through a leaf: the records of
// one collection whose ids share their first two bytes, kept under those two bytes and the
// collection tag (bucketItems). A leaf lists, in id order, each record's next six id bytes
// and the sequence numbers of its envelopes (the antichain, in hash order); the rest of
// the id is in the envelope, which a lookup reads to tell apart the rare records whose
// first eight bytes agree. The Merkle tree keeps its levels 0 to 4 in bucketTree (a
// level-4 node covers exactly one leaf per tag); level 5 and the items below are computed
// from the leaf and the envelopes' hashes when a reconciliation asks for them.
//
// Against layout 2 (an id index of 32-byte ids with the antichain digest, a collection
// index of tag and id, tree nodes down to level 5) this drops about 180 bytes per record
// at a million records: the index is about 11 bytes per record, the tree 5.

// bucketItems maps the first leafPrefix bytes of a record id and its collection tag to the
// leaf of those records.
var bucketItems = []byte("items")

const (
	leafPrefix = 2                       // id bytes in a leaf's key
	leafSuffix = 6                       // id bytes after those kept per record
	leafKeyLen = leafPrefix + len(Tag{}) // id prefix, then tag
	leafLevel  = 2 * leafPrefix          // the tree level whose nodes match leaves
	treeLevels = leafLevel + 1           // tree levels kept in bucketTree: 0 to leafLevel
	maxLeafLen = 64 << 20                // a leaf larger than this is corrupt
	minItemLen = leafSuffix + 1 + 1      // suffix, count, one sequence number
)

// maxLeafRecords bounds the records of one leaf: the records of one collection whose ids
// share their first two bytes. Ids are keyed hashes, so a store reaches it at about two
// billion records; a member that makes ids collide on purpose (a blind replica cannot
// check them) reaches it sooner, and its further records there are refused
// (ErrIndexFull), so that one leaf never costs more than about 350 KB per write.
var maxLeafRecords = 1 << 15

// leafKey names a leaf: an id's first bytes, then a collection tag.
type leafKey [leafKeyLen]byte

func leafKeyOf(id merkle.ID, tag Tag) leafKey {
	var k leafKey
	copy(k[:], id[:leafPrefix])
	copy(k[leafPrefix:], tag[:])
	return k
}

func (k leafKey) tag() Tag {
	var t Tag
	copy(t[:], k[leafPrefix:])
	return t
}

// leafItem is one record of a leaf: the id bytes after the leaf's prefix (six of them)
// and the sequence numbers of its envelopes, in the antichain's hash order.
type leafItem struct {
	suffix [leafSuffix]byte
	seqs   []uint64
}

// leaf is a decoded leaf. dirty marks one the transaction changed (flush writes it, or
// deletes it once empty).
type leaf struct {
	items []leafItem
	dirty bool
}

// marshal encodes the leaf: per item its suffix, a uvarint count and that many uvarint
// sequence numbers.
func (l *leaf) marshal() []byte {
	n := 0
	for _, it := range l.items {
		n += leafSuffix + 1 + 4*len(it.seqs)
	}
	b := make([]byte, 0, n)
	for _, it := range l.items {
		b = append(b, it.suffix[:]...)
		b = binary.AppendUvarint(b, uint64(len(it.seqs)))
		for _, seq := range it.seqs {
			b = binary.AppendUvarint(b, seq)
		}
	}
	return b
}

// unmarshalLeaf decodes a leaf, refusing what marshal would not write: an empty item, a
// zero sequence number, suffixes out of order, trailing bytes.
func unmarshalLeaf(b []byte) (*leaf, error) {
	items, _, err := appendLeafItems(make([]leafItem, 0, len(b)/(minItemLen+2)), make([]uint64, 0, len(b)/(leafSuffix+2)), b)
	if err != nil {
		return nil, err
	}
	return &leaf{items: items}, nil
}

// appendLeafItems decodes the items of an encoded leaf as unmarshalLeaf does, appending
// them to items and their sequence numbers to all (each item's slice of all is capped, so
// that an append to one never writes into the next).
func appendLeafItems(items []leafItem, all []uint64, b []byte) ([]leafItem, []uint64, error) {
	if len(b) > maxLeafLen {
		return items, all, fmt.Errorf("%w: index leaf of %d bytes", ErrCorrupt, len(b))
	}
	first := len(items)
	for len(b) > 0 {
		var it leafItem
		var err error
		start := len(all)
		if it.suffix, all, b, err = nextItem(b, all); err != nil {
			return items, all, err
		}
		it.seqs = all[start:len(all):len(all)]
		if m := len(items); m > first && bytes.Compare(items[m-1].suffix[:], it.suffix[:]) > 0 {
			return items, all, fmt.Errorf("%w: index leaf: records out of order", ErrCorrupt)
		}
		items = append(items, it)
	}
	return items, all, nil
}

// nextItem decodes the first item of an encoded leaf: its suffix, its sequence numbers
// (appended to seqs) and the bytes after it.
func nextItem(b []byte, seqs []uint64) (suffix [leafSuffix]byte, _ []uint64, rest []byte, _ error) {
	if len(b) < minItemLen {
		return suffix, seqs, nil, fmt.Errorf("%w: index leaf: truncated item", ErrCorrupt)
	}
	copy(suffix[:], b)
	b = b[leafSuffix:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > uint64(len(b)-k) || k != uvarintLen(n) {
		return suffix, seqs, nil, fmt.Errorf("%w: index leaf: bad version count", ErrCorrupt)
	}
	b = b[k:]
	for range n {
		seq, k := binary.Uvarint(b)
		if k <= 0 || seq == 0 || k != uvarintLen(seq) {
			return suffix, seqs, nil, fmt.Errorf("%w: index leaf: bad sequence number", ErrCorrupt)
		}
		seqs, b = append(seqs, seq), b[k:]
	}
	return suffix, seqs, b, nil
}

// uvarintLen is the length of the minimal uvarint encoding of v.
func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// concurrentIn returns, for each record of an encoded leaf that holds more than one
// version, the sequence number of its first envelope, without building the leaf (a
// conflict listing reads every leaf).
func concurrentIn(b []byte) ([]uint64, error) {
	var out, seqs []uint64
	for len(b) > 0 {
		var err error
		if _, seqs, b, err = nextItem(b, seqs[:0]); err != nil {
			return nil, err
		}
		if len(seqs) > 1 {
			out = append(out, seqs[0])
		}
	}
	return out, nil
}

// leafOf returns the leaf of key, loading it on first use in this transaction; a leaf the
// store does not hold comes back empty (and is written only once it holds something).
func (t *Tx) leafOf(k leafKey) (*leaf, error) {
	if l, ok := t.leaves[k]; ok {
		return l, nil
	}
	if t.leaves == nil {
		t.leaves = map[leafKey]*leaf{}
	}
	l := &leaf{}
	if v := t.itemsGet(k[:]); v != nil {
		var err error
		if l, err = unmarshalLeaf(v); err != nil {
			return nil, fmt.Errorf("leaf %x: %w", k, err)
		}
	}
	t.leaves[k] = l
	return l, nil
}

// itemsGet reads one leaf through the transaction's cursor (Bucket.Get makes a cursor per
// call).
func (t *Tx) itemsGet(key []byte) []byte {
	if t.itemsCur == nil {
		t.itemsCur = t.tx.Bucket(bucketItems).Cursor()
	}
	k, v := t.itemsCur.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// tagsAt returns the tags of the leaves under an id's first bytes: those the store holds
// and those this transaction started.
func (t *Tx) tagsAt(id merkle.ID) []Tag {
	var p [leafPrefix]byte
	copy(p[:], id[:])
	if tags, ok := t.prefixTags[p]; ok {
		return tags
	}
	if t.prefixTags == nil {
		t.prefixTags = map[[leafPrefix]byte][]Tag{}
	}
	if t.itemsCur == nil {
		t.itemsCur = t.tx.Bucket(bucketItems).Cursor()
	}
	var tags []Tag
	for k, _ := t.itemsCur.Seek(p[:]); k != nil && bytes.HasPrefix(k, p[:]); k, _ = t.itemsCur.Next() {
		if len(k) == leafKeyLen {
			tags = append(tags, leafKey(k).tag())
		}
	}
	t.prefixTags[p] = tags
	return tags
}

// envID returns the record id an envelope holds (the bytes after its format byte).
func (t *Tx) envID(seq uint64) (merkle.ID, error) {
	id, _, err := t.envWithID(seq)
	return id, err
}

// envWithID returns an envelope as stored and the record id it holds.
func (t *Tx) envWithID(seq uint64) (merkle.ID, []byte, error) {
	var id merkle.ID
	raw := t.envGet(seq)
	if len(raw) < 1+len(id) {
		return id, nil, fmt.Errorf("%w: envelope %d missing or short", ErrCorrupt, seq)
	}
	copy(id[:], raw[1:])
	return id, raw, nil
}

// envGet reads one envelope through the transaction's cursor.
func (t *Tx) envGet(seq uint64) []byte {
	if t.envCur == nil {
		t.envCur = t.tx.Bucket(bucketEnv).Cursor()
	}
	key := u64be(seq)
	k, v := t.envCur.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// find returns where id is in l: its index and true, or where it would go and false.
// Records whose suffixes agree are told apart (and ordered) by the ids in their
// envelopes.
func (t *Tx) find(l *leaf, id merkle.ID) (int, bool, error) {
	var s [leafSuffix]byte
	copy(s[:], id[leafPrefix:])
	i, found := slices.BinarySearchFunc(l.items, s, func(it leafItem, s [leafSuffix]byte) int {
		return bytes.Compare(it.suffix[:], s[:])
	})
	for ; found && i < len(l.items) && l.items[i].suffix == s; i++ {
		other, err := t.envID(l.items[i].seqs[0])
		if err != nil {
			return 0, false, err
		}
		switch c := bytes.Compare(other[:], id[:]); {
		case c == 0:
			return i, true, nil
		case c > 0:
			return i, false, nil
		}
	}
	return i, false, nil
}

// lookup finds id's index entry in whichever collection's leaf holds it.
func (t *Tx) lookup(id merkle.ID) (idEntry, bool, error) {
	for _, tag := range t.tagsAt(id) {
		k := leafKeyOf(id, tag)
		l, err := t.leafOf(k)
		if err != nil {
			return idEntry{}, false, err
		}
		i, ok, err := t.find(l, id)
		if err != nil {
			return idEntry{}, false, err
		}
		if ok {
			return idEntry{tag: tag, seqs: l.items[i].seqs}, true, nil
		}
	}
	return idEntry{}, false, nil
}

// setEntry writes id's entry: the sequence numbers of its envelopes under tag. With
// existed, old is where the entry was (a record moving from the zero tag to its own moves
// leaves).
func (t *Tx) setEntry(id merkle.ID, tag Tag, seqs []uint64, old idEntry, existed bool) error {
	if len(seqs) == 0 {
		if existed {
			return t.removeEntry(id, old.tag)
		}
		return nil
	}
	if existed && old.tag != tag {
		if err := t.removeEntry(id, old.tag); err != nil {
			return err
		}
	}
	k := leafKeyOf(id, tag)
	l, err := t.leafOf(k)
	if err != nil {
		return err
	}
	i, found, err := t.find(l, id)
	if err != nil {
		return err
	}
	if found {
		l.items[i].seqs = seqs
	} else {
		it := leafItem{seqs: seqs}
		copy(it.suffix[:], id[leafPrefix:])
		if len(l.items) == 0 {
			t.noteTag(id, tag)
		}
		l.items = slices.Insert(l.items, i, it)
	}
	l.dirty = true
	return nil
}

// leafRoom fails when id's leaf in tag is full (maxLeafRecords), before anything of a
// new record is written.
func (t *Tx) leafRoom(id merkle.ID, tag Tag) error {
	l, err := t.leafOf(leafKeyOf(id, tag))
	if err != nil {
		return err
	}
	if len(l.items) >= maxLeafRecords {
		return refusal{fmt.Errorf("record %x: %w: %d records of its collection share its first %d id bytes (ids made to collide?)", id[:6], ErrIndexFull, len(l.items), leafPrefix)}
	}
	return nil
}

// noteTag adds tag to the tags cached for id's leaf prefix (a leaf this transaction
// starts).
func (t *Tx) noteTag(id merkle.ID, tag Tag) {
	tags := t.tagsAt(id)
	if slices.Contains(tags, tag) {
		return
	}
	var p [leafPrefix]byte
	copy(p[:], id[:])
	t.prefixTags[p] = append(slices.Clip(tags), tag)
}

// removeEntry takes id out of its leaf in tag.
func (t *Tx) removeEntry(id merkle.ID, tag Tag) error {
	l, err := t.leafOf(leafKeyOf(id, tag))
	if err != nil {
		return err
	}
	i, found, err := t.find(l, id)
	if err != nil || !found {
		return err
	}
	l.items = slices.Delete(l.items, i, i+1)
	l.dirty = true
	return nil
}

// flushLeaves writes the leaves the transaction changed, in key order, and deletes the
// empty ones.
func (t *Tx) flushLeaves() error {
	if len(t.leaves) == 0 {
		return nil
	}
	b := t.tx.Bucket(bucketItems)
	keys := make([]leafKey, 0, len(t.leaves))
	for k, l := range t.leaves {
		if l.dirty {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b leafKey) int { return bytes.Compare(a[:], b[:]) })
	for _, k := range keys {
		l := t.leaves[k]
		var err error
		if len(l.items) == 0 {
			err = b.Delete(k[:])
		} else {
			err = b.Put(k[:], l.marshal())
		}
		if err != nil {
			return err
		}
	}
	t.leaves, t.prefixTags, t.itemsCur, t.envCur = nil, nil, nil, nil
	return nil
}

// heldRecord is one record as a scan of the index visits it: first is the envelope of
// seqs[0] (read for the id; it aliases the transaction). seqs aliases the walk's buffers:
// it is valid while fn runs.
type heldRecord struct {
	id    merkle.ID
	tag   Tag
	seqs  []uint64
	first []byte
}

// walkWindow is how many records walkRecords reads the first envelopes of at once (whole
// groups of one leaf prefix, so a few more) where the transaction reads envelope pages
// itself (envReader): enough independent lookups for their memory misses to overlap,
// few enough that a caller that stops early (a batch of about 1 MiB is 850 records) reads
// few for nothing.
const walkWindow = 64

// walkRecords calls fn with every record whose id comes after after (every record when
// first), in id order, until fn returns an error or stop. Leaves of one id prefix are
// read together and their records sorted by id (from their envelopes); the first
// envelopes of a window of such groups are read at once (envGetMany). It reads the
// bucket as stored: callers flush first in a write transaction.
func (t *Tx) walkRecords(after merkle.ID, first bool, fn func(r heldRecord) (stop bool, err error)) error {
	c := t.tx.Bucket(bucketItems).Cursor()
	var k, v []byte
	if first {
		k, v = c.First()
	} else {
		k, v = c.Seek(after[:leafPrefix])
	}
	window := 1 // a group at a time where envGetMany reads one envelope after the other
	if t.envReader() != nil {
		window = walkWindow
	}
	var (
		recs   []heldRecord // the window: its records, id known to the first 8 bytes
		groups []int        // where each group of recs (one leaf prefix) ends
		items  []leafItem
		all    []uint64 // the window's sequence numbers
		seqs   []uint64
		raws   [][]byte
	)
	for k != nil {
		recs, groups, all = recs[:0], groups[:0], all[:0]
		for k != nil && len(recs) < window {
			if len(k) != leafKeyLen {
				return fmt.Errorf("%w: index key of %d bytes", ErrCorrupt, len(k))
			}
			var p [leafPrefix]byte
			copy(p[:], k)
			for ; k != nil && bytes.HasPrefix(k, p[:]); k, v = c.Next() {
				if len(k) != leafKeyLen {
					return fmt.Errorf("%w: index key of %d bytes", ErrCorrupt, len(k))
				}
				var err error
				if items, all, err = appendLeafItems(items[:0], all, v); err != nil {
					return fmt.Errorf("leaf %x: %w", k, err)
				}
				tag := leafKey(k).tag()
				for _, it := range items {
					r := heldRecord{tag: tag, seqs: it.seqs}
					copy(r.id[:], p[:])
					copy(r.id[leafPrefix:], it.suffix[:])
					recs = append(recs, r)
				}
			}
			groups = append(groups, len(recs))
		}
		seqs = seqs[:0]
		for _, r := range recs {
			seqs = append(seqs, r.seqs[0])
		}
		raws = slices.Grow(raws[:0], len(seqs))[:len(seqs)]
		t.envGetMany(seqs, raws)
		if window > 1 {
			t.touched += touchLines(raws) // the callers read them whole: OrderedUpTo's copies them
		}
		start := 0
		for _, end := range groups {
			group, kept := recs[start:end], 0
			for i := range group {
				r, raw := group[i], raws[start+i]
				if len(raw) < 1+len(merkle.ID{}) {
					return fmt.Errorf("%w: envelope %d missing or short", ErrCorrupt, r.seqs[0])
				}
				var id merkle.ID
				copy(id[:], raw[1:])
				if !bytes.Equal(id[:leafPrefix+leafSuffix], r.id[:leafPrefix+leafSuffix]) {
					return fmt.Errorf("%w: envelope %d holds id %x, indexed under %x", ErrCorrupt, r.seqs[0], bytes.Clone(id[:8]), bytes.Clone(r.id[:leafPrefix+leafSuffix])) // clones: id and r stay on the stack
				}
				if !first && bytes.Compare(id[:], after[:]) <= 0 {
					continue
				}
				r.id, r.first = id, raw
				group[kept] = r
				kept++
			}
			group = group[:kept]
			slices.SortFunc(group, func(a, b heldRecord) int { return bytes.Compare(a.id[:], b.id[:]) })
			for _, r := range group {
				stop, err := fn(r)
				if err != nil || stop {
					return err
				}
			}
			start = end
		}
	}
	return nil
}

// recordsIn calls fn with every record of the collection of tag, in id order: the tree's
// level-4 nodes of tag say which leaves hold any.
func (t *Tx) recordsIn(tag Tag, fn func(id merkle.ID, seqs []uint64) error) error {
	return t.recordsUnder(tag, merkle.Root(), fn)
}

// recordsUnder calls fn with every record of the collection of tag whose id lies under p,
// in id order.
func (t *Tx) recordsUnder(tag Tag, p merkle.Prefix, fn func(id merkle.ID, seqs []uint64) error) error {
	lo, hi := p.Range()
	known8 := merkle.PrefixOf(lo, min(p.Level(), 2*(leafPrefix+leafSuffix))) // p, to the digits a leaf knows
	visit := func(k leafKey) error {
		v := t.itemsGet(k[:])
		if v == nil {
			return nil
		}
		l, err := unmarshalLeaf(v)
		if err != nil {
			return fmt.Errorf("leaf %x: %w", k, err)
		}
		var recs []heldRecord
		for _, it := range l.items {
			// The leaf's key and the item's suffix are the id's first eight bytes: enough
			// to leave out, without reading its envelope, a record outside p.
			var known merkle.ID
			copy(known[:], k[:leafPrefix])
			copy(known[leafPrefix:], it.suffix[:])
			if !known8.Contains(known) {
				continue
			}
			id, err := t.envID(it.seqs[0])
			if err != nil {
				return err
			}
			if p.Contains(id) {
				recs = append(recs, heldRecord{id: id, seqs: it.seqs})
			}
		}
		slices.SortFunc(recs, func(a, b heldRecord) int { return bytes.Compare(a.id[:], b.id[:]) })
		for _, r := range recs {
			if err := fn(r.id, r.seqs); err != nil {
				return err
			}
		}
		return nil
	}
	if p.Level() >= leafLevel {
		return visit(leafKeyOf(lo, tag))
	}
	// The level-4 tree nodes of tag under p, in prefix order: one per non-empty leaf.
	from := treeNode{tag, merkle.PrefixOf(lo, leafLevel)}.key()
	to := treeNode{tag, merkle.PrefixOf(hi, leafLevel)}.key()
	c := t.tx.Bucket(bucketTree).Cursor()
	var keys []leafKey
	for k, _ := c.Seek(from); k != nil && bytes.Compare(k, to) <= 0; k, _ = c.Next() {
		if len(k) != len(Tag{})+1+leafPrefix {
			return fmt.Errorf("%w: tree key %x", ErrCorrupt, k)
		}
		var id merkle.ID
		copy(id[:], k[len(Tag{})+1:])
		keys = append(keys, leafKeyOf(id, tag))
	}
	for _, k := range keys {
		if err := visit(k); err != nil {
			return err
		}
	}
	return nil
}

// itemsOf returns the Merkle items of the collection of tag under p (at most limit, 0:
// all), in id order, each with the digest of its antichain (computed from its envelopes).
func (t *Tx) itemsOf(tag Tag, p merkle.Prefix, limit int) ([]merkle.Item, error) {
	var out []merkle.Item
	errLimit := fmt.Errorf("limit")
	err := t.recordsUnder(tag, p, func(id merkle.ID, seqs []uint64) error {
		if limit > 0 && len(out) >= limit {
			return errLimit
		}
		set, err := t.loadSet(id, idEntry{tag: tag, seqs: seqs})
		if err != nil {
			return err
		}
		out = append(out, merkle.Item{ID: id, Digest: antichainDigest(set)})
		return nil
	})
	if err == errLimit {
		err = nil
	}
	return out, err
}
