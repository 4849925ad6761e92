package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/store"
)

// The device's libp2p identity key lives in the store's sealed local state, never synced:
// it is sealed under the store's local key, which comes from a secret the passphrase wraps
// (not from the mesh key), so that another member holding a copy of the file cannot log in
// as this device.
const localIdentity = "identity"

func saveIdentity(st *store.Store, sk crypto.PrivKey) error {
	b, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	return st.PutLocal(localIdentity, b)
}

func loadIdentity(st *store.Store) (crypto.PrivKey, error) {
	var b []byte
	ok, err := st.GetLocal(localIdentity, &b)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	if !ok {
		return nil, errNoIdentity
	}
	sk, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	return sk, nil
}

// errNoIdentity means the store has no device identity yet.
var errNoIdentity = errors.New("the store holds no device identity")

// ensureIdentity loads the device identity. A store that has none yet (made by store.Init,
// or restored from a backup onto a new device) gets a new one, and the device's own record
// joins the device list, so that it can pair and sync like one made by Init.
func ensureIdentity(st *store.Store, now time.Time) (crypto.PrivKey, error) {
	// The data keys of rotated epochs, and the key-agreement key they are granted to
	// (rotation.go), come with the identity.
	if err := st.LoadKeyEpochs(); err != nil {
		return nil, err
	}
	sk, err := loadIdentity(st)
	if err == nil {
		if err := ensureKeyAgreement(st); err != nil {
			return nil, fmt.Errorf("key-agreement key: %w", err)
		}
		return sk, nil
	}
	if !errors.Is(err, errNoIdentity) {
		return nil, err
	}
	sk, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := saveIdentity(st, sk); err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, err
	}
	if st.Blind() {
		return sk, nil // a replica is recorded by the device that paired it
	}
	dev := Device{ID: string(st.Device().ID), PeerID: id, Name: st.Device().Name, Role: RoleDevice, Added: now.UTC()}
	if dev.KeyAgreement, err = st.KeyAgreementKey(); err != nil {
		return nil, err
	}
	if err := putDevice(st, dev); err != nil {
		return nil, fmt.Errorf("record this device: %w", err)
	}
	return sk, nil
}
