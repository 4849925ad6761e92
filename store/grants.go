package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"filippo.io/age"
	"github.com/meshsync/meshsync/resolve"
)

// Key grants: one record per (epoch key, recipient, granter) in KeysCollection, the key
// wrapped with age to the recipient's key-agreement key (see rotate.go).

// keyGrant is the value of a record in KeysCollection: one epoch key wrapped for one device.
type keyGrant struct {
	Epoch   uint32           `json:"epoch"`
	KeyID   string           `json:"key_id"`
	To      resolve.DeviceID `json:"to"`
	By      resolve.DeviceID `json:"by"`
	Wrapped []byte           `json:"wrapped"` // an age file to To's key-agreement key
}

func (g *keyGrant) recordKey() string {
	return fmt.Sprintf("%010d.%s/%s/%s", g.Epoch, g.KeyID, g.To, g.By)
}

// parseGrant decodes and checks a grant record's value, from any device of the mesh.
func parseGrant(b []byte) (*keyGrant, error) {
	if len(b) > maxGrantSize {
		return nil, fmt.Errorf("%w: key grant of %d bytes", ErrMalformed, len(b))
	}
	var g keyGrant
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("%w: key grant: %v", ErrMalformed, err)
	}
	if _, err := hex.DecodeString(g.KeyID); err != nil || len(g.KeyID) != 16 {
		return nil, fmt.Errorf("%w: key grant names no key id", ErrMalformed)
	}
	if g.Epoch == 0 || g.To == "" || g.By == "" || len(g.To) > MaxDeviceIDSize || len(g.By) > MaxDeviceIDSize {
		return nil, fmt.Errorf("%w: key grant without epoch or devices", ErrMalformed)
	}
	if len(g.Wrapped) == 0 || len(g.Wrapped) > maxWrappedSize {
		return nil, fmt.Errorf("%w: wrapped key of %d bytes", ErrMalformed, len(g.Wrapped))
	}
	return &g, nil
}

// wrapKey encrypts an epoch key to a device's key-agreement key.
func wrapKey(ek epochKey, to resolve.DeviceID, pub string, by resolve.DeviceID) (*keyGrant, error) {
	r, err := age.ParseX25519Recipient(pub)
	if err != nil {
		return nil, fmt.Errorf("grant key to %s: %w: %v", to, ErrNoKeyAgreementKey, err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(epochKeyPlain(ek)); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return &keyGrant{Epoch: ek.Epoch, KeyID: ek.id(), To: to, By: by, Wrapped: buf.Bytes()}, nil
}

func epochKeyPlain(ek epochKey) []byte {
	b := append([]byte(epochKeyMagic), 0)
	b = binary.BigEndian.AppendUint32(b, ek.Epoch)
	return append(b, ek.Key...)
}

// unwrapKey opens a grant addressed to this device and checks that the key inside is the
// one the grant names.
func unwrapKey(g *keyGrant, id *age.X25519Identity) (epochKey, error) {
	r, err := age.Decrypt(bytes.NewReader(g.Wrapped), id)
	if err != nil {
		return epochKey{}, fmt.Errorf("open key grant %s: %w", g.recordKey(), err)
	}
	want := len(epochKeyMagic) + 1 + 4 + 32
	b, err := io.ReadAll(io.LimitReader(r, int64(want)+1))
	if err != nil {
		return epochKey{}, fmt.Errorf("open key grant %s: %w", g.recordKey(), err)
	}
	if len(b) != want || !bytes.HasPrefix(b, append([]byte(epochKeyMagic), 0)) {
		return epochKey{}, fmt.Errorf("open key grant %s: %w: bad key format", g.recordKey(), ErrMalformed)
	}
	ek := epochKey{Epoch: binary.BigEndian.Uint32(b[len(epochKeyMagic)+1:]), Key: slices.Clone(b[want-32:])}
	if ek.Epoch != g.Epoch || ek.id() != g.KeyID {
		return epochKey{}, fmt.Errorf("open key grant %s: %w: the key inside is not the one named", g.recordKey(), ErrTampered)
	}
	return ek, nil
}

// underMeshKey reports whether a payload is sealed under epoch 0 whatever the newest epoch
// held: the key grants and the membership records (device list and removals), so that a
// device holding only the mesh key (one just paired, or one that missed rotations) can
// read who is a member and the grants addressed to it. They are signed, and a removed
// device that reads them learns device names and addresses, not data. Re-sealing leaves
// them alone.
func underMeshKey(p *payload) bool {
	return p.Collection == KeysCollection || membershipCollection(p.Collection)
}

// grants lists every well-formed grant record the store holds.
func (t *Tx) grants() ([]keyGrant, error) {
	recs, err := t.List(KeysCollection, "")
	if err != nil {
		return nil, err
	}
	out := make([]keyGrant, 0, len(recs))
	for _, r := range recs {
		g, err := parseGrant(r.Value)
		if err != nil || g.recordKey() != r.Key || g.By != r.Version.Device {
			continue // a grant this version cannot read, or one not written by its granter
		}
		out = append(out, *g)
	}
	return out, nil
}

// adoptKeys opens every grant addressed to this device whose key it does not hold yet,
// installs the keys and keeps them. It returns how many it adopted.
func (t *Tx) adoptKeys() (int, error) {
	if t.s.keys.blind {
		return 0, nil
	}
	if err := t.s.loadEpochKeys(t.tx); err != nil {
		return 0, err
	}
	gs, err := t.grants()
	if err != nil {
		return 0, err
	}
	es := t.s.keys.epochs.Load()
	var id *age.X25519Identity
	var got []epochKey
	for i := range gs {
		g := &gs[i]
		if g.To != t.s.device.ID || es.holds(g.Epoch, g.KeyID) || slices.ContainsFunc(got, func(k epochKey) bool { return k.Epoch == g.Epoch && k.id() == g.KeyID }) {
			continue
		}
		if id == nil {
			if id, err = t.s.kxIdentity(t.tx, false); err != nil {
				return 0, err
			}
			if id == nil {
				return 0, nil // no key-agreement key yet: nothing can be addressed to it
			}
		}
		ek, err := unwrapKey(g, id)
		if err != nil {
			continue // a grant to an older key of this device, or a broken one
		}
		got = append(got, ek)
	}
	if len(got) == 0 {
		return 0, nil
	}
	if err := t.s.saveEpochKeys(t.tx, got...); err != nil {
		return 0, err
	}
	t.s.keys.install(got...)
	return len(got), nil
}

// AdoptKeys opens the key grants addressed to this device that it has not opened yet (Apply
// does so by itself when a batch brings grants) and reports how many keys it adopted.
func (h Keys) AdoptKeys() (int, error) {
	s := h.s
	if err := s.needKey("adopt keys"); err != nil {
		return 0, err
	}
	var n int
	err := s.Update(func(t *Tx) error {
		var err error
		n, err = t.adoptKeys()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("adopt keys: %w", err)
	}
	return n, nil
}

func (t *Tx) putGrant(g *keyGrant) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return t.PutReserved(KeysCollection, g.recordKey(), b)
}

// GrantKeys grants every rotated key this device holds to dev (at its key-agreement key
// pub) that no device has granted it yet: a device paired after a rotation, or one that
// published its key-agreement key late. A revoked device gets nothing. It returns how many
// grants it wrote.
func (h Keys) GrantKeys(dev resolve.DeviceID, pub string) (int, error) {
	s := h.s
	if err := s.needKey("grant keys"); err != nil {
		return 0, err
	}
	n := 0
	err := s.Update(func(t *Tx) error {
		if _, err := t.adoptKeys(); err != nil {
			return err
		}
		rev, err := t.revokedDevices()
		if err != nil {
			return err
		}
		if _, gone := rev[dev]; gone {
			return nil
		}
		gs, err := t.grants()
		if err != nil {
			return err
		}
		for _, ek := range s.keys.epochs.Load().all() {
			id := ek.id()
			if slices.ContainsFunc(gs, func(g keyGrant) bool { return g.To == dev && g.Epoch == ek.Epoch && g.KeyID == id }) {
				continue
			}
			g, err := wrapKey(ek, dev, pub, s.device.ID)
			if err != nil {
				return err
			}
			if err := t.putGrant(g); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("grant keys to %s: %w", dev, err)
	}
	return n, nil
}
