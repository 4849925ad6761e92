package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"filippo.io/age"
	bolt "go.etcd.io/bbolt"
)

// The data keys of rotated epochs a device holds, which one new writes are sealed under,
// and the key-agreement key they are granted to (see rotate.go).

// epochKey is one data key of a rotated epoch.
type epochKey struct {
	Epoch uint32 `json:"epoch"`
	Key   []byte `json:"key"`
}

func (e epochKey) id() string {
	h := sha256.New()
	h.Write([]byte(labelKeyID))
	h.Write(e.Key)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// epochSet is an immutable set of rotated epoch keys.
type epochSet struct {
	byEpoch map[uint32][]epochKey // each sorted by key id
	newest  *epochKey             // the key new writes are sealed under; nil: epoch 0
}

func newEpochSet(keys []epochKey) *epochSet {
	es := &epochSet{byEpoch: map[uint32][]epochKey{}}
	for _, k := range keys {
		if k.Epoch == 0 || len(k.Key) != 32 {
			continue
		}
		list := es.byEpoch[k.Epoch]
		if slices.ContainsFunc(list, func(x epochKey) bool { return bytes.Equal(x.Key, k.Key) }) {
			continue
		}
		list = append(list, k)
		slices.SortFunc(list, func(a, b epochKey) int { return strings.Compare(a.id(), b.id()) })
		es.byEpoch[k.Epoch] = list
	}
	for e, list := range es.byEpoch {
		if es.newest == nil || e > es.newest.Epoch {
			es.newest = &list[0]
		}
	}
	return es
}

func (es *epochSet) all() []epochKey {
	var out []epochKey
	for _, e := range slices.Sorted(maps.Keys(es.byEpoch)) {
		out = append(out, es.byEpoch[e]...)
	}
	return out
}

func (es *epochSet) holds(epoch uint32, id string) bool {
	return slices.ContainsFunc(es.byEpoch[epoch], func(k epochKey) bool { return k.id() == id })
}

// sealKey is the epoch and key new writes are sealed under: the newest clean key held
// (cleanSealKey), or while a rotation is due and none is, the newest held.
func (k *keyring) sealKey() (uint32, []byte) {
	if ek, ok := k.cleanSealKey(); ok {
		return ek.Epoch, ek.Key
	}
	if es := k.epochs.Load(); es != nil && es.newest != nil {
		return es.newest.Epoch, es.newest.Key
	}
	return 0, k.data[0]
}

// cleanSealKey is the newest held key that the membership does not exclude (started by a
// removed device, granted to one, or started before the latest removal), lowest key id
// first within an epoch. Without any exclusion it is the newest key held.
func (k *keyring) cleanSealKey() (epochKey, bool) {
	es := k.epochs.Load()
	if es == nil || es.newest == nil {
		return epochKey{}, false
	}
	ex := k.excluded.Load()
	if ex == nil || len(*ex) == 0 {
		return *es.newest, true
	}
	for _, e := range slices.Backward(slices.Sorted(maps.Keys(es.byEpoch))) {
		for _, key := range es.byEpoch[e] {
			if !(*ex)[key.id()] {
				return key, true
			}
		}
	}
	return epochKey{}, false
}

// exclude sets the key ids new writes must not be sealed under.
func (k *keyring) exclude(ids map[string]bool) {
	if cur := k.excluded.Load(); cur != nil && maps.Equal(*cur, ids) {
		return
	}
	c := maps.Clone(ids)
	k.excluded.Store(&c)
}

// keysOf lists the keys held for an epoch.
func (k *keyring) keysOf(epoch uint32) [][]byte {
	if epoch == 0 {
		if key, ok := k.data[0]; ok {
			return [][]byte{key}
		}
		return nil
	}
	es := k.epochs.Load()
	if es == nil {
		return nil
	}
	var out [][]byte
	for _, ek := range es.byEpoch[epoch] {
		out = append(out, ek.Key)
	}
	return out
}

// install adds keys to the keyring (and marks the rotated keys loaded).
func (k *keyring) install(keys ...epochKey) {
	k.epochMu.Lock()
	defer k.epochMu.Unlock()
	var cur []epochKey
	if es := k.epochs.Load(); es != nil {
		cur = es.all()
	}
	k.epochs.Store(newEpochSet(append(cur, keys...)))
}

// loadEpochKeys reads the rotated keys this device holds into the keyring, once per open
// store. Apply, Verify and local writes call it; Get and List rely on an earlier call
// (LoadKeyEpochs, which node.Open makes).
func (s *Store) loadEpochKeys(tx *bolt.Tx) error {
	if s.keys.blind || s.keys.epochs.Load() != nil {
		return nil
	}
	var keys []epochKey
	if err := s.getLocalJSON(tx, localEpochKeys, &keys); err != nil {
		return fmt.Errorf("load key epochs: %w", err)
	}
	s.keys.install(keys...)
	return nil
}

// LoadKeyEpochs reads the data keys of rotated epochs this device holds. Call it once after
// Open, before reading records (a store that never saw a rotation has none; Apply, Verify,
// Reseal and every write load them too).
func (h Keys) LoadKeyEpochs() error {
	s := h.s
	return s.db.View(func(tx *bolt.Tx) error { return s.loadEpochKeys(tx) })
}

// saveEpochKeys adds keys to the persisted list of rotated keys.
func (s *Store) saveEpochKeys(tx *bolt.Tx, keys ...epochKey) error {
	var held []epochKey
	if err := s.getLocalJSON(tx, localEpochKeys, &held); err != nil {
		return err
	}
	return s.putLocalJSON(tx, localEpochKeys, newEpochSet(append(held, keys...)).all())
}

// kxIdentity returns this device's key-agreement identity, creating it when create is set.
func (s *Store) kxIdentity(tx *bolt.Tx, create bool) (*age.X25519Identity, error) {
	var str string
	if err := s.getLocalJSON(tx, localKXKey, &str); err != nil {
		return nil, err
	}
	if str != "" {
		id, err := age.ParseX25519Identity(str)
		if err != nil {
			return nil, fmt.Errorf("%w: key-agreement key: %v", ErrCorrupt, err)
		}
		return id, nil
	}
	if !create {
		return nil, nil
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	if err := s.putLocalJSON(tx, localKXKey, id.String()); err != nil {
		return nil, err
	}
	return id, nil
}

// KeyAgreementKey returns this device's public key-agreement key (an age X25519 recipient,
// "age1…"), creating the key pair on first use. Its private half stays sealed in the store;
// the public half goes in the device's record so that a rotating device can grant it keys.
func (h Keys) KeyAgreementKey() (string, error) {
	s := h.s
	if err := s.needKey("key-agreement key"); err != nil {
		return "", err
	}
	var pub string
	err := s.db.View(func(tx *bolt.Tx) error {
		id, err := s.kxIdentity(tx, false)
		if id != nil {
			pub = id.Recipient().String()
		}
		return err
	})
	if err != nil || pub != "" {
		return pub, err
	}
	err = s.update(func(tx *bolt.Tx) error {
		id, err := s.kxIdentity(tx, true)
		if err != nil {
			return err
		}
		pub = id.Recipient().String()
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("key-agreement key: %w", err)
	}
	return pub, nil
}
