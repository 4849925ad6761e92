package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
)

// Where a removed device's writes end, and what Apply checks of revocations and key epochs
// for each batch (see rotate.go and authority.go).

// RemovalPoint is where a removed device's writes stop being accepted: its envelopes with
// a counter (its own entry in the version vector) above Counter, or a clock above Clock,
// are refused. A device's clock never runs backwards, so whatever it writes after its
// removal has a later clock; a backdated clock with a counter above anything it wrote
// before is caught by Counter.
type RemovalPoint struct {
	Counter uint64            `json:"counter"`
	Clock   resolve.Timestamp `json:"clock"`
}

// RemovalPoint computes the removal point of dev from what this store holds: the highest
// counter of dev in any version, and the latest clock of a version dev wrote. It reads
// every envelope's clear header (it runs once per removal).
func (h Authority) RemovalPoint(dev resolve.DeviceID) (RemovalPoint, error) {
	s := h.s
	var rp RemovalPoint
	err := s.View(func(t *Tx) error {
		var err error
		rp, err = t.removalPoint(dev)
		return err
	})
	if err != nil {
		return RemovalPoint{}, fmt.Errorf("removal point of %s: %w", dev, err)
	}
	return rp, nil
}

func (t *Tx) removalPoint(dev resolve.DeviceID) (RemovalPoint, error) {
	var rp RemovalPoint
	err := t.eachEnvelope(func(e *Envelope) error {
		rp.Counter = max(rp.Counter, e.Version.VV[dev])
		if e.Version.Device == dev {
			rp.Clock = max(rp.Clock, e.Version.Clock)
		}
		return nil
	})
	return rp, err
}

// RevokeDevice makes a blind replica refuse, from now on, every envelope written by dev
// beyond its removal point at (Apply counts them in Rejected with ErrRevoked); the check
// reads only the clear header. Devices do not call it: they compute the points from the
// signed removal records (authority.go) and tell their replicas. Envelopes of dev beyond
// the point that the replica accepted before it heard of the removal are dropped, so that
// it ends with the same envelopes as the devices. It is persistent and idempotent; a later
// point for the same device raises the first on each axis (the devices' cut grows as the
// remaining devices report how far they had seen dev), an earlier one changes nothing.
func (h Authority) RevokeDevice(dev resolve.DeviceID, at RemovalPoint) error {
	s := h.s
	if dev == "" || len(dev) > MaxDeviceIDSize {
		return fmt.Errorf("revoke device: %w: device id", ErrInvalid)
	}
	if rev, err := s.Authority().Revoked(); err == nil {
		if old, ok := rev[dev]; ok && old.Counter >= at.Counter && old.Clock >= at.Clock {
			return nil // nothing to raise: no write transaction
		}
	}
	err := s.Update(func(t *Tx) error {
		rev, err := t.loadRevoked()
		if err != nil {
			return err
		}
		old, raised := rev[dev]
		if raised {
			at = RemovalPoint{Counter: max(old.Counter, at.Counter), Clock: max(old.Clock, at.Clock)}
			if at == old {
				return nil
			}
		}
		rev[dev] = at
		b, err := json.Marshal(rev)
		if err != nil {
			return err
		}
		if err := t.tx.Bucket(bucketMeta).Put(metaRevoked, b); err != nil {
			return err
		}
		if raised {
			return nil // a raised point refuses less: nothing held is dropped
		}
		return t.purgeRevoked(&applyKeys{rev: rev})
	})
	if err != nil {
		return fmt.Errorf("revoke device %s: %w", dev, err)
	}
	return nil
}

// eachEnvelope calls fn with every envelope the store holds, decoded, in sequence order.
func (t *Tx) eachEnvelope(fn func(*Envelope) error) error {
	c := t.tx.Bucket(bucketEnv).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e, err := UnmarshalEnvelope(v)
		if err != nil {
			return fmt.Errorf("%w: envelope %d: %v", ErrCorrupt, be64(k), err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// purgeRevoked drops the envelopes the store holds that ak refuses.
func (t *Tx) purgeRevoked(ak *applyKeys) error {
	var ids []merkle.ID
	err := t.eachEnvelope(func(e *Envelope) error {
		if ak.refuse(e) != nil && !slices.Contains(ids, e.ID) {
			ids = append(ids, e.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		set, err := t.antichain(id)
		if err != nil {
			return err
		}
		next := slices.DeleteFunc(slices.Clone(set), func(h hashed) bool { return ak.refuse(h.env) != nil })
		if len(next) == 0 {
			if err := t.drop(id, true); err != nil {
				return err
			}
			continue
		}
		if err := t.replace(id, set, next); err != nil {
			return err
		}
		if t.s.keys.blind {
			continue
		}
		p, err := t.s.keys.open(next[0].env)
		if err != nil {
			return err
		}
		rec, err := t.record(p.Collection, p.Key, id, next)
		if err != nil {
			return err
		}
		t.changes = append(t.changes, Change{Collection: p.Collection, Key: p.Key, ID: id, Deleted: rec == nil, Conflict: len(next) > 1})
	}
	return nil
}

// Revoked lists the removed devices and where their accepted writes end: on a device, as
// its signed removal records say; on a blind replica, as the devices told it.
func (h Authority) Revoked() (map[resolve.DeviceID]RemovalPoint, error) {
	s := h.s
	var rev map[resolve.DeviceID]RemovalPoint
	err := s.View(func(t *Tx) error {
		var err error
		rev, err = t.revokedDevices()
		return err
	})
	return rev, err
}

func (t *Tx) loadRevoked() (map[resolve.DeviceID]RemovalPoint, error) {
	rev := map[resolve.DeviceID]RemovalPoint{}
	if b := t.tx.Bucket(bucketMeta).Get(metaRevoked); b != nil {
		if err := json.Unmarshal(b, &rev); err != nil {
			return nil, fmt.Errorf("%w: revoked devices: %v", ErrCorrupt, err)
		}
	}
	return rev, nil
}

// applyKeys is Apply's view of revocations and key grants for one batch.
type applyKeys struct {
	rev     map[resolve.DeviceID]RemovalPoint
	adopted bool // grants were adopted after the batch's first envelope of an unknown epoch
	grants  bool // the batch brought key grants
}

// applyPrep loads what Apply needs to check envelopes against revocations and key epochs.
func (t *Tx) applyPrep() (*applyKeys, error) {
	if err := t.s.loadEpochKeys(t.tx); err != nil {
		return nil, err
	}
	rev, err := t.revokedDevices()
	if err != nil {
		return nil, err
	}
	return &applyKeys{rev: rev}, nil
}

// revokedDevices is where each removed device's accepted writes end: on a device, the cuts
// its signed removal records set (authority.go); on a blind replica, which cannot read
// them, what the devices told it (RevokeDevice).
func (t *Tx) revokedDevices() (map[resolve.DeviceID]RemovalPoint, error) {
	if t.s.keys.blind {
		return t.loadRevoked()
	}
	a, err := t.authority()
	if err != nil {
		return nil, err
	}
	t.s.keys.exclude(a.unclean)
	return a.cuts(), nil
}

// settleRemovals runs after Apply took membership records: the rest of the batch is
// judged against the new cuts. (This device's view of a removal it learns of is written
// after the batch commits: WriteViews.)
func (t *Tx) settleRemovals(ak *applyKeys) error {
	rev, err := t.revokedDevices()
	if err != nil {
		return err
	}
	ak.rev = rev
	return nil
}

// refuse reports ErrRevoked for an envelope written by a revoked device beyond its
// removal point.
func (a *applyKeys) refuse(e *Envelope) error {
	rp, ok := a.rev[e.Version.Device]
	if !ok {
		return nil
	}
	if e.Version.VV[e.Version.Device] > rp.Counter || e.Version.Clock > rp.Clock {
		return fmt.Errorf("envelope %x by %s: %w", e.ID[:6], e.Version.Device, ErrRevoked)
	}
	return nil
}

// retry opens an envelope of an unknown key epoch again after adopting the grants applied
// so far (Apply takes epoch-0 envelopes, among them the grants, first). Grants are adopted
// once per batch.
func (a *applyKeys) retry(t *Tx, e *Envelope, err error) (*payload, error) {
	if !errors.Is(err, ErrUnknownKeyEpoch) || a.adopted || t.s.keys.blind {
		return nil, err
	}
	a.adopted = true
	if _, aerr := t.adoptKeys(); aerr != nil {
		return nil, aerr
	}
	return t.s.keys.open(e)
}

// note remembers that the batch brought a key grant.
func (a *applyKeys) note(p *payload) {
	if p != nil && p.Collection == KeysCollection {
		a.grants = true
	}
}

// finish adopts the grants the batch brought, so that new writes go under the newest key.
func (a *applyKeys) finish(t *Tx) error {
	if !a.grants {
		return nil
	}
	_, err := t.adoptKeys()
	return err
}

// applyOrder is the order in which Apply takes a batch: envelopes under epoch 0 (among
// them every key grant) first, so that a batch that brings a new key and envelopes sealed
// under it applies whole. Apply's result does not depend on the order.
func applyOrder(raw [][]byte) []int {
	first := make([]int, 0, len(raw))
	var rest []int
	for i, b := range raw {
		// The epoch is the uvarint after the format byte, the 32-byte id and (format 2)
		// the 8-byte tag.
		at := 33
		if len(b) > 0 && b[0] == envelopeFormatTagged {
			at += len(Tag{})
		}
		if len(b) > at && b[at] == 0 {
			first = append(first, i)
		} else {
			rest = append(rest, i)
		}
	}
	return append(first, rest...)
}
