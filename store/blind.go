package store

import (
	"crypto/rand"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A blind replica is a store without the mesh key: an always-on machine that stores and
// forwards envelopes and takes part in reconciliation, but can open nothing. Its header
// wraps a random secret of its own (the passphrase protects only that secret), from which
// the key sealing its local state (identity, progress, device list) is derived. Instead of
// the mesh key it holds a ReplicaToken.
//
// What a replica learns: record ids (keyed hashes), version vectors (device ids and
// counters), hybrid-clock times of each version, key epochs, padded envelope sizes, and
// when envelopes arrive. What it cannot learn: collections, keys, values, field names,
// conflict decisions, consent grants (a delete's envelope is small: its size hints at one).

// ErrBlind means an operation needs the mesh's data key and this store is a blind replica.
var ErrBlind = errors.New("this store is a blind replica: it holds no data key and can read or write no record")

// labelReplica derives the key of sync-hello proofs between devices and blind replicas.
const labelReplica = "meshsync/v1/replica"

// metaKind marks a blind replica's file ("replica"); a device's file has none.
var metaKind = []byte("kind")

const (
	kindReplica  = "replica"
	localToken   = "replica-token"
	replicaKeyLn = 32
)

// ReplicaToken is what a blind replica holds instead of the mesh key: enough to prove it
// belongs to the mesh's replicas and to find the devices, nothing that opens a record.
type ReplicaToken struct {
	// MeshID is the mesh's public identifier.
	MeshID [16]byte `json:"mesh_id"`
	// Proof keys the sync-hello proofs between devices and replicas.
	Proof []byte `json:"proof"`
	// Rendezvous is epoch 0's discovery key (DHT rendezvous, mDNS names); the keys of
	// later epochs reach the replica from the devices (AdoptDiscoveryKeys).
	Rendezvous []byte `json:"rendezvous"`
}

// Valid reports whether the token is well formed.
func (t *ReplicaToken) Valid() error {
	if len(t.Proof) != replicaKeyLn || len(t.Rendezvous) != replicaKeyLn {
		return fmt.Errorf("%w: replica token keys must be %d bytes", ErrInvalid, replicaKeyLn)
	}
	if t.MeshID == [16]byte{} {
		return fmt.Errorf("%w: replica token has no mesh id", ErrInvalid)
	}
	return nil
}

// ReplicaToken derives the token a device hands to a new blind replica at pairing.
func (h Keys) ReplicaToken() (ReplicaToken, error) {
	s := h.s
	if s.keys.blind {
		return ReplicaToken{}, fmt.Errorf("replica token: %w", ErrBlind)
	}
	return ReplicaToken{
		MeshID:     s.keys.meshID,
		Proof:      subkey(s.keys.mesh, labelReplica),
		Rendezvous: subkey(s.keys.mesh, labelRendezvous),
	}, nil
}

// Blind reports whether the store is a blind replica.
func (s *Store) Blind() bool { return s.keys.blind }

// InitReplica creates a blind replica's store in dir (which must hold no store yet),
// protected by pass, holding tok instead of a mesh key.
func InitReplica(dir string, pass []byte, tok ReplicaToken, opts *Options) (*Store, error) {
	if err := tok.Valid(); err != nil {
		return nil, fmt.Errorf("init replica: %w", err)
	}
	o := opts.withDefaults()
	o.MeshKey = nil
	o.replica = &tok
	return Init(dir, pass, &o)
}

// newBlindKeyring is the keyring of a blind replica: its own secret, the mesh id, and no
// data, id or index key. Its local key comes, as a device's does, from the local secret its
// header wraps (setLocal): the passphrase protects it.
func newBlindKeyring(secret []byte) *keyring {
	return &keyring{root: secret, blind: true, data: map[uint32][]byte{}}
}

// initReplicaMeta writes what marks a new store as a blind replica, in Init's transaction.
func (s *Store) initReplicaMeta(tx *bolt.Tx, tok *ReplicaToken) error {
	if err := tx.Bucket(bucketMeta).Put(metaKind, []byte(kindReplica)); err != nil {
		return err
	}
	s.token = *tok
	s.keys.meshID = tok.MeshID
	return s.putLocalJSON(tx, localToken, tok)
}

// openReplicaMeta reads a blind replica's token, in Open's transaction.
func (s *Store) openReplicaMeta(tx *bolt.Tx) error {
	var tok ReplicaToken
	if err := s.getLocalJSON(tx, localToken, &tok); err != nil {
		return err
	}
	if err := tok.Valid(); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	s.token = tok
	s.keys.meshID = tok.MeshID
	return nil
}

// replicaSecret makes the random secret a new replica's header wraps.
func replicaSecret() ([]byte, error) {
	b := make([]byte, meshKeySize)
	_, err := rand.Read(b)
	return b, err
}

// openForApply opens an incoming envelope on a device. On a blind replica it returns a nil
// payload: the envelope is merged by its clear header alone.
func (t *Tx) openForApply(e *Envelope) (*payload, error) {
	if t.s.keys.blind {
		return nil, nil
	}
	return t.s.keys.open(e)
}

// needKey refuses operations that need the data key on a blind replica.
func (s *Store) needKey(what string) error {
	if s.keys.blind {
		return fmt.Errorf("%s: %w", what, ErrBlind)
	}
	return nil
}
