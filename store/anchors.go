package store

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/meshsync/meshsync/resolve"
)

// A device's signing key and the devices its store trusts without proof (authority.go).

// anchors reads the devices this store trusts without proof.
func (s *Store) anchors(tx *bolt.Tx) (map[resolve.DeviceID]ed25519.PublicKey, error) {
	var m map[resolve.DeviceID][]byte
	if err := s.getLocalJSON(tx, localAnchors, &m); err != nil {
		return nil, fmt.Errorf("anchors: %w", err)
	}
	out := map[resolve.DeviceID]ed25519.PublicKey{}
	for id, k := range m {
		if len(k) == ed25519.PublicKeySize {
			out[id] = k
		}
	}
	return out, nil
}

// AddAnchors adds devices this store trusts without proof: the members an inviter vouched
// for at pairing. Only meshsync's pairing calls it, with what came over the authenticated
// channel.
func (h Authority) AddAnchors(devs map[resolve.DeviceID]ed25519.PublicKey) error {
	s := h.s
	err := s.Update(func(t *Tx) error { return t.addAnchors(devs, true) })
	if err != nil {
		return fmt.Errorf("add trust anchors: %w", err)
	}
	return nil
}

// addAnchors adds trust anchors; mark records that the store's authority records are
// signed (no Upgrade needed).
func (t *Tx) addAnchors(devs map[resolve.DeviceID]ed25519.PublicKey, mark bool) error {
	cur, err := t.s.anchors(t.tx)
	if err != nil {
		return err
	}
	out := map[resolve.DeviceID][]byte{}
	for id, k := range cur {
		out[id] = k
	}
	for id, k := range devs {
		if len(k) != ed25519.PublicKeySize || id == "" || len(id) > MaxDeviceIDSize {
			return fmt.Errorf("%w: anchor %q", ErrInvalid, id)
		}
		if old, ok := out[id]; ok && !bytes.Equal(old, k) {
			return fmt.Errorf("%w: anchor %s already has another key", ErrNotAllowed, id)
		}
		out[id] = k
	}
	t.authDirty, t.auth = true, nil
	if mark {
		if err := t.tx.Bucket(bucketMeta).Put(metaAuthority, []byte{authorityVersion}); err != nil {
			return err
		}
	}
	return t.s.putLocalJSON(t.tx, localAnchors, out)
}

// currentMembers are the devices this store counts as members now, itself included when
// it is one (a backup carries them).
func (s *Store) currentMembers() (map[resolve.DeviceID][]byte, error) {
	if s.keys.blind {
		return nil, nil
	}
	out := map[resolve.DeviceID][]byte{}
	err := s.View(func(t *Tx) error {
		a, err := t.authority()
		if err != nil {
			return err
		}
		for id, m := range a.members {
			if !m.Removed {
				out[id] = m.Key
			}
		}
		return nil
	})
	return out, err
}

// restoredAnchors are the anchors of a store restored from a backup: the members the
// backup names, and the new device itself (the root of its own trust from now on).
func restoredAnchors(members map[resolve.DeviceID][]byte, s *Store) map[resolve.DeviceID]ed25519.PublicKey {
	out := map[resolve.DeviceID]ed25519.PublicKey{}
	for id, k := range members {
		if len(k) == ed25519.PublicKeySize && id != s.device.ID && len(id) <= MaxDeviceIDSize {
			out[id] = k
		}
	}
	if s.signer != nil {
		out[s.device.ID] = s.signer.Public().(ed25519.PublicKey)
	}
	return out
}

// SigningKey returns this device's Ed25519 signing key (also its libp2p identity), or nil
// when the store has none yet (one made before signatures existed; see AdoptSigningKey).
func (h Keys) SigningKey() ed25519.PrivateKey {
	s := h.s
	return s.signer
}

// AdoptSigningKey makes key this device's signing key when the store has none: an upgraded
// store takes the identity key its node already used. A store with another key refuses.
func (h Keys) AdoptSigningKey(key ed25519.PrivateKey) error {
	s := h.s
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("adopt signing key: %w: not an Ed25519 key", ErrInvalid)
	}
	if s.signer != nil {
		if bytes.Equal(s.signer, key) {
			return nil
		}
		return fmt.Errorf("adopt signing key: %w: the store already has another", ErrNotAllowed)
	}
	err := s.update(func(tx *bolt.Tx) error { return s.putLocalJSON(tx, localSigningKey, key.Seed()) })
	if err != nil {
		return fmt.Errorf("adopt signing key: %w", err)
	}
	s.signer = key
	return nil
}

// newSigningKey keeps key, or a new random key when it is nil, as the signing key (Init).
func (s *Store) newSigningKey(tx *bolt.Tx, key ed25519.PrivateKey) error {
	if key == nil {
		var err error
		if _, key, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return err
		}
	} else if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: signing key is not an Ed25519 key", ErrInvalid)
	}
	if err := s.putLocalJSON(tx, localSigningKey, key.Seed()); err != nil {
		return err
	}
	s.signer = key
	return nil
}

// loadSigningKey reads the signing key (Open); a store without one keeps nil.
func (s *Store) loadSigningKey(tx *bolt.Tx) error {
	var seed []byte
	if err := s.getLocalJSON(tx, localSigningKey, &seed); err != nil {
		return err
	}
	if seed == nil {
		return nil
	}
	if len(seed) != ed25519.SeedSize {
		return fmt.Errorf("%w: signing key", ErrCorrupt)
	}
	s.signer = ed25519.NewKeyFromSeed(seed)
	return nil
}
