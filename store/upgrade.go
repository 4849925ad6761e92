package store

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
)

// Upgrading a store made before signatures existed (authority.go).
//
// Such a store holds reserved records without signatures, and knows its mesh's devices
// only from them. Upgrade trusts what the store holds, once, on the user's own device:
// every device it lists that is not removed becomes an anchor, every removal it lists
// becomes a signed removal record of this device, and every unsigned reserved record is
// written again as a signed version of this device that dominates the old ones — or, for a
// key grant of another device, deleted (every device that was a member when the grant was
// written has adopted its key; later members get signed grants). Devices that upgrade
// separately each do the same; their rewrites carry identical values, which are not a
// conflict. Peers running the older release are refused at the hello with a request to
// upgrade, so no unsigned record comes back.

// Upgraded reports whether the store's reserved records are signed: made by this release,
// paired with trust anchors, or upgraded.
func (h Authority) Upgraded() (bool, error) {
	s := h.s
	var ok bool
	err := s.View(func(t *Tx) error {
		ok = len(t.tx.Bucket(bucketMeta).Get(metaAuthority)) > 0
		return nil
	})
	return ok, err
}

// LegacyDevice is what Upgrade needs of a device the store lists: its signing key (from
// its peer id) and, for a removed one, where its accepted writes end.
type LegacyDevice struct {
	Key     ed25519.PublicKey
	Removed *RemovalPoint
}

// Upgrade moves the store to signed authority records: devs are the devices its device
// list names (the node reads them, since it knows the record format and the peer ids). It
// needs the signing key (AdoptSigningKey) and does nothing on a store already upgraded.
func (h Authority) Upgrade(devs map[resolve.DeviceID]LegacyDevice) error {
	s := h.s
	if s.keys.blind {
		return nil
	}
	if s.signer == nil {
		return fmt.Errorf("upgrade store: %w", ErrNoSigningKey)
	}
	err := s.Update(func(t *Tx) error {
		meta := t.tx.Bucket(bucketMeta)
		if len(meta.Get(metaAuthority)) > 0 {
			return nil
		}
		t.ConfirmMassDelete() // deleting other devices' old grants is not a user's bulk delete
		anchors := map[resolve.DeviceID]ed25519.PublicKey{s.device.ID: s.signer.Public().(ed25519.PublicKey)}
		for id, d := range devs {
			if d.Removed == nil && len(d.Key) == ed25519.PublicKeySize && id != s.device.ID {
				anchors[id] = d.Key
			}
		}
		if err := t.addAnchors(anchors, false); err != nil {
			return err
		}
		legacy, err := t.unsignedRecords()
		if err != nil {
			return err
		}
		for _, r := range legacy {
			if err := t.resign(r, devs); err != nil {
				return fmt.Errorf("re-sign %s/%s: %w", r.Collection, r.Key, err)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(devs)) {
			if d := devs[id]; d.Removed != nil && id != s.device.ID {
				b, err := json.Marshal(removalRec{Device: id, By: s.device.ID, Point: *d.Removed})
				if err != nil {
					return err
				}
				if err := t.PutReserved(RemovalsCollection, removalKey(id, s.device.ID), b); err != nil {
					return err
				}
			}
		}
		return meta.Put(metaAuthority, []byte{authorityVersion})
	})
	if err != nil {
		return fmt.Errorf("upgrade store to signed records: %w", err)
	}
	return nil
}

// legacyRecord is a reserved record with at least one unsigned version.
type legacyRecord struct {
	Collection, Key string
	deleted         bool   // it reads as deleted
	value           []byte // its resolved value otherwise
}

// unsignedRecords lists every reserved record holding an unsigned version. It reads every
// record once (an upgrade runs once).
func (t *Tx) unsignedRecords() ([]legacyRecord, error) {
	var out []legacyRecord
	var ids []merkle.ID
	if err := t.flushIndexes(); err != nil { // the walk reads the buckets directly
		return nil, err
	}
	err := t.walkRecords(merkle.ID{}, true, func(r heldRecord) (bool, error) {
		ids = append(ids, r.id)
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		set, err := t.antichain(id)
		if err != nil {
			return nil, err
		}
		unsigned := false
		var p *payload
		for _, h := range set {
			q, err := t.s.keys.open(h.env)
			if err != nil {
				continue
			}
			p = q
			if reservedCollection(q.Collection) && len(q.Sig) == 0 {
				unsigned = true
			}
		}
		if !unsigned || p == nil {
			continue
		}
		r := legacyRecord{Collection: p.Collection, Key: p.Key}
		rec, err := t.record(p.Collection, p.Key, id, set)
		if err != nil {
			return nil, err
		}
		if rec == nil {
			r.deleted = true
		} else {
			r.value = rec.Value
		}
		out = append(out, r)
	}
	return out, nil
}

// resign writes a legacy record again as a signed version of this device.
func (t *Tx) resign(r legacyRecord, devs map[resolve.DeviceID]LegacyDevice) error {
	self := t.s.device.ID
	switch {
	case r.deleted:
		return t.write(r.Collection, r.Key, resolve.KindDeleted, nil)
	case r.Collection == KeysCollection:
		g, err := parseGrant(r.value)
		if err != nil || g.By != self {
			return t.write(r.Collection, r.Key, resolve.KindDeleted, nil)
		}
	case r.Collection == DevicesCollection:
		d, ok := devs[resolve.DeviceID(r.Key)]
		if !ok || len(d.Key) != ed25519.PublicKeySize {
			return nil // a record this device cannot vouch for stays as it is, unread
		}
		var m map[string]any
		if err := json.Unmarshal(r.value, &m); err != nil {
			return nil
		}
		ad, err := t.s.Authority().Admit(resolve.DeviceID(r.Key), d.Key)
		if err != nil {
			return err
		}
		m["key"], m["admission"] = []byte(d.Key), ad
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return t.PutReserved(r.Collection, r.Key, b)
	}
	return t.PutReserved(r.Collection, r.Key, r.value)
}
