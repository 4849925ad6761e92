package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"filippo.io/age"
	bolt "go.etcd.io/bbolt"

	"github.com/meshsync/meshsync/merkle"
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
func (s *Store) LoadKeyEpochs() error {
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
func (s *Store) KeyAgreementKey() (string, error) {
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

// devicesCollection is node's device list (node.DevicesCollection).
const devicesCollection = "_devices"

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
func (s *Store) AdoptKeys() (int, error) {
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
func (s *Store) RotateKey(recipients map[resolve.DeviceID]string) (KeyEpoch, error) {
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
func (s *Store) GrantKeys(dev resolve.DeviceID, pub string) (int, error) {
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

// KeyEpochs lists the rotated keys this device holds, oldest first.
func (s *Store) KeyEpochs() ([]KeyEpoch, error) {
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
func (s *Store) NeedsRotation() (bool, error) {
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
func (s *Store) Reseal(limit int) (ResealStats, error) {
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
		c := t.tx.Bucket(bucketIDs).Cursor()
		k, _ := c.First()
		if from != nil {
			k, _ = c.Seek(from)
		}
		for ; k != nil; k, _ = c.Next() {
			if st.Resealed >= limit || st.Records >= 64*limit {
				return meta.Put(metaResealCursor, bytes.Clone(k))
			}
			st.Records++
			var id merkle.ID
			copy(id[:], k)
			n, bad, err := t.resealRecord(id, epoch, key)
			if err != nil {
				return err
			}
			st.Resealed += n
			st.Unreadable += bad
		}
		st.Done = true
		return meta.Delete(metaResealCursor)
	})
	if err != nil {
		return ResealStats{}, fmt.Errorf("reseal: %w", err)
	}
	return st, nil
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
		e, err := t.s.keys.sealWith(id, h.env.Version, plain, epoch, key)
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
func (s *Store) RemovalPoint(dev resolve.DeviceID) (RemovalPoint, error) {
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
	c := t.tx.Bucket(bucketEnv).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e, err := UnmarshalEnvelope(v)
		if err != nil {
			return rp, fmt.Errorf("%w: envelope %d: %v", ErrCorrupt, be64(k), err)
		}
		rp.Counter = max(rp.Counter, e.Version.VV[dev])
		if e.Version.Device == dev {
			rp.Clock = max(rp.Clock, e.Version.Clock)
		}
	}
	return rp, nil
}

// RevokeDevice makes a blind replica refuse, from now on, every envelope written by dev
// beyond its removal point at (Apply counts them in Rejected with ErrRevoked); the check
// reads only the clear header. Devices do not call it: they compute the points from the
// signed removal records (authority.go) and tell their replicas. Envelopes of dev beyond
// the point that the replica accepted before it heard of the removal are dropped, so that
// it ends with the same envelopes as the devices. It is persistent and idempotent; a later
// point for the same device raises the first on each axis (the devices' cut grows as the
// remaining devices report how far they had seen dev), an earlier one changes nothing.
func (s *Store) RevokeDevice(dev resolve.DeviceID, at RemovalPoint) error {
	if dev == "" || len(dev) > MaxDeviceIDSize {
		return fmt.Errorf("revoke device: %w: device id", ErrInvalid)
	}
	if rev, err := s.Revoked(); err == nil {
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

// purgeRevoked drops the envelopes the store holds that ak refuses.
func (t *Tx) purgeRevoked(ak *applyKeys) error {
	var ids []merkle.ID
	c := t.tx.Bucket(bucketEnv).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e, err := UnmarshalEnvelope(v)
		if err != nil {
			return fmt.Errorf("%w: envelope %d: %v", ErrCorrupt, be64(k), err)
		}
		if ak.refuse(e) != nil && !slices.Contains(ids, e.ID) {
			ids = append(ids, e.ID)
		}
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
func (s *Store) Revoked() (map[resolve.DeviceID]RemovalPoint, error) {
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
		// The epoch is the uvarint after the format byte and the 32-byte id.
		if len(b) > 33 && b[33] == 0 {
			first = append(first, i)
		} else {
			rest = append(rest, i)
		}
	}
	return append(first, rest...)
}
