package store

import (
	"bytes"
	"testing"

	"github.com/meshsync/meshsync/resolve"
)

// TestDiscoveryKeysFollowEpochs: the discovery key changes with each key epoch; devices
// that hold the epoch agree on it, a device left out of the epoch (a removed one) cannot
// compute it, and a blind replica holds what the devices told it, never going back to an
// older epoch when a lagging device speaks.
func TestDiscoveryKeysFollowEpochs(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := mustInit(t, &Options{KDF: testKDF, DeviceName: "b", MeshKey: a.Keys().MeshKeyForPairing()})
	gone := mustInit(t, &Options{KDF: testKDF, DeviceName: "gone", MeshKey: a.Keys().MeshKeyForPairing()})
	keys := func(s *Store) []DiscoveryKey {
		t.Helper()
		k, err := s.Keys().DiscoveryKeys()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}

	// Epoch 0: the rendezvous subkey of the mesh key, as before version 2.
	k0 := keys(a)
	rv, _ := a.Keys().Subkey(PurposeRendezvous)
	if len(k0) != 1 || k0[0].Epoch != 0 || !bytes.Equal(k0[0].Key, rv) || !bytes.Equal(keys(gone)[0].Key, rv) {
		t.Fatalf("epoch-0 keys %+v", k0)
	}
	tok, err := a.Keys().ReplicaToken()
	if err != nil {
		t.Fatal(err)
	}
	r := mustInit(t, &Options{KDF: testKDF, DeviceName: "box", replica: &tok})
	if rk := keys(r); len(rk) != 1 || !bytes.Equal(rk[0].Key, rv) {
		t.Fatalf("replica's keys before any epoch: %+v", rk)
	}

	// Epoch 1, granted to b only.
	bkx, err := b.Keys().KeyAgreementKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Keys().RotateKey(map[resolve.DeviceID]string{b.Device().ID: bkx}); err != nil {
		t.Fatal(err)
	}
	copyAll(t, a, b)
	copyAll(t, a, gone)
	if _, err := b.Keys().AdoptKeys(); err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Keys().AdoptKeys(); err != nil {
		t.Fatal(err)
	}
	ka, kb, kg := keys(a), keys(b), keys(gone)
	if len(ka) != 2 || ka[0].Epoch != 1 || bytes.Equal(ka[0].Key, rv) || !bytes.Equal(ka[1].Key, rv) {
		t.Fatalf("a's keys after the rotation: %+v", ka)
	}
	if !bytes.Equal(ka[0].Key, kb[0].Key) {
		t.Error("a and b disagree on the epoch-1 discovery key")
	}
	for _, k := range kg {
		if bytes.Equal(k.Key, ka[0].Key) {
			t.Error("a device left out of epoch 1 computes its discovery key")
		}
	}

	// The replica adopts what a device says, and a lagging device does not take it back.
	if changed, err := r.Keys().AdoptDiscoveryKeys(ka); err != nil || !changed {
		t.Fatalf("adopt: %v %v", changed, err)
	}
	if rk := keys(r); len(rk) != 2 || !bytes.Equal(rk[0].Key, ka[0].Key) || !bytes.Equal(rk[1].Key, rv) {
		t.Fatalf("replica's keys: %+v", rk)
	}
	if changed, err := r.Keys().AdoptDiscoveryKeys(kg); err != nil || changed {
		t.Errorf("a lagging device's keys: changed %v %v", changed, err)
	}
	if _, err := r.Keys().AdoptDiscoveryKeys([]DiscoveryKey{{Epoch: 2, Key: []byte("short")}}); err == nil {
		t.Error("a short discovery key was accepted")
	}
	if changed, err := a.Keys().AdoptDiscoveryKeys(kg); err != nil || changed {
		t.Errorf("a device adopted keys it was told: %v %v", changed, err)
	}
}
