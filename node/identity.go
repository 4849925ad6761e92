package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// The device's libp2p identity is its store's signing key (store.SigningKey): the key
// that signs its authority records is the key its peer id names, so a device record binds
// a device id to a peer id by a signature. The store keeps it in its local state, sealed
// under a key from a secret the passphrase wraps (not from the mesh key), so that another
// member holding a copy of the file cannot log in as this device. Releases before
// signatures kept a libp2p key of their own under localIdentity; opening such a store
// moves that key into the store, so that the device keeps its peer id.
const localIdentity = "identity"

// loadLegacyIdentity reads the identity key a release before signatures kept.
func loadLegacyIdentity(st *store.Store) (crypto.PrivKey, error) {
	var b []byte
	ok, err := st.Local().Get(localIdentity, &b)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	if !ok {
		return nil, nil
	}
	sk, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	return sk, nil
}

// libp2pKey is the libp2p form of an Ed25519 signing key.
func libp2pKey(k ed25519.PrivateKey) (crypto.PrivKey, error) {
	sk, err := crypto.UnmarshalEd25519PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	return sk, nil
}

// rawKey is the Ed25519 form of a libp2p identity key.
func rawKey(sk crypto.PrivKey) (ed25519.PrivateKey, error) {
	if sk.Type() != crypto.Ed25519 {
		return nil, errors.New("identity key is not Ed25519")
	}
	raw, err := sk.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, errors.New("identity key is not Ed25519")
	}
	return ed25519.PrivateKey(raw), nil
}

// ensureIdentity returns the device identity, moves a store made before signatures to
// signed records (store.Upgrade, trusting the device list it holds, once), and writes this
// device's own record when the store has none and trusts itself (a new mesh, an upgraded
// or restored store; a joiner's record comes from its inviter).
func ensureIdentity(st *store.Store, now time.Time) (crypto.PrivKey, error) {
	// The data keys of rotated epochs, and the key-agreement key they are granted to
	// (rotation.go), come with the identity.
	if err := st.Keys().LoadKeyEpochs(); err != nil {
		return nil, err
	}
	legacy, err := loadLegacyIdentity(st)
	if err != nil {
		return nil, err
	}
	if legacy != nil {
		raw, err := rawKey(legacy)
		if err != nil {
			return nil, err
		}
		if err := st.Keys().AdoptSigningKey(raw); err != nil {
			return nil, err
		}
	}
	if st.Keys().SigningKey() == nil {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := st.Keys().AdoptSigningKey(k); err != nil {
			return nil, err
		}
	}
	sk, err := libp2pKey(st.Keys().SigningKey())
	if err != nil {
		return nil, err
	}
	if st.Blind() {
		return sk, nil // a replica is recorded by the device that paired it
	}
	if err := upgradeAuthority(st); err != nil {
		return nil, err
	}
	if err := ensureOwnRecord(st, now); err != nil {
		return nil, fmt.Errorf("record this device: %w", err)
	}
	if err := ensureKeyAgreement(st); err != nil {
		return nil, fmt.Errorf("key-agreement key: %w", err)
	}
	return sk, nil
}

// upgradeAuthority moves a store made before signatures (or restored from a backup) to
// signed records, trusting the devices its list names.
func upgradeAuthority(st *store.Store) error {
	if ok, err := st.Authority().Upgraded(); err != nil || ok {
		return err
	}
	recs, err := st.List(DevicesCollection, "")
	if err != nil {
		return err
	}
	var removed []peer.ID
	if _, err := st.Local().Get(localRemoved, &removed); err != nil {
		return err
	}
	devs := map[resolve.DeviceID]store.LegacyDevice{}
	for _, r := range recs {
		var d Device
		if err := json.Unmarshal(r.Value, &d); err != nil || d.ID != r.Key || d.PeerID == "" {
			continue
		}
		key, err := signingKeyOf(d.PeerID)
		if err != nil {
			continue
		}
		ld := store.LegacyDevice{Key: key}
		if d.Removed || slices.Contains(removed, d.PeerID) {
			rp := revocationOf(d)
			ld.Removed = &rp
		}
		devs[resolve.DeviceID(d.ID)] = ld
	}
	return st.Authority().Upgrade(devs)
}

// ensureOwnRecord writes this device's record, admitted by itself, when the store has none
// and trusts this device as an anchor (it created the mesh, or was upgraded or restored).
// An existing record is brought up to date with the signing key.
func ensureOwnRecord(st *store.Store, now time.Time) error {
	self := st.Device().ID
	members, err := st.Authority().Members()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(members, func(m store.Member) bool { return m.ID == self })
	if i < 0 || members[i].By != "" {
		return nil // not an anchor of its own: its inviter writes its record
	}
	pub := st.Keys().SigningKey().Public().(ed25519.PublicKey)
	rec, err := st.Get(DevicesCollection, string(self))
	var d Device
	switch {
	case errors.Is(err, store.ErrNotFound):
		id, err := peerIDOf(pub)
		if err != nil {
			return err
		}
		d = Device{ID: string(self), PeerID: id, Name: st.Device().Name, Role: RoleDevice, Added: now.UTC()}
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(rec.Value, &d); err != nil || d.ID != rec.Key {
			return nil // not a record this version reads: leave it
		}
		if d.Admission != nil && bytes.Equal(d.Key, pub) {
			return nil
		}
	}
	ad, err := st.Authority().Admit(self, pub)
	if err != nil {
		return err
	}
	d.Key, d.Admission = pub, &ad
	return putDevice(st, d)
}
