package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
	bolt "go.etcd.io/bbolt"
)

// Record is the resolved view of one record.
type Record struct {
	Collection string
	Key        string
	// Kind is resolve.KindJSON or resolve.KindRaw (never Deleted: deleted records are not returned).
	Kind resolve.Kind
	// Value is the JSON document (canonical form) or the raw bytes.
	Value []byte
	// Version is the version whose value won, or the newest of a merge.
	Version resolve.Version
	// Versions is how many concurrent versions the store holds (1 unless a conflict is open
	// or unresolved versions wait for a write-back).
	Versions int
	// Conflict describes the conflict between concurrent versions, nil when there is none.
	Conflict *resolve.Conflict
	// ID is the record's keyed-hash id.
	ID merkle.ID
}

// Change is one record change, delivered to subscribers after its transaction commits.
type Change struct {
	Collection string
	Key        string
	ID         merkle.ID
	Deleted    bool // the record now reads as deleted
	Local      bool // written on this device (false: applied from elsewhere)
	Conflict   bool // the record has concurrent versions after the change
}

// Tx is a read or read-write transaction over the store, valid only inside the function
// passed to Store.View or Store.Update.
type Tx struct {
	s        *Store
	tx       *bolt.Tx
	now      time.Time
	changes  []Change
	nodes    map[treeNode]*merkle.Node
	lastPath *treePath // treeEdit's last path into nodes
	// the record index (items.go): leaves loaded or written by this transaction (written
	// in key order at flush), the tags under each id prefix, and cursors reused for reads
	leaves     map[leafKey]*leaf
	prefixTags map[[leafPrefix]byte][]Tag
	itemsCur   *bolt.Cursor
	envCur     *bolt.Cursor
	envPg      *envPages // a read-only transaction's reader of envelope pages (envpages.go)
	envPgNone  bool      // envReader found none
	touched    byte      // touchLines's loads, kept
	seq        uint64
	seqDirty   bool
	policies   map[string]resolve.Policy

	// guards (guard.go)
	deleted       map[string]map[string]struct{} // collection -> keys deleted by this transaction
	massConfirmed bool
	floor         uint64
	floorBase     uint64 // the floor when this transaction loaded it (MaxFloorStep)
	floorLoaded   bool
	newEpoch      *[16]byte // set when this transaction started a new store epoch

	// authority (authority.go)
	auth      *authority // the membership as of this transaction, computed on first use
	authDirty bool       // the transaction changed a record the membership reads
	trusted   bool       // reserved records are taken without verification (Restore)
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(btx *bolt.Tx) error {
		return fn(s.newTx(btx))
	})
}

// Update runs fn in a read-write transaction: it commits if fn returns nil and rolls back
// otherwise. Subscribers see the changes after the commit. A transaction that deletes more
// than half of a collection fails with ErrMassDelete unless it calls ConfirmMassDelete.
func (s *Store) Update(fn func(*Tx) error) error {
	var t *Tx
	err := s.db.Update(func(btx *bolt.Tx) error {
		t = s.newTx(btx)
		if err := fn(t); err != nil {
			return err
		}
		if err := t.checkMassDelete(); err != nil {
			return err
		}
		return t.flush()
	})
	if err != nil {
		return s.commitFailed(err) // diskfull.go
	}
	s.commits.Add(1)
	if t.newEpoch != nil {
		s.mu.Lock()
		s.epoch, s.newEpochDone = *t.newEpoch, true
		s.mu.Unlock()
	}
	s.feed.publish(t.changes)
	return nil
}

func (s *Store) newTx(btx *bolt.Tx) *Tx {
	return &Tx{s: s, tx: btx, now: s.opts.Now()}
}

// flush writes the transaction's buffered index entries, dirty tree nodes, sequence
// counter and clock. The indexes are keyed by uniform hashes; writing them in key order at
// the end keeps a large transaction linear (bbolt splits nodes only at commit, so random
// inserts into one node cost a copy of the whole node each).
func (t *Tx) flush() error {
	if err := t.flushIndexes(); err != nil {
		return err
	}
	if t.authDirty {
		if err := t.bumpAuthGen(); err != nil {
			return err
		}
	}
	meta := t.tx.Bucket(bucketMeta)
	if t.seqDirty {
		if err := meta.Put(metaSeq, u64be(t.seq)); err != nil {
			return err
		}
	}
	t.s.mu.Lock()
	last := t.s.clock.Last
	t.s.mu.Unlock()
	return meta.Put(metaClock, u64be(uint64(last)))
}

// flushIndexes writes the leaves and tree nodes the transaction changed, in key order.
func (t *Tx) flushIndexes() error {
	if err := t.flushLeaves(); err != nil { // items.go
		return err
	}
	tree := t.tx.Bucket(bucketTree)
	type keyed struct {
		key []byte
		n   *merkle.Node
	}
	keys := make([]keyed, 0, len(t.nodes))
	for p, n := range t.nodes {
		keys = append(keys, keyed{p.key(), n})
	}
	slices.SortFunc(keys, func(a, b keyed) int { return bytes.Compare(a.key, b.key) })
	for _, k := range keys {
		if k.n.Count == 0 {
			if err := tree.Delete(k.key); err != nil {
				return err
			}
			continue
		}
		b, err := k.n.MarshalBinary()
		if err != nil {
			return err
		}
		if err := tree.Put(k.key, b); err != nil {
			return err
		}
	}
	t.nodes, t.lastPath = nil, nil
	return nil
}

// Put writes a JSON document under collection and key.
func (t *Tx) Put(collection, key string, value []byte) error {
	if err := checkApp(collection); err != nil {
		return err
	}
	return t.write(collection, key, resolve.KindJSON, value)
}

// PutRaw writes raw bytes under collection and key.
func (t *Tx) PutRaw(collection, key string, value []byte) error {
	if err := checkApp(collection); err != nil {
		return err
	}
	return t.write(collection, key, resolve.KindRaw, value)
}

// Delete writes a tombstone for collection and key. Deleting a record that does not exist
// is ErrNotFound.
func (t *Tx) Delete(collection, key string) error {
	if err := checkApp(collection); err != nil {
		return err
	}
	if _, err := t.Get(collection, key); err != nil {
		return err
	}
	if c, k, err := canonicalNames(collection, key, false); err == nil {
		t.noteDelete(c, k)
	}
	return t.write(collection, key, resolve.KindDeleted, nil)
}

// PutReserved writes a JSON record of a reserved collection (a name starting with "_":
// policies, the device list, grants, the audit log). Only meshsync's own layers call it.
func (t *Tx) PutReserved(collection, key string, value []byte) error {
	if !strings.HasPrefix(collection, "_") {
		return fmt.Errorf("%w: %q is not a reserved collection", ErrInvalid, collection)
	}
	return t.write(collection, key, resolve.KindJSON, value)
}

// DeleteReserved writes a tombstone in a reserved collection.
func (t *Tx) DeleteReserved(collection, key string) error {
	if !strings.HasPrefix(collection, "_") {
		return fmt.Errorf("%w: %q is not a reserved collection", ErrInvalid, collection)
	}
	if _, err := t.Get(collection, key); err != nil {
		return err
	}
	return t.write(collection, key, resolve.KindDeleted, nil)
}

func checkApp(collection string) error {
	if strings.HasPrefix(collection, "_") {
		return fmt.Errorf("%w: %q (names starting with _ belong to meshsync)", ErrReserved, collection)
	}
	return nil
}

// write makes a new local version that dominates every version the record has.
func (t *Tx) write(collection, key string, kind resolve.Kind, value []byte) error {
	if !t.tx.Writable() {
		return fmt.Errorf("write %s/%s: read-only transaction", collection, key)
	}
	if err := t.s.needKey("write"); err != nil {
		return err
	}
	collection, key, err := canonicalNames(collection, key, false)
	if err != nil {
		return err
	}
	if err := t.s.checkScope(collection); err != nil {
		return fmt.Errorf("write %s/%s: %w", collection, key, err)
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("%w: value of %d bytes exceeds %d", ErrTooLarge, len(value), MaxValueSize)
	}
	if kind == resolve.KindJSON {
		c, err := resolve.CanonicalJSON(value)
		if err != nil {
			return fmt.Errorf("%w: value is not valid JSON: %v", ErrInvalid, err)
		}
		value = c
	}
	id := t.s.keys.recordID(collection, key)
	set, err := t.antichain(id)
	if err != nil {
		return err
	}
	vv := resolve.VersionVector{}
	var prev *resolve.Value
	if len(set) > 0 {
		for _, h := range set {
			vv = vv.Merge(h.env.Version.VV)
		}
		res, err := t.resolveSet(collection, set)
		if err != nil {
			return err
		}
		if res.Value.Kind != resolve.KindDeleted {
			prev = &res.Value
		}
	}
	dev := t.s.device.ID
	// Count above every counter of this device seen from elsewhere: a store restored from
	// an old copy must not reuse a (device, counter) pair the mesh already holds. Never
	// past MaxCounter: a counter that wrapped would make the write older than its past.
	if vv[dev], err = t.nextOwnCounter(vv[dev]); err != nil {
		return fmt.Errorf("write %s/%s: %w", collection, key, err)
	}
	t.s.mu.Lock()
	ts := t.s.clock.Now(t.now)
	t.s.mu.Unlock()
	version := resolve.Version{Device: dev, Clock: ts, VV: vv}
	val := resolve.Value{Kind: kind, Data: value}
	if kind == resolve.KindJSON {
		val, err = resolve.StampVersion(prev, value, version)
		if err != nil {
			return fmt.Errorf("write %s/%s: %w", collection, key, err)
		}
	}
	p := &payload{Collection: collection, Key: key, Value: val}
	if reservedCollection(collection) {
		if err := t.s.sign(id, version, p); err != nil {
			return err
		}
		t.touchAuthority(collection)
	}
	env, err := t.s.keys.seal(id, version, p)
	if err != nil {
		return fmt.Errorf("write %s/%s: %w", collection, key, err)
	}
	h, err := newHashed(env)
	if err != nil {
		return err
	}
	if err := t.replace(id, set, []hashed{h}); err != nil {
		return err
	}
	t.changes = append(t.changes, Change{Collection: collection, Key: key, ID: id, Deleted: kind == resolve.KindDeleted, Local: true})
	return nil
}

// Get returns the resolved record, or ErrNotFound when it does not exist or reads as
// deleted.
func (t *Tx) Get(collection, key string) (*Record, error) {
	if err := t.s.needKey("get"); err != nil {
		return nil, err
	}
	collection, key, err := canonicalNames(collection, key, false)
	if err != nil {
		return nil, err
	}
	if err := t.s.checkScope(collection); err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", collection, key, err)
	}
	id := t.s.keys.recordID(collection, key)
	set, err := t.antichain(id)
	if err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("%s/%s: %w", collection, key, ErrNotFound)
	}
	rec, err := t.record(collection, key, id, set)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("%s/%s: %w (deleted)", collection, key, ErrNotFound)
	}
	return rec, nil
}

// record resolves set into a Record; nil when it reads as deleted.
func (t *Tx) record(collection, key string, id merkle.ID, set []hashed) (*Record, error) {
	res, err := t.resolveSet(collection, set)
	if err != nil {
		return nil, err
	}
	if res.Value.Kind == resolve.KindDeleted {
		return nil, nil
	}
	rec := &Record{Collection: collection, Key: key, ID: id, Kind: res.Value.Kind, Value: res.Value.Data, Versions: len(set), Conflict: res.Conflict}
	if res.Winner >= 0 && res.Winner < len(set) {
		rec.Version = set[res.Winner].env.Version
	} else {
		for _, h := range set {
			if h.env.Version.Clock > rec.Version.Clock {
				rec.Version = h.env.Version
			}
		}
	}
	return rec, nil
}

// resolveSet opens every version of a record and runs the collection's strategy.
func (t *Tx) resolveSet(collection string, set []hashed) (resolve.Result, error) {
	sibs := make([]resolve.Sibling, len(set))
	for i, h := range set {
		p, err := t.s.keys.open(h.env)
		if err != nil {
			return resolve.Result{}, fmt.Errorf("read %s: %w", collection, err)
		}
		sibs[i] = resolve.Sibling{Version: h.env.Version, Value: p.Value}
	}
	pol, err := t.policy(collection)
	if err != nil {
		return resolve.Result{}, err
	}
	res, err := resolve.Resolve(pol, sibs, t.now)
	if err != nil {
		return resolve.Result{}, fmt.Errorf("resolve %s: %w", collection, err)
	}
	return res, nil
}

// PolicyCollection is the reserved collection that holds each collection's conflict policy.
const PolicyCollection = "_policy"

// policy returns the conflict policy of a collection: the record in PolicyCollection, or
// the default (latest timestamp wins). Reserved collections always use the default.
func (t *Tx) policy(collection string) (resolve.Policy, error) {
	def := resolve.Policy{Strategy: resolve.StrategyTimestamp}.WithDefaults()
	if strings.HasPrefix(collection, "_") {
		return def, nil
	}
	if p, ok := t.policies[collection]; ok {
		return p, nil
	}
	rec, err := t.Get(PolicyCollection, collection)
	if errors.Is(err, ErrNotFound) {
		return def, nil
	}
	if err != nil {
		return def, err
	}
	var p resolve.Policy
	if err := json.Unmarshal(rec.Value, &p); err != nil {
		return def, fmt.Errorf("policy of %s: %w", collection, err)
	}
	p = p.WithDefaults()
	if t.policies == nil {
		t.policies = map[string]resolve.Policy{}
	}
	t.policies[collection] = p
	return p, nil
}

// List returns the live records of collection whose keys start with prefix, in key order.
// An empty collection lists every application collection.
func (t *Tx) List(collection, prefix string) ([]Record, error) {
	if err := t.s.needKey("list"); err != nil {
		return nil, err
	}
	if collection != "" {
		var err error
		if collection, prefix, err = canonicalNames(collection, prefix, true); err != nil {
			return nil, err
		}
		if err := t.s.checkScope(collection); err != nil {
			return nil, fmt.Errorf("list %s: %w", collection, err)
		}
	}
	if err := t.flushIndexes(); err != nil { // scans below read the buckets directly
		return nil, err
	}
	var out []Record
	visit := func(id merkle.ID) error {
		set, err := t.antichain(id)
		if err != nil || len(set) == 0 {
			return err
		}
		p, err := t.s.keys.open(set[0].env)
		if err != nil {
			return err
		}
		if strings.HasPrefix(p.Collection, "_") && collection == "" {
			return nil
		}
		if (collection != "" && p.Collection != collection) || !strings.HasPrefix(p.Key, prefix) {
			return nil
		}
		rec, err := t.record(p.Collection, p.Key, id, set)
		if err != nil || rec == nil {
			return err
		}
		out = append(out, *rec)
		return nil
	}
	if collection != "" {
		if err := t.eachID(collection, visit); err != nil {
			return nil, err
		}
	} else {
		err := t.walkRecords(merkle.ID{}, true, func(r heldRecord) (bool, error) { return false, visit(r.id) })
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b Record) int {
		if c := strings.Compare(a.Collection, b.Collection); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

// eachID calls fn with the id of every record of collection, in id order.
func (t *Tx) eachID(collection string, fn func(merkle.ID) error) error {
	if err := t.flushIndexes(); err != nil { // the scan reads the buckets directly
		return err
	}
	return t.recordsIn(t.s.keys.tag(collection), func(id merkle.ID, _ []uint64) error { return fn(id) })
}

// idEntry is a record's index entry: its collection tag and the sequence numbers of its
// envelopes, in the antichain's (hash) order.
type idEntry struct {
	tag  Tag
	seqs []uint64
}

// tagOf returns the collection tag the envelopes of one record carry (the zero Tag when
// they carry none, or there are none).
func tagOf(set []hashed) Tag {
	for _, h := range set {
		if h.env.Tag != (Tag{}) {
			return h.env.Tag
		}
	}
	return Tag{}
}

// loadEntry returns id's index entry (items.go).
func (t *Tx) loadEntry(id merkle.ID) (idEntry, bool, error) { return t.lookup(id) }

// antichain loads the envelopes currently held for id.
func (t *Tx) antichain(id merkle.ID) ([]hashed, error) {
	set, _, _, err := t.antichainEntry(id)
	return set, err
}

// antichainEntry is antichain, with id's index entry and whether it has one (for
// replaceEntry).
func (t *Tx) antichainEntry(id merkle.ID) ([]hashed, idEntry, bool, error) {
	e, ok, err := t.loadEntry(id)
	if err != nil || !ok {
		return nil, e, ok, err
	}
	set, err := t.loadSet(id, e)
	return set, e, true, err
}

// loadSet loads the envelopes of id's index entry e.
func (t *Tx) loadSet(id merkle.ID, e idEntry) ([]hashed, error) {
	set := make([]hashed, 0, len(e.seqs))
	for _, seq := range e.seqs {
		raw := t.envGet(seq)
		if raw == nil {
			return nil, fmt.Errorf("%w: envelope %d of record %x missing", ErrCorrupt, seq, id[:6])
		}
		env, err := UnmarshalEnvelope(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: envelope %d: %v", ErrCorrupt, seq, err)
		}
		h, err := newHashed(env)
		if err != nil {
			return nil, err
		}
		set = append(set, h)
	}
	return set, nil
}

func (t *Tx) nextSeq() uint64 {
	t.peekSeq()
	t.seq++
	return t.seq
}

// peekSeq returns the last sequence number given out, loading it once per transaction.
func (t *Tx) peekSeq() uint64 {
	if !t.seqDirty {
		if v := t.tx.Bucket(bucketMeta).Get(metaSeq); len(v) == 8 {
			t.seq = be64(v)
		}
		t.seqDirty = true
	}
	return t.seq
}

// replace swaps the antichain of id from old to next: envelopes kept keep their sequence
// numbers, new ones get fresh ones, dropped ones are deleted, and the record index and
// Merkle tree follow in the same transaction.
func (t *Tx) replace(id merkle.ID, old, next []hashed) error {
	entry, existed, err := t.loadEntry(id)
	if err != nil {
		return err
	}
	return t.replaceEntry(id, old, next, entry, existed)
}

// replaceEntry is replace given id's index entry as loaded with old (antichainEntry).
func (t *Tx) replaceEntry(id merkle.ID, old, next []hashed, entry idEntry, existed bool) error {
	if len(next) > 0 && (!existed || entry.tag != tagOf(next)) {
		if err := t.leafRoom(id, tagOf(next)); err != nil { // items.go
			return err
		}
	}
	var oldSeq map[[32]byte]uint64 // read, deleted from and ranged over only: nil when old is empty (a new record)
	if len(old) > 0 {
		oldSeq = make(map[[32]byte]uint64, len(old))
	}
	for i, h := range old {
		if i < len(entry.seqs) {
			oldSeq[h.hash] = entry.seqs[i]
		}
	}
	envs := appendEnvs(t.tx) // bulk.go
	sortByHash(next)
	digest := antichainDigest(next)
	updated := idEntry{tag: tagOf(next), seqs: make([]uint64, 0, len(next))}
	for _, h := range next {
		seq, ok := oldSeq[h.hash]
		if ok {
			delete(oldSeq, h.hash)
		} else {
			seq = t.nextSeq()
			if err := envs.Put(u64be(seq), h.raw); err != nil {
				return err
			}
		}
		updated.seqs = append(updated.seqs, seq)
	}
	// The index first: telling records apart in a leaf reads their envelopes.
	if err := t.setEntry(id, tagOf(next), updated.seqs, entry, existed); err != nil { // items.go
		return err
	}
	for _, seq := range oldSeq {
		if err := envs.Delete(u64be(seq)); err != nil {
			return err
		}
	}
	if err := t.recordHistory(old, next); err != nil {
		return err
	}
	tag, oldTag := tagOf(next), tagOf(old)
	var prev *merkle.Digest
	if existed {
		d := merkle.Digest(antichainDigest(old))
		prev = &d
		if oldTag != tag {
			// A blind replica's record from before tags, now tagged (applyOne): it moves to
			// its collection's tree.
			if err := t.treeRemove(oldTag, id, d); err != nil {
				return err
			}
			prev = nil
		}
	}
	return t.treeUpdate(tag, id, prev, digest)
}

func (t *Tx) treeUpdate(tag Tag, id merkle.ID, old *merkle.Digest, next merkle.Digest) error {
	// The change is the same on every node of the path: hash the items once and add the
	// difference (counts and lanes add modulo 2^64, so a removal is an addition).
	var delta merkle.Node
	if old != nil {
		delta.Remove(merkle.Item{ID: id, Digest: *old})
	}
	delta.Add(merkle.Item{ID: id, Digest: next})
	return t.treeEdit(tag, id, func(n *merkle.Node) { n.AddNode(delta) })
}

// treeNode names a node of the Merkle forest: the tree of one collection tag, and a prefix
// in it.
type treeNode struct {
	tag Tag
	p   merkle.Prefix
}

// key is the node's key in the tree bucket: the tag, then the prefix's key.
func (n treeNode) key() []byte { return append(n.tag[:len(n.tag):len(n.tag)], n.p.Key()...) }

// treeEdit applies edit to every node on id's path in the tree of tag, loading each from
// the tree bucket the first time the transaction touches it (flush writes them back).
func (t *Tx) treeEdit(tag Tag, id merkle.ID, edit func(*merkle.Node)) error {
	if t.s.noIndex {
		return nil
	}
	if t.nodes == nil {
		t.nodes = map[treeNode]*merkle.Node{}
	}
	tree := t.tx.Bucket(bucketTree)
	// Consecutive edits of nearby ids (an initial sync in id order) share the top of their
	// paths: those nodes are taken from the last path without a map lookup.
	if t.lastPath == nil {
		t.lastPath = &treePath{}
	}
	lp := t.lastPath
	same := lp.set && lp.tag == tag
	for l := range treeLevels {
		q := merkle.PrefixOf(id, l)
		if same && lp.prefix[l] == q {
			edit(lp.node[l])
			continue
		}
		same = false
		p := treeNode{tag, q}
		n, ok := t.nodes[p]
		if !ok {
			n = &merkle.Node{}
			if b := tree.Get(p.key()); b != nil {
				if err := n.UnmarshalBinary(b); err != nil {
					lp.set = false
					return fmt.Errorf("%w: merkle node: %v", ErrCorrupt, err)
				}
			}
			t.nodes[p] = n
		}
		lp.prefix[l], lp.node[l] = q, n
		edit(n)
	}
	lp.tag, lp.set = tag, true
	return nil
}

// treePath is the last path treeEdit walked: its tag, prefixes and nodes (held in
// Tx.nodes).
type treePath struct {
	set    bool
	tag    Tag
	prefix [treeLevels]merkle.Prefix
	node   [treeLevels]*merkle.Node
}

// Put writes a JSON document in its own transaction.
func (s *Store) Put(collection, key string, value []byte) error {
	return s.Update(func(t *Tx) error { return t.Put(collection, key, value) })
}

// Delete writes a tombstone in its own transaction.
func (s *Store) Delete(collection, key string) error {
	return s.Update(func(t *Tx) error { return t.Delete(collection, key) })
}

// Get returns the resolved record or ErrNotFound.
func (s *Store) Get(collection, key string) (*Record, error) {
	var rec *Record
	err := s.View(func(t *Tx) error {
		var err error
		rec, err = t.Get(collection, key)
		return err
	})
	return rec, err
}

// List returns the live records of a collection (every application collection when empty)
// whose keys start with prefix.
func (s *Store) List(collection, prefix string) ([]Record, error) {
	var out []Record
	err := s.View(func(t *Tx) error {
		var err error
		out, err = t.List(collection, prefix)
		return err
	})
	return out, err
}
