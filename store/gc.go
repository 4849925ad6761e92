package store

import (
	"bytes"
	"fmt"
	"time"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
	bolt "go.etcd.io/bbolt"
)

// Tombstone collection and the bookkeeping of long absences.
//
// A delete is a tombstone version. A record whose antichain is a single tombstone older
// than the horizon is removed whole (envelopes, record index, Merkle tree).
// The horizon is the collection cut-off: now − TombstoneTTL, but never later than the last
// completed session with another device (LastContact), so that a device never drops a
// tombstone it may not have shown the mesh yet. The horizon only moves forward.
//
// Once a store has collected, an incoming tombstone older than its horizon for a record it
// does not hold is stale: a peer that has not collected yet does not bring it back. Live
// versions, however old, are applied: a new device must receive old records. A device
// that was away for longer than the horizon must therefore not hand its old live versions
// back; the sync layer resyncs it fully instead (ForgetBefore).

// DefaultTombstoneTTL is how long a tombstone is kept before it may be collected.
const DefaultTombstoneTTL = 90 * 24 * time.Hour

// gcBatch bounds the records removed per transaction, so that collecting a large store
// neither holds one huge transaction nor the write lock for long.
const gcBatch = 4096

var metaHorizon = []byte("horizon") // unix milliseconds, 8 bytes big endian

const localContact = "contact"

// Horizon is the cut-off of the last tombstone collection (zero before the first): the
// store may have dropped any tombstone older than it.
func (h Replication) Horizon() time.Time {
	s := h.s
	var ms uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaHorizon); len(v) == 8 {
			ms = be64(v)
		}
		return nil
	})
	return msTime(ms)
}

// AdoptHorizon raises the store's horizon to h (it never lowers it). A blind replica,
// which cannot tell a tombstone from a live version and so never collects, adopts the
// horizon of the devices it syncs with, so that it can tell a device back from a long
// absence to resync fully. A device that resynced fully from a peer adopts the peer's
// horizon: it now holds what the peer holds, and refuses as the peer does an old tombstone
// that a device which has not collected yet hands back.
func (r Replication) AdoptHorizon(h time.Time) error {
	return r.s.update(func(tx *bolt.Tx) error { return raiseHorizon(tx, h) })
}

func raiseHorizon(tx *bolt.Tx, h time.Time) error {
	meta := tx.Bucket(bucketMeta)
	ms := timeMs(h)
	if v := meta.Get(metaHorizon); len(v) == 8 && be64(v) >= ms {
		return nil
	}
	return meta.Put(metaHorizon, u64be(ms))
}

// NoteContact records t as the time of the last completed sync session with another
// device (the sync layer passes the session's start). It never moves back.
func (h Replication) NoteContact(t time.Time) error {
	s := h.s
	return s.update(func(tx *bolt.Tx) error {
		var cur time.Time
		if err := s.getLocalJSON(tx, localContact, &cur); err != nil {
			return err
		}
		if !t.After(cur) {
			return nil
		}
		return s.putLocalJSON(tx, localContact, t.UTC())
	})
}

// LastContact is the time NoteContact last recorded (zero when the store never synced).
func (h Replication) LastContact() time.Time {
	s := h.s
	var t time.Time
	_ = s.db.View(func(tx *bolt.Tx) error { return s.getLocalJSON(tx, localContact, &t) })
	return t
}

// CollectTombstones removes every record whose antichain is one tombstone older than the
// cut-off (now − TombstoneTTL, or LastContact when that is earlier and not zero), and
// raises the horizon to the cut-off. It works in transactions of a few thousand records;
// each record goes whole. It returns how many records it removed. A blind replica cannot
// tell a tombstone from a live version: it removes nothing.
func (h Replication) CollectTombstones() (int, error) {
	s := h.s
	if s.keys.blind {
		return 0, nil
	}
	cut := s.opts.Now().Add(-s.opts.TombstoneTTL)
	if lc := s.Replication().LastContact(); !lc.IsZero() && lc.Before(cut) {
		cut = lc
	}
	cutClock := resolve.MakeTimestamp(cut.UnixMilli(), 0)
	removed := 0
	var after []byte // last id examined
	for first := true; ; first = false {
		var next []byte
		err := s.Update(func(t *Tx) error {
			if first {
				// The horizon goes first: a crash halfway leaves it set, and the rest is
				// collected next time.
				if err := raiseHorizon(t.tx, cut); err != nil {
					return err
				}
			}
			ids, last, err := t.collectable(after, cutClock)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if err := t.drop(id, false); err != nil {
					return err
				}
			}
			removed += len(ids)
			next = last
			return nil
		})
		if err != nil {
			return removed, fmt.Errorf("collect tombstones: %w", err)
		}
		if next == nil {
			return removed, nil
		}
		after = next
	}
}

// collectable scans the record index after the id after and returns up to gcBatch
// records that are one tombstone older than cut, and the last id examined (nil at the
// end).
func (t *Tx) collectable(after []byte, cut resolve.Timestamp) ([]merkle.ID, []byte, error) {
	if err := t.flushIndexes(); err != nil { // the scan reads the buckets directly
		return nil, nil, err
	}
	var out []merkle.ID
	var from merkle.ID
	copy(from[:], after)
	scanned := 0
	var last []byte
	more := false
	err := t.walkRecords(from, after == nil, func(r heldRecord) (bool, error) {
		if len(out) >= gcBatch || scanned >= 16*gcBatch {
			more = true
			return true, nil
		}
		scanned++
		last = r.id[:]
		if len(r.seqs) != 1 { // concurrent versions: not one tombstone
			return false, nil
		}
		raw := t.envGet(r.seqs[0])
		if raw == nil {
			return false, fmt.Errorf("%w: envelope %d missing", ErrCorrupt, r.seqs[0])
		}
		env, err := UnmarshalEnvelope(raw)
		if err != nil {
			return false, fmt.Errorf("%w: envelope %d: %v", ErrCorrupt, r.seqs[0], err)
		}
		if env.Version.Clock >= cut {
			return false, nil // cheap test on the clear header before opening
		}
		p, err := t.s.keys.open(env)
		if err != nil {
			return false, err
		}
		if p.Value.Kind == resolve.KindDeleted {
			out = append(out, r.id)
		}
		return false, nil
	})
	if err != nil || !more {
		return out, nil, err
	}
	return out, bytes.Clone(last), nil
}

// ForgetBefore removes, of the records ids, those whose every version is older than
// before, and returns how many it removed. It is the last step of a full resync: a device
// back from an absence longer than the mesh's tombstone horizon drops the old records its
// peer no longer holds (deleted and collected elsewhere) instead of handing them back.
// Subscribers see each removed live record as deleted.
func (h Replication) ForgetBefore(ids []merkle.ID, before time.Time) (int, error) {
	s := h.s
	cut := resolve.MakeTimestamp(before.UnixMilli(), 0)
	removed := 0
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), gcBatch)]
		ids = ids[len(chunk):]
		err := s.Update(func(t *Tx) error {
			for _, id := range chunk {
				set, err := t.antichain(id)
				if err != nil {
					return err
				}
				old := len(set) > 0
				for _, h := range set {
					old = old && h.env.Version.Clock < cut
				}
				if !old {
					continue
				}
				if err := t.drop(id, true); err != nil {
					return err
				}
				removed++
			}
			return nil
		})
		if err != nil {
			return removed, fmt.Errorf("forget old records: %w", err)
		}
	}
	return removed, nil
}

// drop removes the record id whole: its envelopes, its record index entry and its item
// in the Merkle tree. With notify, a record that read as live is reported to
// subscribers as deleted.
func (t *Tx) drop(id merkle.ID, notify bool) error {
	set, entry, ok, err := t.antichainEntry(id)
	if err != nil || !ok {
		return err
	}
	tag := tagOf(set)
	if !t.s.keys.blind && len(set) > 0 {
		p, err := t.s.keys.open(set[0].env)
		if err != nil {
			return err
		}
		if notify {
			rec, err := t.record(p.Collection, p.Key, id, set)
			if err != nil {
				return err
			}
			if rec != nil {
				t.changes = append(t.changes, Change{Collection: p.Collection, Key: p.Key, ID: id, Deleted: true})
			}
		}
	}
	// The index first: telling records apart in a leaf reads their envelopes.
	if err := t.removeEntry(id, entry.tag); err != nil {
		return err
	}
	envs := t.tx.Bucket(bucketEnv)
	for _, seq := range entry.seqs {
		if err := envs.Delete(u64be(seq)); err != nil {
			return err
		}
	}
	return t.treeRemove(tag, id, antichainDigest(set))
}

// treeRemove takes the item (id, digest) out of every node on its path in the tree of tag.
func (t *Tx) treeRemove(tag Tag, id merkle.ID, digest merkle.Digest) error {
	return t.treeEdit(tag, id, func(n *merkle.Node) { n.Remove(merkle.Item{ID: id, Digest: digest}) })
}

// collected reports whether an incoming envelope for a record the store does not hold is
// a tombstone older than the horizon: the store collected it, or would have. p is nil on a
// blind replica, which cannot tell and so applies it.
func (t *Tx) collected(env *Envelope, p *payload) bool {
	if p == nil || p.Value.Kind != resolve.KindDeleted {
		return false
	}
	v := t.tx.Bucket(bucketMeta).Get(metaHorizon)
	return len(v) == 8 && env.Version.Clock < resolve.MakeTimestamp(int64(be64(v)), 0)
}

func timeMs(t time.Time) uint64 {
	if t.IsZero() || t.UnixMilli() < 0 {
		return 0
	}
	return uint64(t.UnixMilli())
}

func msTime(ms uint64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}
