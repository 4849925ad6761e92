package store

import (
	"fmt"
	"slices"
	"time"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
	bolt "go.etcd.io/bbolt"
)

// ApplyResult reports what Apply did with a batch of envelopes from elsewhere.
type ApplyResult struct {
	// Added counts envelopes that entered a record's antichain.
	Added int
	// Stale counts envelopes already held or dominated by a version already held.
	Stale int
	// Rejected lists envelopes refused (malformed, failed authentication); the rest of the
	// batch is applied.
	Rejected []Rejected
	// Changes lists the records whose antichain changed.
	Changes []Change
	// Skew is the largest amount a remote clock in the batch ran ahead of local time beyond
	// the allowed bound (0 when none).
	Skew time.Duration
	// FirstSeq and LastSeq are the local sequence numbers given to the envelopes this batch
	// added (both 0 when it added none). Nothing else wrote between them.
	FirstSeq, LastSeq uint64
	// RolledBack counts envelopes carrying a counter of this device beyond anything the
	// store holds for that record: proof that the store was restored from an older copy.
	// The store then starts a new epoch (see Store.RolledBack).
	RolledBack int
}

// Rejected is one envelope Apply refused.
type Rejected struct {
	Index int   // position in the batch
	Err   error // why
}

// Apply merges envelopes from another device (or a backup) into the store in one
// transaction. It is idempotent and order-independent: any grouping and order of the same
// envelopes leaves byte-identical stores. A bad envelope is rejected alone.
func (s *Store) Apply(raw [][]byte) (ApplyResult, error) {
	return s.ApplyWith(raw, nil)
}

// ApplyWith is Apply, and then calls fn (when not nil) in the same transaction, so that a
// caller can record its progress (Tx.PutLocal) atomically with the envelopes.
func (s *Store) ApplyWith(raw [][]byte, fn func(*Tx, ApplyResult) error) (ApplyResult, error) {
	var res ApplyResult
	err := s.Update(func(t *Tx) error {
		res = ApplyResult{}
		if err := t.apply(raw, &res); err != nil {
			return err
		}
		if fn != nil {
			return fn(t, res)
		}
		return nil
	})
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply %d envelopes: %w", len(raw), err)
	}
	if res.Skew > 0 {
		s.mu.Lock()
		s.skew = max(s.skew, res.Skew)
		s.mu.Unlock()
	}
	return res, nil
}

func (t *Tx) apply(raw [][]byte, res *ApplyResult) error {
	changed := map[merkle.ID]int{} // id -> index in res.Changes
	before := t.peekSeq()
	defer func() {
		if t.seq > before {
			res.FirstSeq, res.LastSeq = before+1, t.seq
		}
	}()
	ak, err := t.applyPrep() // revocations and key epochs (rotate.go)
	if err != nil {
		return err
	}
	for _, i := range applyOrder(raw) {
		env, err := UnmarshalEnvelope(raw[i])
		if err == nil {
			err = ak.refuse(env) // a removed device's write after its removal
		}
		if err == nil {
			err = checkCounters(env.Version) // counters a local write could not pass (guard.go)
		}
		if err != nil {
			res.Rejected = append(res.Rejected, Rejected{Index: i, Err: err})
			continue
		}
		p, err := t.openForApply(env) // nil on a blind replica, which cannot open it
		if err != nil {
			p, err = ak.retry(t, env, err) // a key granted earlier in this batch
		}
		if err != nil {
			res.Rejected = append(res.Rejected, Rejected{Index: i, Err: err})
			continue
		}
		h, err := newHashed(env)
		if err != nil {
			res.Rejected = append(res.Rejected, Rejected{Index: i, Err: err})
			continue
		}
		set, err := t.antichain(env.ID)
		if err != nil {
			return err
		}
		if len(set) == 0 && t.collected(env, p) {
			res.Stale++ // a tombstone this store collected, or would have (gc.go)
			continue
		}
		stale, err := t.observeOwn(env.Version, set)
		if err != nil {
			return err
		}
		if stale {
			res.RolledBack++
		}
		next, ok := mergeAntichain(set, h)
		if !ok {
			res.Stale++
			continue
		}
		if err := t.replace(env.ID, set, next); err != nil {
			return err
		}
		if p != nil {
			t.indexCollection(p.Collection, env.ID)
		}
		t.s.mu.Lock()
		skew, clamped := t.s.clock.Observe(env.Version.Clock, t.now)
		t.s.mu.Unlock()
		if clamped { // ahead by up to MaxSkew is ordinary drift, not a clock to report
			res.Skew = max(res.Skew, skew)
		}
		res.Added++
		ak.note(p)
		c := Change{ID: env.ID, Conflict: len(next) > 1}
		if p != nil {
			c.Collection, c.Key = p.Collection, p.Key
		}
		if p != nil && len(next) == 1 {
			c.Deleted = p.Value.Kind == resolve.KindDeleted && next[0].hash == h.hash
		}
		if j, ok := changed[env.ID]; ok {
			res.Changes[j] = c
		} else {
			changed[env.ID] = len(res.Changes)
			res.Changes = append(res.Changes, c)
		}
	}
	slices.SortFunc(res.Rejected, func(a, b Rejected) int { return a.Index - b.Index })
	if err := ak.finish(t); err != nil {
		return err
	}
	t.changes = append(t.changes, res.Changes...)
	if res.RolledBack > 0 {
		return t.noteRollback(res.RolledBack)
	}
	return nil
}

// LastSeq is the highest local sequence number given to an envelope so far.
func (s *Store) LastSeq() (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaSeq); len(v) == 8 {
			seq = be64(v)
		}
		return nil
	})
	return seq, err
}

// Since calls fn with every envelope stored after sequence number after, in order, until fn
// returns an error or limit envelopes were seen (limit 0: no limit). It returns the last
// sequence number visited. This is the fast path of a sync with a peer that remembers
// (epoch, sequence) from last time.
func (s *Store) Since(after uint64, limit int, fn func(seq uint64, raw []byte) error) (uint64, error) {
	return s.SinceUpTo(after, ^uint64(0), limit, fn)
}

// SinceUpTo is Since limited to sequence numbers up to upto (inclusive).
func (s *Store) SinceUpTo(after, upto uint64, limit int, fn func(seq uint64, raw []byte) error) (uint64, error) {
	last := after
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEnv).Cursor()
		n := 0
		for k, v := c.Seek(u64be(after + 1)); k != nil; k, v = c.Next() {
			if limit > 0 && n >= limit {
				break
			}
			seq := be64(k)
			if seq > upto {
				break
			}
			if err := fn(seq, v); err != nil {
				return err
			}
			last = seq
			n++
		}
		return nil
	})
	return last, err
}

// Envelopes returns the encoded envelopes held for each of ids (none for an unknown id).
func (s *Store) Envelopes(ids []merkle.ID, fn func(raw []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		t := s.newTx(tx)
		envs := tx.Bucket(bucketEnv)
		for _, id := range ids {
			e, ok, err := t.loadEntry(id)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			for _, seq := range e.seqs {
				raw := envs.Get(u64be(seq))
				if raw == nil {
					return fmt.Errorf("%w: envelope %d missing", ErrCorrupt, seq)
				}
				if err := fn(raw); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
