package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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
	// OutOfScope counts envelopes of collections outside this device's scope (scope.go),
	// left out: a peer that knows the scope does not send them, a replica's old untagged
	// ones are told apart only once opened.
	OutOfScope int
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
func (h Replication) Apply(raw [][]byte) (ApplyResult, error) {
	s := h.s
	return s.Replication().ApplyWith(raw, nil)
}

// ApplyWith is Apply, and then calls fn (when not nil) in the same transaction, so that a
// caller can record its progress (Tx.PutLocal) atomically with the envelopes.
func (h Replication) ApplyWith(raw [][]byte, fn func(*Tx, ApplyResult) error) (ApplyResult, error) {
	return h.applyWith(h.s.prepare(raw, 1), fn, false)
}

func (h Replication) applyWith(pre *Prepared, fn func(*Tx, ApplyResult) error, inOrder bool) (ApplyResult, error) {
	s := h.s
	raw := pre.raw
	var res ApplyResult
	err := s.Update(func(t *Tx) error {
		res = ApplyResult{}
		if inOrder {
			t.packIndexes()
		}
		if err := t.applyPrepared(pre, &res); err != nil {
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
	if slices.ContainsFunc(res.Changes, func(c Change) bool { return c.Collection == RemovalsCollection }) {
		// In a transaction of its own, so that the batch's sequence range holds only what
		// it brought (a peer skips those when it sends back).
		if err := s.writeViews(); err != nil {
			return res, fmt.Errorf("apply %d envelopes: write this device's view of a removal: %w", len(raw), err)
		}
	}
	return res, nil
}

func (t *Tx) apply(raw [][]byte, res *ApplyResult) error {
	return t.applyPrepared(t.s.prepare(raw, 1), res)
}

func (t *Tx) applyPrepared(pre *Prepared, res *ApplyResult) error {
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
	reject := func(i int, err error) { res.Rejected = append(res.Rejected, Rejected{Index: i, Err: err}) }
	// The records that decide membership go first, each once its writer is known, so
	// that a batch which admits a device and carries its records applies whole, and a
	// removal is known before the removed device's writes in the same batch are judged.
	type item struct {
		i   int
		env *Envelope
		p   *payload
		h   *preparedHash
	}
	var members, rest []item
	for k := range pre.items {
		pe := &pre.items[k]
		i, env, p := pe.i, pe.env, pe.p
		if pe.err != nil {
			reject(i, pe.err)
			continue
		}
		if !t.inScope(env, p) {
			res.OutOfScope++
			continue
		}
		if p != nil && membershipCollection(p.Collection) {
			members = append(members, item{i, env, p, pe.h})
		} else {
			rest = append(rest, item{i, env, p, pe.h})
		}
	}
	for progress := true; progress && len(members) > 0; {
		progress = false
		var wait []item
		for _, it := range members {
			err := t.admit(ak, it.env, it.p)
			if errors.Is(err, ErrUnknownSigner) {
				wait = append(wait, it)
				continue
			}
			if err == nil {
				err = t.applyOne(it.env, it.p, it.h, res, changed, ak)
			}
			if err != nil {
				if !isRefusal(err) {
					return err
				}
				reject(it.i, err)
				continue
			}
			progress = true
		}
		members = wait
	}
	for _, it := range members {
		reject(it.i, t.admit(ak, it.env, it.p))
	}
	if t.authDirty && !t.s.keys.blind {
		if err := t.settleRemovals(ak); err != nil {
			return err
		}
	}
	for _, it := range rest {
		p := it.p
		var err error
		if p == nil {
			p, err = t.openForApply(it.env) // nil on a blind replica, which cannot open it
			if err != nil {
				p, err = ak.retry(t, it.env, err) // a key granted earlier in this batch
			}
			if err != nil {
				err = refusal{err}
			}
			if err == nil && !t.inScope(it.env, p) {
				res.OutOfScope++
				continue
			}
		}
		if err == nil {
			err = t.admit(ak, it.env, p)
		}
		if err == nil {
			err = t.applyOne(it.env, p, it.h, res, changed, ak)
		}
		if err != nil {
			if !isRefusal(err) {
				return err
			}
			reject(it.i, err)
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

// Prepared is a batch of envelopes decoded, checked and opened ahead of the transaction
// that applies it (Replication.Prepare): what needs no store state. ApplyPrepared applies
// it as ApplyWith applies the same bytes, once (the transaction may edit its envelopes).
type Prepared struct {
	raw   [][]byte
	items []preparedEnv // in applyOrder
}

type preparedEnv struct {
	i   int
	env *Envelope
	p   *payload // opened (epoch 0, a device's store); nil on a blind replica or a later epoch
	err error    // refused before the transaction: malformed, counters, tampered
	h   *preparedHash
}

// preparedHash is an envelope encoded and hashed by Prepare, with the collection tag it
// had then (applyOne hashes again an envelope the transaction tagged since).
type preparedHash struct {
	h   hashed
	tag Tag
}

// Prepare decodes envelopes, checks their counters and opens those of key epoch 0 on up
// to workers goroutines at once (workers < 1: one), without a transaction: the work of an
// apply that needs no store state, so that a receiver can do it on every core while
// another batch commits. Each envelope's outcome is kept for ApplyPrepared; Prepare
// itself fails on nothing.
func (h Replication) Prepare(raw [][]byte, workers int) *Prepared {
	return h.s.prepare(raw, workers)
}

// ApplyPrepared is ApplyWith for a prepared batch: the store's authority, membership and
// antichain checks run in its transaction. inOrder is ApplyInOrder's hint.
func (h Replication) ApplyPrepared(pre *Prepared, fn func(*Tx, ApplyResult) error, inOrder bool) (ApplyResult, error) {
	return h.applyWith(pre, fn, inOrder)
}

// prepareChunk is the envelopes one Prepare worker takes at a time.
const prepareChunk = 256

func (s *Store) prepare(raw [][]byte, workers int) *Prepared {
	order := applyOrder(raw)
	pre := &Prepared{raw: raw, items: make([]preparedEnv, len(order))}
	// One allocation each for the batch's envelopes and hashes, and one per chunk for
	// its plaintexts, instead of one per envelope for each.
	envs := make([]Envelope, len(order))
	hashes := make([]preparedHash, len(order))
	one := func(k int, plain *[]byte, names *deviceNames) {
		i := order[k]
		pe := preparedEnv{i: i}
		if pe.err = unmarshalEnvelopeInto(&envs[k], raw[i], true, names); pe.err == nil { // raw[i] is kept with the envelope
			pe.env = &envs[k]
			pe.err = checkCounters(pe.env.Version) // counters a local write could not pass (guard.go)
		}
		if pe.err == nil && pe.env.KeyEpoch == 0 && !s.keys.blind {
			var pt []byte
			pe.p, pt, pe.err = s.keys.openTo(pe.env, (*plain)[len(*plain):])
			if len(pt) <= cap(*plain)-len(*plain) {
				*plain = (*plain)[:len(*plain)+len(pt)] // it went into the chunk's buffer
			}
		}
		if pe.err == nil {
			// Decoding is canonical (FuzzEnvelope): the bytes received are the envelope's
			// encoding, hashed as they are.
			hashes[k] = preparedHash{hashed{env: pe.env, raw: raw[i], hash: sha256.Sum256(raw[i])}, pe.env.Tag}
			pe.h = &hashes[k]
		}
		pre.items[k] = pe
	}
	chunk := func(from, to int) {
		n := 0
		for k := from; k < to; k++ {
			n += len(raw[order[k]]) // a plaintext is shorter than its envelope
		}
		plain := make([]byte, 0, n)
		var names deviceNames
		for k := from; k < to; k++ {
			one(k, &plain, &names)
		}
	}
	if workers <= 1 || len(order) <= prepareChunk {
		for from := 0; from < len(order); from += prepareChunk {
			chunk(from, min(from+prepareChunk, len(order)))
		}
		return pre
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, (len(order)+prepareChunk-1)/prepareChunk) {
		wg.Go(func() {
			for {
				from := int(next.Add(prepareChunk)) - prepareChunk
				if from >= len(order) {
					return
				}
				chunk(from, min(from+prepareChunk, len(order)))
			}
		})
	}
	wg.Wait()
	return pre
}

// refusal marks an error that refuses one envelope, as opposed to one that fails the
// whole transaction.
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

func isRefusal(err error) bool {
	var r refusal
	return errors.As(err, &r)
}

// admit checks an opened envelope against the authority rules: a removed device's write
// after its cut, a record of a reserved collection that does not prove its writer, a
// data envelope under a key a removed device holds written after its removal. A blind
// replica (p nil) checks only the clear header.
func (t *Tx) admit(ak *applyKeys, e *Envelope, p *payload) error {
	err := t.check(ak, e, p)
	if err == nil || !isRefusal(err) {
		return err
	}
	// What the store holds already, or holds something newer of, changes nothing: it is
	// stale, not refused (a device's own record coming back, a removed device's old write).
	set, serr := t.antichain(e.ID)
	if serr != nil {
		return serr
	}
	h, herr := newHashed(e)
	if herr != nil {
		return refusal{herr}
	}
	if _, changes := mergeAntichain(set, h); !changes {
		return nil
	}
	return err
}

func (t *Tx) check(ak *applyKeys, e *Envelope, p *payload) error {
	// A removal record is judged by the removal rules (a removed device's removal counts
	// within DuelWindow of its own), not by its writer's cut: see authority.go.
	if p == nil || p.Collection != RemovalsCollection {
		if err := ak.refuse(e); err != nil {
			return refusal{err}
		}
	}
	if p == nil || t.trusted {
		return nil
	}
	a, err := t.authority()
	if err != nil {
		return err
	}
	if reservedCollection(p.Collection) {
		if err := t.checkAuthority(a, e, p); err != nil {
			return refusal{err}
		}
		return nil
	}
	if m, ok := a.member(e.Version.Device); ok && m.Removed {
		return nil // a removed device's own writes end at its cut (refuse, above)
	}
	if cut, ok := a.keyCut[p.keyID]; ok && e.Version.Clock > cut {
		return refusal{fmt.Errorf("envelope %x by %s: %w: sealed under a key of epoch %d that a removed device holds, after its removal (it is accepted once re-sealed under a newer key)",
			e.ID[:6], e.Version.Device, ErrRevoked, e.KeyEpoch)}
	}
	return nil
}

// applyOne merges one checked envelope into its record's antichain.
func (t *Tx) applyOne(env *Envelope, p *payload, pre *preparedHash, res *ApplyResult, changed map[merkle.ID]int, ak *applyKeys) error {
	var h hashed
	if pre != nil && pre.h.env == env && pre.tag == env.Tag {
		h = pre.h // encoded and hashed by Prepare, and not retagged since
	} else {
		var err error
		if h, err = newHashed(env); err != nil {
			return refusal{err}
		}
	}
	set, entry, existed, err := t.antichainEntry(env.ID)
	if err != nil {
		return err
	}
	held := set
	if env.Tag == (Tag{}) && tagOf(set) != (Tag{}) {
		env.Tag = tagOf(set) // an untagged copy of a record held tagged: tag it alike
	}
	if set, err = tagLegacy(set, env.Tag); err != nil {
		return err
	}
	if len(set) == 0 && t.collected(env, p) {
		res.Stale++ // a tombstone this store collected, or would have (gc.go)
		return nil
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
		if tagOf(held) != tagOf(set) { // nothing new, but what was held is tagged now
			return t.replaceEntry(env.ID, held, set, entry, existed)
		}
		return nil
	}
	if err := t.replaceEntry(env.ID, held, next, entry, existed); err != nil {
		return err
	}
	if p != nil {
		t.touchAuthority(p.Collection)
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
	return nil
}

// tagLegacy gives the envelopes of set that carry no collection tag (a blind replica's,
// from before tags) the tag of the envelope arriving for the same record: the bytes every
// device made of them when it took on tags (layout.go), so the stores agree again.
func tagLegacy(set []hashed, tag Tag) ([]hashed, error) {
	switch held := tagOf(set); {
	case tag == (Tag{}) || held == tag || len(set) == 0:
		return set, nil
	case held != (Tag{}):
		return nil, refusal{fmt.Errorf("%w: envelope tagged %s for a record of collection tag %s", ErrMalformed, tag, held)}
	}
	out := make([]hashed, len(set))
	for i, h := range set {
		e := *h.env
		e.Tag = tag
		var err error
		if out[i], err = newHashed(&e); err != nil {
			return nil, err
		}
	}
	sortByHash(out)
	return out, nil
}

// LastSeq is the highest local sequence number given to an envelope so far.
func (h Replication) LastSeq() (uint64, error) {
	s := h.s
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
func (h Replication) Since(after uint64, limit int, fn func(seq uint64, raw []byte) error) (uint64, error) {
	s := h.s
	return s.Replication().SinceUpTo(after, ^uint64(0), limit, fn)
}

// SinceUpTo is Since limited to sequence numbers up to upto (inclusive).
func (h Replication) SinceUpTo(after, upto uint64, limit int, fn func(seq uint64, raw []byte) error) (uint64, error) {
	s := h.s
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
func (h Replication) Envelopes(ids []merkle.ID, fn func(raw []byte) error) error {
	s := h.s
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
