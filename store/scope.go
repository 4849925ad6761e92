package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/meshsync/meshsync/merkle"
	bolt "go.etcd.io/bbolt"
)

// Scope is the set of collections a device holds. Every device also holds every reserved
// collection (the device list, policies, grants), whatever its scope; a blind replica
// holds everything. The scope is device-local state (sealed under the local key); the
// device record tells the other devices, and a sync hello tells a peer the tags.
type Scope struct {
	// Collections lists the application collections held, sorted; empty means all.
	Collections []string `json:"collections,omitempty"`
}

// All reports whether the scope holds every collection.
func (sc Scope) All() bool { return len(sc.Collections) == 0 }

// Contains reports whether the scope holds collection.
func (sc Scope) Contains(collection string) bool {
	return sc.All() || reservedCollection(collection) || slices.Contains(sc.Collections, collection)
}

// String is "all", or the collections separated by commas.
func (sc Scope) String() string {
	if sc.All() {
		return "all"
	}
	return strings.Join(sc.Collections, ",")
}

// NewScope returns the scope of the named collections (none: all), checked, sorted and
// without repeats.
func NewScope(collections ...string) (Scope, error) {
	var sc Scope
	for _, c := range collections {
		c, err := canonicalName("the collection name", c)
		if err != nil {
			return Scope{}, fmt.Errorf("scope: %w", err)
		}
		if c == "" || len(c) > MaxNameSize {
			return Scope{}, fmt.Errorf("scope: %w: %q is not a collection name", ErrInvalid, c)
		}
		if err := checkApp(c); err != nil {
			return Scope{}, fmt.Errorf("scope: %w (every device holds those)", err)
		}
		sc.Collections = append(sc.Collections, c)
	}
	slices.Sort(sc.Collections)
	sc.Collections = slices.Compact(sc.Collections)
	return sc, nil
}

// ErrOutOfScope means a read or write named a collection this device does not hold.
var ErrOutOfScope = errors.New("collection outside this device's scope")

const localScope = "scope"

// scopeState is the scope with the tags of its collections, as the store caches it.
type scopeState struct {
	scope Scope
	tags  map[Tag]bool
}

func (s *Store) newScopeState(sc Scope) *scopeState {
	st := &scopeState{scope: sc, tags: map[Tag]bool{}}
	if !s.keys.blind {
		for _, c := range sc.Collections {
			st.tags[s.keys.tag(c)] = true
		}
	}
	return st
}

// scopeOf returns the store's scope, read from the local bucket once.
func (s *Store) scopeOf() *scopeState {
	if st := s.scope.Load(); st != nil {
		return st
	}
	var sc Scope
	if !s.keys.blind {
		_ = s.db.View(func(tx *bolt.Tx) error { return s.getLocalJSON(tx, localScope, &sc) })
	}
	st := s.newScopeState(sc)
	s.scope.CompareAndSwap(nil, st)
	return s.scope.Load()
}

// wants reports whether the store holds the collection of tag: always for reserved ones
// and for the zero tag (an untagged envelope is told apart once opened).
func (st *scopeState) wants(tag Tag) bool {
	return st.scope.All() || tag.Reserved() || tag == (Tag{}) || st.tags[tag]
}

// checkScope refuses collection when the store does not hold it.
func (s *Store) checkScope(collection string) error {
	sc := s.scopeOf().scope
	if sc.Contains(collection) {
		return nil
	}
	return fmt.Errorf("%w: %q is not in this device's scope (%s); widen it with: meshsync scope set %s %s (or meshsync scope all)",
		ErrOutOfScope, collection, sc, strings.Join(sc.Collections, " "), collection)
}

// inScope reports whether an envelope arriving from elsewhere belongs in this store. An
// untagged envelope (a blind replica's, from before tags) gets its collection's tag here,
// once opened (p), as the store would have tagged it (layout.go).
func (t *Tx) inScope(e *Envelope, p *payload) bool {
	if p != nil && e.Tag == (Tag{}) {
		e.Tag = t.s.keys.tag(p.Collection)
	}
	st := t.s.scopeOf()
	if p != nil {
		return st.scope.Contains(p.Collection)
	}
	return st.wants(e.Tag)
}

// Scope returns the collections this store holds.
func (h Replication) Scope() Scope { return h.s.scopeOf().scope }

// ScopeTags returns what a sync hello says of the scope: all, or the tags of its
// application collections (the reserved ones are implied).
func (h Replication) ScopeTags() (all bool, tags []Tag) {
	st := h.s.scopeOf()
	if st.scope.All() {
		return true, nil
	}
	for t := range st.tags {
		tags = append(tags, t)
	}
	slices.SortFunc(tags, func(a, b Tag) int { return bytes.Compare(a[:], b[:]) })
	return false, tags
}

// ScopeChange is what SetScope did: the collections it added and the records it dropped.
type ScopeChange struct {
	// Widened is set when the new scope holds something the old did not: the store's
	// peers must send what it lacks (node resets its sync progress).
	Widened bool
	// Dropped counts the records of collections the new scope leaves out, dropped from
	// this device only (no delete is written or sent).
	Dropped int
	// Unsent counts, of those, the records holding a write of this device that no holder
	// (ScopeOptions.Holders) is known to have: dropping them loses that write.
	Unsent int
}

// Holder is another device or a replica known to hold this store's envelopes of the
// collections of Scope up to local sequence number Seq of store epoch Epoch: what a
// finished sync session or an acknowledged push proved.
type Holder struct {
	Scope Scope
	Epoch [16]byte
	Seq   uint64
}

// ScopeOptions are the options of SetScope.
type ScopeOptions struct {
	// DryRun counts without changing anything.
	DryRun bool
	// Holders are what the other devices are known to hold of this store. A narrowing
	// that would drop a write of this device no holder has fails with ErrUnsent, unless
	// Force is set.
	Holders []Holder
	Force   bool
}

// ErrUnsent means a narrower scope would drop writes made on this device that no other
// device is known to hold yet.
var ErrUnsent = errors.New("writes made on this device have not reached another device yet")

// SetScope makes the store hold the collections of sc. Narrowing drops the envelopes of
// the collections left out, here only: no tombstone is written, nothing is sent, and the
// other devices keep them; it refuses (ErrUnsent) to drop a write of this device that no
// holder has, unless opts.Force.
func (h Replication) SetScope(sc Scope, opts ScopeOptions) (ScopeChange, error) {
	s := h.s
	if err := s.needKey("set scope"); err != nil {
		return ScopeChange{}, err
	}
	old := s.scopeOf()
	next := s.newScopeState(sc)
	var ch ScopeChange
	ch.Widened = !old.scope.All() && (sc.All() || slices.ContainsFunc(sc.Collections, func(c string) bool { return !old.scope.Contains(c) }))
	roots, err := h.Roots()
	if err != nil {
		return ch, err
	}
	var drop []Tag
	for _, r := range roots {
		if !next.wants(r.Tag) && old.wants(r.Tag) {
			drop = append(drop, r.Tag)
			ch.Dropped += int(r.Root.Count)
		}
	}
	held := s.heldBy(opts.Holders)
	if opts.DryRun {
		err := s.View(func(t *Tx) error {
			var err error
			ch.Unsent, _, err = t.unsent(drop, held)
			return err
		})
		return ch, err
	}
	err = s.Update(func(t *Tx) error {
		if err := t.flushIndexes(); err != nil {
			return err
		}
		unsent, ids, err := t.unsent(drop, held)
		if err != nil {
			return err
		}
		if ch.Unsent = unsent; unsent > 0 && !opts.Force {
			return fmt.Errorf("%w: %d records of the collections left out hold writes made here that no other device is known to have; sync first (meshsync sync --wait), or narrow with --force to lose them", ErrUnsent, unsent)
		}
		for _, id := range ids {
			if err := t.drop(id, false); err != nil {
				return err
			}
		}
		return s.putLocalJSON(t.tx, localScope, sc)
	})
	if err != nil {
		return ScopeChange{}, fmt.Errorf("set scope %s: %w", sc, err)
	}
	s.scope.Store(next)
	return ch, nil
}

// heldBy returns, for a collection tag, the highest local sequence number of the store's
// epoch that some holder of that collection is known to hold.
func (s *Store) heldBy(holders []Holder) func(Tag) uint64 {
	epoch := s.Replication().Epoch()
	scopes := make([]*scopeState, len(holders))
	for i, hd := range holders {
		scopes[i] = s.newScopeState(hd.Scope)
	}
	return func(tag Tag) uint64 {
		var seq uint64
		for i, hd := range holders {
			if hd.Epoch == epoch && scopes[i].wants(tag) {
				seq = max(seq, hd.Seq)
			}
		}
		return seq
	}
}

// unsent lists the records of the collection tags drop and counts those holding an
// envelope written by this device after what held says another device holds.
func (t *Tx) unsent(drop []Tag, held func(Tag) uint64) (int, []merkle.ID, error) {
	self := t.s.device.ID
	envs := t.tx.Bucket(bucketEnv)
	var n int
	var ids []merkle.ID
	for _, tag := range drop {
		after := held(tag)
		if err := t.flushIndexes(); err != nil { // the walk reads the buckets directly
			return 0, nil, err
		}
		var recs []idEntry
		err := t.recordsIn(tag, func(id merkle.ID, seqs []uint64) error {
			ids = append(ids, id)
			recs = append(recs, idEntry{tag: tag, seqs: seqs})
			return nil
		})
		if err != nil {
			return 0, nil, err
		}
		for _, e := range recs {
			for _, seq := range e.seqs {
				if seq <= after {
					continue
				}
				env, err := UnmarshalEnvelope(envs.Get(u64be(seq)))
				if err != nil {
					return 0, nil, fmt.Errorf("%w: envelope %d: %v", ErrCorrupt, seq, err)
				}
				if env.Version.Device == self {
					n++
					break
				}
			}
		}
	}
	return n, ids, nil
}
