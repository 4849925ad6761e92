package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/meshsync/meshsync/store"
)

// The device's libp2p identity key lives in the store's sealed local state: it is
// encrypted under the mesh key like everything else and never synced.
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
		return nil, fmt.Errorf("load identity: the store holds no device identity (was it created by node.Init or node.Join?)")
	}
	sk, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	return sk, nil
}
