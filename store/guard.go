package store

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/meshsync/meshsync/resolve"
	bolt "go.etcd.io/bbolt"
)

// Guards against the classic sync disasters that no single write can see: a store put back
// from an old copy of its file (a rollback), and a delete of most of a collection at once.

// MassDeleteMin is the smallest collection the mass-delete guard protects: a transaction
// that deletes more than half of the live records of a collection holding at least this
// many fails with ErrMassDelete unless it called Tx.ConfirmMassDelete.
const MassDeleteMin = 10

// ConfirmMassDelete allows this transaction to delete more than half of a collection. Call
// it only after the user confirmed the bulk delete; envelopes applied from other devices are
// never held back (their writer confirmed on its side).
func (t *Tx) ConfirmMassDelete() { t.massConfirmed = true }

// noteDelete remembers a delete for the mass-delete check at commit.
func (t *Tx) noteDelete(collection, key string) {
	if t.deleted == nil {
		t.deleted = map[string]map[string]struct{}{}
	}
	if t.deleted[collection] == nil {
		t.deleted[collection] = map[string]struct{}{}
	}
	t.deleted[collection][key] = struct{}{}
}

// checkMassDelete fails when the transaction deletes more than half of the live records of
// a collection of at least MassDeleteMin records and was not confirmed. Only transactions
// with enough deletes to trip the guard pay for counting the collection.
func (t *Tx) checkMassDelete() error {
	// A local write sealed before the rotated keys could be loaded (ownFloor) must not
	// commit: it may be under an epoch a removed device can read.
	if err := t.s.loadEpochKeys(t.tx); err != nil {
		return err
	}
	if t.massConfirmed {
		return nil
	}
	for coll, keys := range t.deleted {
		if 2*len(keys) <= MassDeleteMin {
			continue // cannot be more than half of MassDeleteMin or more records
		}
		gone := 0
		for k := range keys {
			if _, err := t.Get(coll, k); err != nil {
				gone++ // still deleted at commit (a delete then re-put does not count)
			}
		}
		live, err := t.List(coll, "")
		if err != nil {
			return err
		}
		before := len(live) + gone
		if before >= MassDeleteMin && 2*gone > before {
			return fmt.Errorf("delete %d of %d records of %s: %w", gone, before, coll, ErrMassDelete)
		}
	}
	return nil
}

// Rollback is the evidence that this store was put back from an older copy of its file (a
// restored backup of the disk, a copied file, a virtual-machine snapshot): envelopes from
// other devices carried this device's own version counters beyond anything the store holds.
type Rollback struct {
	// Detected is when the store first noticed.
	Detected time.Time `json:"detected"`
	// Records counts the envelopes that showed it (cumulative).
	Records int `json:"records"`
	// Epoch is the store epoch started when it was noticed, so that peers stop trusting
	// sequence numbers they remember from the old incarnation.
	Epoch [16]byte `json:"epoch"`
}

const localRollback = "rollback"

// RolledBack reports whether this store was ever found to have been restored from an older
// copy, and the evidence. The store keeps working: Apply brings the newer versions back
// from the other devices, and new local writes take counters above any the mesh has shown
// it (see Caveats in the package documentation).
func (h Replication) RolledBack() (Rollback, bool) {
	s := h.s
	var rb Rollback
	err := s.db.View(func(tx *bolt.Tx) error { return s.getLocalJSON(tx, localRollback, &rb) })
	return rb, err == nil && !rb.Detected.IsZero()
}

// NoteRollback records that the store is a stale incarnation (for example a peer remembers
// a higher sequence number of this epoch than LastSeq) and starts a new store epoch, so
// that every peer falls back to Merkle reconciliation instead of the fast path.
func (h Replication) NoteRollback() error {
	s := h.s
	return s.Update(func(t *Tx) error { return t.noteRollback(1) })
}

// noteRollback records n pieces of rollback evidence. The first in an open store starts a
// new epoch; later ones in the same session only count.
func (t *Tx) noteRollback(n int) error {
	var rb Rollback
	if err := t.s.getLocalJSON(t.tx, localRollback, &rb); err != nil {
		return err
	}
	if rb.Detected.IsZero() {
		rb.Detected = t.now.UTC()
	}
	rb.Records += n
	t.s.mu.Lock()
	done := t.s.newEpochDone
	t.s.mu.Unlock()
	if !done {
		var e [16]byte
		if _, err := rand.Read(e[:]); err != nil {
			return err
		}
		if err := t.tx.Bucket(bucketMeta).Put(metaEpoch, e[:]); err != nil {
			return err
		}
		rb.Epoch = e
		t.newEpoch = &e
	}
	return t.s.putLocalJSON(t.tx, localRollback, &rb)
}

// Bounds on version-vector counters (issue 15, finding 4). A counter is a count of one
// device's writes to one record, so honest counters stay small; these bounds only keep a
// hostile peer from spending the counter space for everyone.
const (
	// MaxCounter is the largest counter a version-vector entry may carry. Apply refuses an
	// envelope with a larger entry, for any device (ErrCounterRange), and a local write that
	// would count past it fails (ErrCounterExhausted) instead of wrapping to 0. It is 2^62:
	// a device writing a million times a second reaches it in about 146,000 years, and the
	// quarter of the uint64 range left above it means that no counter plus one, and no floor
	// plus MaxFloorStep, can wrap.
	MaxCounter uint64 = 1 << 62
	// MaxFloorStep bounds how far one transaction raises this device's own-counter floor
	// (ownFloor): at most 2^32 above the floor the transaction started from. The floor only
	// has to pass the writes this device made after the copy its store was restored from,
	// far fewer than four billion; a forged counter of this device moves it no further, so
	// spending the counter space this way takes 2^30 transactions of Apply.
	MaxFloorStep uint64 = 1 << 32
)

// checkCounters refuses a version from elsewhere with a counter above MaxCounter.
func checkCounters(v resolve.Version) error {
	for d, c := range v.VV {
		if c > MaxCounter {
			return fmt.Errorf("%w: device %.16s counts %d, limit %d", ErrCounterRange, d, c, MaxCounter)
		}
	}
	return nil
}

// nextOwnCounter is this device's counter for a local write to a record whose held
// versions count up to held for it: one above held and the floor, never past MaxCounter.
func (t *Tx) nextOwnCounter(held uint64) (uint64, error) {
	c := max(held, t.ownFloor())
	if c >= MaxCounter {
		return 0, fmt.Errorf("%w: counter %d, limit %d", ErrCounterExhausted, c, MaxCounter)
	}
	return c + 1, nil
}

// ownFloor is the highest counter of this device seen in an envelope from elsewhere (within
// MaxFloorStep per transaction); local writes count above it, so that a store restored from
// an old copy never reuses a (device, counter) pair the mesh already holds once it has heard
// of it.
func (t *Tx) ownFloor() uint64 {
	// Every local write asks for its floor just before it seals: load the rotated keys so
	// that it seals under the newest (an error here fails the commit in checkMassDelete).
	_ = t.s.loadEpochKeys(t.tx)
	if !t.floorLoaded {
		if v := t.tx.Bucket(bucketMeta).Get(metaOwnFloor); len(v) == 8 {
			t.floor = be64(v)
		}
		t.floorBase, t.floorLoaded = t.floor, true
	}
	return t.floor
}

// observeOwn checks an incoming version against the versions held for the same record:
// a counter of this device that the store never reached means the store was rolled back.
// It raises the floor of local counters (by at most MaxFloorStep in one transaction) and
// reports whether the version is such evidence.
func (t *Tx) observeOwn(v resolve.Version, held []hashed) (bool, error) {
	self := t.s.device.ID
	c := v.VV[self]
	if c == 0 {
		return false, nil
	}
	if c > t.ownFloor() {
		// Apply checked c against MaxCounter, so floorBase (< c) plus the step cannot wrap.
		if next := min(c, t.floorBase+MaxFloorStep); next > t.floor {
			t.floor = next
			if err := t.tx.Bucket(bucketMeta).Put(metaOwnFloor, u64be(next)); err != nil {
				return false, err
			}
		}
	}
	var most uint64
	for _, h := range held {
		most = max(most, h.env.Version.VV[self])
	}
	return c > most, nil
}
