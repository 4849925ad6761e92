package store

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Discovery keys key how devices of a mesh find each other: the DHT rendezvous and the
// mDNS names (package node). They change with the key epochs, so that a removed device,
// which holds the mesh key but not the keys of the epochs after its removal, can no longer
// compute where the mesh's devices announce themselves.
//
// Epoch 0's discovery key is the rendezvous subkey of the mesh key (what every meshsync
// before header version 2 used); the key of a later epoch comes from that epoch's data key.
// A device announces under the newest key it holds and looks under the newest few, so that
// devices that have not adopted the newest epoch yet are still found (and then receive it
// by sync). A blind replica holds no epoch key: the devices tell it the current discovery
// keys (the members protocol), and it keeps them in its local state.

// labelDiscovery derives the discovery key of a rotated epoch from its data key.
const labelDiscovery = "meshsync/v2/discovery"

// localDiscovery is where a blind replica keeps the discovery keys devices told it.
const localDiscovery = "discovery-keys"

// MaxDiscoveryKeys is how many discovery keys DiscoveryKeys returns at most, and a replica
// accepts in one message.
const MaxDiscoveryKeys = 4

// DiscoveryKey is the discovery key of one key epoch.
type DiscoveryKey struct {
	Epoch uint32 `json:"epoch"`
	Key   []byte `json:"key"`
}

// DiscoveryKeys returns the discovery keys this device holds, the current one first (on a
// device, the one of the key new writes are sealed under), then older ones by epoch, down to
// epoch 0's; at most MaxDiscoveryKeys.
func (h Keys) DiscoveryKeys() ([]DiscoveryKey, error) {
	s := h.s
	if s.keys.blind {
		var held []DiscoveryKey
		err := s.db.View(func(tx *bolt.Tx) error { return s.getLocalJSON(tx, localDiscovery, &held) })
		if err != nil {
			return nil, fmt.Errorf("discovery keys: %w", err)
		}
		return withEpoch0(held, s.token.Rendezvous), nil
	}
	if err := s.Keys().LoadKeyEpochs(); err != nil {
		return nil, fmt.Errorf("discovery keys: %w", err)
	}
	var out []DiscoveryKey
	if es := s.keys.epochs.Load(); es != nil {
		all := es.all()
		// The sealing key first, then the others newest first (all is oldest first).
		if es.newest != nil {
			out = append(out, DiscoveryKey{Epoch: es.newest.Epoch, Key: subkey(es.newest.Key, labelDiscovery)})
		}
		for i := len(all) - 1; i >= 0; i-- {
			if es.newest != nil && bytes.Equal(all[i].Key, es.newest.Key) {
				continue
			}
			out = append(out, DiscoveryKey{Epoch: all[i].Epoch, Key: subkey(all[i].Key, labelDiscovery)})
		}
	}
	return withEpoch0(out, subkey(s.keys.mesh, labelRendezvous)), nil
}

// withEpoch0 appends epoch 0's key to keys (newest first) and caps the list.
func withEpoch0(keys []DiscoveryKey, zero []byte) []DiscoveryKey {
	out := slices.Clone(keys)
	if len(out) >= MaxDiscoveryKeys {
		return out[:MaxDiscoveryKeys]
	}
	return append(out, DiscoveryKey{Epoch: 0, Key: bytes.Clone(zero)})
}

// AdoptDiscoveryKeys keeps the discovery keys a device told this blind replica (newest
// first, as DiscoveryKeys returns them), unless it holds newer ones already. It reports
// whether they replaced what the replica held. On a device it does nothing: a device
// derives its keys from the epochs it holds.
func (h Keys) AdoptDiscoveryKeys(keys []DiscoveryKey) (bool, error) {
	s := h.s
	if !s.keys.blind {
		return false, nil
	}
	if len(keys) == 0 || len(keys) > MaxDiscoveryKeys {
		return false, fmt.Errorf("%w: %d discovery keys", ErrInvalid, len(keys))
	}
	var told []DiscoveryKey
	for _, k := range keys {
		if len(k.Key) != replicaKeyLn {
			return false, fmt.Errorf("%w: a discovery key of %d bytes", ErrInvalid, len(k.Key))
		}
		if k.Epoch > 0 { // epoch 0's comes from the token
			told = append(told, DiscoveryKey{Epoch: k.Epoch, Key: bytes.Clone(k.Key)})
		}
	}
	if len(told) == 0 {
		return false, nil
	}
	changed := false
	err := s.update(func(tx *bolt.Tx) error {
		var held []DiscoveryKey
		if err := s.getLocalJSON(tx, localDiscovery, &held); err != nil {
			return err
		}
		newest := func(l []DiscoveryKey) uint32 {
			if len(l) == 0 {
				return 0
			}
			return slices.MaxFunc(l, func(a, b DiscoveryKey) int { return cmp.Compare(a.Epoch, b.Epoch) }).Epoch
		}
		// A device that lags (it has not adopted the newest epoch) does not take the
		// replica back to an older key.
		if newest(told) < newest(held) || slices.EqualFunc(told, held, func(a, b DiscoveryKey) bool {
			return a.Epoch == b.Epoch && bytes.Equal(a.Key, b.Key)
		}) {
			return nil
		}
		changed = true
		return s.putLocalJSON(tx, localDiscovery, told)
	})
	if err != nil {
		return false, fmt.Errorf("adopt discovery keys: %w", err)
	}
	return changed, nil
}
