package store

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"

	"github.com/meshsync/meshsync/resolve"
)

// Key rotation and device revocation.
//
// Epoch 0's data key comes from the mesh key, which every device that was ever paired
// holds. Removing a device starts a new key epoch: a fresh random data key, granted to each
// remaining device by a record in KeysCollection that holds the key encrypted (age, X25519)
// to that device's key-agreement key. A removed device can read the record but not the key.
// Every device that sees a grant addressed to it adopts the key (kept sealed in its local
// state) and seals new writes under the newest epoch it holds; old envelopes are re-sealed
// under it in the background (Reseal) with the same version and a fresh nonce. The
// antichain prefers the higher epoch among envelopes of one version (preferEnvelope), a
// rule on the clear header, so devices and blind replicas converge on the re-sealed bytes.
//
// Two devices that remove devices at the same time each start the same epoch number with a
// key of their own. Both keys are kept and tried when opening; new writes go under the key
// of the newest epoch with the lowest key id, the same choice on every device holding both.
// Since each of the two keys reached the device the other removed, NeedsRotation then asks
// for one more epoch.
//
// The key records themselves are always sealed under epoch 0 and never re-sealed, so that a
// device holding only the mesh key (one paired after a rotation, or one that missed a
// few) can read every grant addressed to it.
//
// The record id key never rotates: record ids, and so the Merkle summary, stay stable.

// KeysCollection is the reserved collection holding the key grants: one record per
// (epoch key, recipient device, granting device).
const KeysCollection = "_keys"

const (
	localEpochKeys = "epoch-keys"  // the rotated data keys this device holds
	localKXKey     = "kx-identity" // this device's age X25519 identity
	epochKeyMagic  = "meshsync/v1/epoch-key"
	labelKeyID     = "meshsync/v1/key-id"
	maxWrappedSize = 2048 // an age file holding one 32-byte key to one recipient is ~250 bytes
	maxGrantSize   = 4096
	// DefaultResealBatch is a good number of envelopes for one Reseal call: large enough to
	// amortise a commit, small enough not to hold other writers back for long.
	DefaultResealBatch = 512
)

var (
	metaRevoked      = []byte("revoked")       // device -> removal point (JSON, clear: ids and counters are clear in envelopes too)
	metaResealCursor = []byte("reseal-cursor") // record id where the background re-seal goes on
)

// KeyEpoch describes one rotated data key this device holds.
type KeyEpoch struct {
	// Epoch is the key epoch number envelopes sealed under this key carry.
	Epoch uint32 `json:"epoch"`
	// KeyID names the key (a hash of it); two keys of one epoch come from concurrent
	// rotations.
	KeyID string `json:"key_id"`
	// Recipients are the devices the key was granted to, sorted.
	Recipients []resolve.DeviceID `json:"recipients"`
	// By are the devices that granted it, sorted (the first grant comes from the device that
	// started the epoch).
	By []resolve.DeviceID `json:"by"`
	// Sealing is set on the key new writes are sealed under.
	Sealing bool `json:"sealing"`
}

// RotateKey starts a new key epoch: a fresh random data key granted to this device and to
// each device of recipients (device id → its KeyAgreementKey), and to no one else. Revoked
// devices are skipped. From then on this device seals new writes under it; the others do
// once the grants reach them. It returns the new epoch.
func (h Keys) RotateKey(recipients map[resolve.DeviceID]string) (KeyEpoch, error) {
	s := h.s
	if err := s.needKey("rotate key"); err != nil {
		return KeyEpoch{}, err
	}
	ek := epochKey{Key: make([]byte, 32)}
	if _, err := rand.Read(ek.Key); err != nil {
		return KeyEpoch{}, err
	}
	var info KeyEpoch
	err := s.Update(func(t *Tx) error {
		if _, err := t.adoptKeys(); err != nil {
			return err
		}
		gs, err := t.grants()
		if err != nil {
			return err
		}
		// The next epoch number is above every epoch this device has heard of, held or not.
		for _, g := range gs {
			ek.Epoch = max(ek.Epoch, g.Epoch)
		}
		if e, _ := s.keys.sealKey(); e > ek.Epoch {
			ek.Epoch = e
		}
		if ek.Epoch >= MaxEpoch {
			return fmt.Errorf("%w: the mesh has used every key epoch up to %d", ErrEpochRange, MaxEpoch)
		}
		ek.Epoch++
		rev, err := t.revokedDevices()
		if err != nil {
			return err
		}
		self, err := s.kxIdentity(t.tx, true)
		if err != nil {
			return err
		}
		to := maps.Clone(recipients)
		if to == nil {
			to = map[resolve.DeviceID]string{}
		}
		to[s.device.ID] = self.Recipient().String()
		info = KeyEpoch{Epoch: ek.Epoch, KeyID: ek.id(), By: []resolve.DeviceID{s.device.ID}, Sealing: true}
		for _, dev := range slices.Sorted(maps.Keys(to)) {
			if _, gone := rev[dev]; gone {
				continue
			}
			g, err := wrapKey(ek, dev, to[dev], s.device.ID)
			if err != nil {
				return err
			}
			if err := t.putGrant(g); err != nil {
				return err
			}
			info.Recipients = append(info.Recipients, dev)
		}
		return s.saveEpochKeys(t.tx, ek)
	})
	if err != nil {
		return KeyEpoch{}, fmt.Errorf("rotate key: %w", err)
	}
	s.keys.install(ek)
	return info, nil
}

// KeyEpochs lists the rotated keys this device holds, oldest first.
func (h Keys) KeyEpochs() ([]KeyEpoch, error) {
	s := h.s
	if err := s.needKey("key epochs"); err != nil {
		return nil, err
	}
	var out []KeyEpoch
	err := s.View(func(t *Tx) error {
		if err := s.loadEpochKeys(t.tx); err != nil {
			return err
		}
		gs, err := t.grants()
		if err != nil {
			return err
		}
		out = keyEpochs(s.keys, gs)
		return nil
	})
	return out, err
}

func keyEpochs(k *keyring, gs []keyGrant) []KeyEpoch {
	es := k.epochs.Load()
	_, sealing := k.sealKey()
	var out []KeyEpoch
	for _, ek := range es.all() {
		ke := KeyEpoch{Epoch: ek.Epoch, KeyID: ek.id(), Sealing: bytes.Equal(sealing, ek.Key)}
		for _, g := range gs {
			if g.Epoch == ke.Epoch && g.KeyID == ke.KeyID {
				if !slices.Contains(ke.Recipients, g.To) {
					ke.Recipients = append(ke.Recipients, g.To)
				}
				if !slices.Contains(ke.By, g.By) {
					ke.By = append(ke.By, g.By)
				}
			}
		}
		slices.Sort(ke.Recipients)
		slices.Sort(ke.By)
		out = append(out, ke)
	}
	return out
}

// NeedsRotation reports whether this device should start a new key epoch (RotateKey):
// some device was removed, and no key it holds was started, after the latest removal, by
// a device that remains and granted to no removed device (authority.go). A device that is
// not a member, or was removed, never needs to.
func (h Keys) NeedsRotation() (bool, error) {
	s := h.s
	if s.keys.blind {
		return false, nil
	}
	need := false
	err := s.View(func(t *Tx) error {
		if err := s.loadEpochKeys(t.tx); err != nil {
			return err
		}
		a, err := t.authority()
		if err != nil {
			return err
		}
		if self, ok := a.member(s.device.ID); !ok || self.Removed {
			return nil
		}
		s.keys.exclude(a.unclean)
		if !a.needRotation {
			// A clean key exists; this device may only lack it yet (granted later).
			if _, held := s.keys.cleanSealKey(); !held {
				return nil
			}
		}
		need = a.needRotation
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("needs rotation: %w", err)
	}
	return need, nil
}
