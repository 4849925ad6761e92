package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/meshsync/meshsync/merkle"
)

// The background re-seal of old envelopes under the newest key (see rotate.go).

// ResealStats reports one Reseal call.
type ResealStats struct {
	// Resealed counts envelopes sealed again under the newest key.
	Resealed int
	// Records counts the records looked at.
	Records int
	// Unreadable counts envelopes under a key this device does not hold (left as they are).
	Unreadable int
	// Done is set when the pass reached the last record: nothing under an older epoch is
	// left that this device can open (until more arrive).
	Done bool
}

// Reseal seals again, under the newest key this device holds, up to about limit envelopes
// that are still under an older epoch, keeping their versions (a fresh nonce each), and
// remembers where it stopped. Call it until Done. Every store that sees both envelopes
// keeps the re-sealed one (the higher epoch), so re-sealing on any device converges.
func (h Keys) Reseal(limit int) (ResealStats, error) {
	s := h.s
	var st ResealStats
	if err := s.needKey("reseal"); err != nil {
		return st, err
	}
	if limit <= 0 {
		limit = DefaultResealBatch
	}
	err := s.Update(func(t *Tx) error {
		st = ResealStats{}
		if err := s.loadEpochKeys(t.tx); err != nil {
			return err
		}
		epoch, key := s.keys.sealKey()
		meta := t.tx.Bucket(bucketMeta)
		if epoch == 0 {
			st.Done = true
			return meta.Delete(metaResealCursor)
		}
		// The cursor is the first record not looked at yet.
		from := bytes.Clone(meta.Get(metaResealCursor))
		// Records are visited in id order; the records to re-seal are listed first, as the
		// re-seal writes the index the walk reads.
		if err := t.flushIndexes(); err != nil { // the walk reads the buckets directly
			return err
		}
		// The walk starts after an id: the one just before the cursor.
		var after merkle.ID
		copy(after[:], from)
		first := from == nil || after == (merkle.ID{})
		after = idBefore(after)
		var ids []merkle.ID
		var next []byte
		err := t.walkRecords(after, first, func(r heldRecord) (bool, error) {
			if len(ids) >= 64*limit {
				next = bytes.Clone(r.id[:])
				return true, nil
			}
			ids = append(ids, r.id)
			return false, nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			if st.Resealed >= limit {
				return meta.Put(metaResealCursor, bytes.Clone(id[:]))
			}
			st.Records++
			n, bad, err := t.resealRecord(id, epoch, key)
			if err != nil {
				return err
			}
			st.Resealed += n
			st.Unreadable += bad
		}
		if next != nil {
			return meta.Put(metaResealCursor, next)
		}
		st.Done = true
		return meta.Delete(metaResealCursor)
	})
	if err != nil {
		return ResealStats{}, fmt.Errorf("reseal: %w", err)
	}
	return st, nil
}

// idBefore is the id just below id (id must not be zero).
func idBefore(id merkle.ID) merkle.ID {
	for i := len(id) - 1; i >= 0; i-- {
		id[i]--
		if id[i] != 0xff {
			break
		}
	}
	return id
}

// resealRecord re-seals the envelopes of one record that are under an epoch older than
// epoch. Key grants stay under epoch 0.
func (t *Tx) resealRecord(id merkle.ID, epoch uint32, key []byte) (resealed, unreadable int, err error) {
	set, err := t.antichain(id)
	if err != nil {
		return 0, 0, err
	}
	next := slices.Clone(set)
	for i, h := range set {
		if h.env.KeyEpoch >= epoch {
			continue
		}
		p, err := t.s.keys.open(h.env)
		if err != nil {
			unreadable++
			continue
		}
		if underMeshKey(p) {
			continue
		}
		plain, err := p.marshal()
		if err != nil {
			return 0, 0, err
		}
		e, err := t.s.keys.sealWith(id, t.s.keys.tag(p.Collection), h.env.Version, plain, epoch, key)
		if err != nil {
			return 0, 0, err
		}
		if next[i], err = newHashed(e); err != nil {
			return 0, 0, err
		}
		resealed++
	}
	if resealed == 0 {
		return 0, unreadable, nil
	}
	return resealed, unreadable, t.replace(id, set, next)
}

// ResealOwn re-seals at once, under the newest clean key, this device's own writes that
// the other devices refuse: data envelopes it sealed after a removal under a key the
// removed device holds, because it wrote before the new key epoch reached it. Reseal
// gets to them too, but a device that did not start the new epoch begins that pass only
// after a while (node: the re-seal delay), and until then the write reaches no one. It
// reads every envelope's clear header, opens only this device's written after the
// earliest removal, and returns how many envelopes it re-sealed (0 without a clean key).
func (h Keys) ResealOwn() (int, error) {
	s := h.s
	if err := s.needKey("reseal own writes"); err != nil {
		return 0, err
	}
	n := 0
	err := s.Update(func(t *Tx) error {
		n = 0
		if err := s.loadEpochKeys(t.tx); err != nil {
			return err
		}
		a, err := t.authority()
		if err != nil || len(a.keyCut) == 0 {
			return err
		}
		s.keys.exclude(a.unclean)
		clean, ok := s.keys.cleanSealKey()
		if !ok {
			return nil
		}
		first := slices.Min(slices.Collect(maps.Values(a.keyCut)))
		var ids []merkle.ID
		err = t.eachEnvelope(func(e *Envelope) error { // revoke.go
			if e.Version.Device != s.device.ID || e.Version.Clock <= first || e.KeyEpoch >= clean.Epoch {
				return nil
			}
			p, err := s.keys.open(e)
			if err != nil || reservedCollection(p.Collection) {
				return nil
			}
			if cut, ok := a.keyCut[p.keyID]; ok && e.Version.Clock > cut && !slices.Contains(ids, e.ID) {
				ids = append(ids, e.ID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			r, _, err := t.resealRecord(id, clean.Epoch, clean.Key)
			if err != nil {
				return err
			}
			n += r
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reseal own writes: %w", err)
	}
	return n, nil
}
