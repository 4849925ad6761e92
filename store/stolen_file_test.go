package store

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshsync/meshsync/resolve"
	"golang.org/x/crypto/chacha20poly1305"
)

// TestStolenFileOpensNoLocalSecret is TESTPLAN row 28, "a stolen file": a former member
// holds the mesh key (every device of the mesh holds the same one), the keys of the epochs
// it was granted, the blind replicas' token, and a copy of another device's store file.
// Without that device's passphrase it must open no local secret: not the libp2p identity,
// not the key-agreement key, not the epoch keys, not the peer progress or conflict
// history. The attacker reads the file with bbolt alone, derives every key it can from
// what it holds (HKDF under every label meshsync uses, two levels deep), and tries each on
// every value of the local and history buckets, under every associated data the store
// could have used. It opens nothing. Each case first checks that the values exist and open
// with the passphrase, so that "nothing opened" is not an empty file.
//
// The labels are spelled out here, not taken from the package's constants, so that the
// test also compiles against, and fails on, the code before header version 2 (there the
// local key was HKDF(mesh key, "meshsync/v1/local")).
func TestStolenFileOpensNoLocalSecret(t *testing.T) {
	t.Run("device", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "victim")
		s, err := Init(dir, testPass, testOpts("victim"))
		if err != nil {
			t.Fatal(err)
		}
		// What a node keeps: its identity, peer progress, a key-agreement key, the key of
		// a rotated epoch (granted to the attacker too, who was a member then), and the
		// history of a resolved conflict.
		if err := s.Local().Put("identity", []byte("the device's libp2p private key")); err != nil {
			t.Fatal(err)
		}
		if err := s.Local().Put("progress/peer", map[string]int{"seq": 42}); err != nil {
			t.Fatal(err)
		}
		former, err := Init(filepath.Join(t.TempDir(), "former"), []byte("the former member's passphrase"),
			&Options{KDF: testKDF, DeviceName: "former", MeshKey: s.Keys().MeshKeyForPairing()})
		if err != nil {
			t.Fatal(err)
		}
		defer former.Close()
		fkx, err := former.Keys().KeyAgreementKey()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Keys().RotateKey(map[resolve.DeviceID]string{former.Device().ID: fkx}); err != nil {
			t.Fatal(err)
		}
		if err := s.Put("notes", "k", []byte(`{"v":"victim"}`)); err != nil {
			t.Fatal(err)
		}
		if err := former.Put("notes", "k", []byte(`{"v":"former"}`)); err != nil {
			t.Fatal(err)
		}
		copyAll(t, former, s)
		cs, err := s.Conflicts().List()
		if err != nil || len(cs) != 1 {
			t.Fatalf("conflicts: %v %v", cs, err)
		}
		if err := s.Conflicts().Resolve(cs[0].ID, 1, nil, 0); err != nil {
			t.Fatal(err)
		}
		copyAll(t, s, former) // the grant reaches the former member
		if _, err := former.Keys().AdoptKeys(); err != nil {
			t.Fatal(err)
		}
		keys := attackerKeys(s.Keys().MeshKeyForPairing(), former)
		s.Close()
		attack(t, dir, keys, []string{"x/identity", "x/progress/peer", "kx-identity", "epoch-keys", "device"}, 1)
	})

	t.Run("blind replica", func(t *testing.T) {
		dev := mustInit(t, nil)
		tok, err := dev.Keys().ReplicaToken()
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "replica")
		r, err := InitReplica(dir, []byte("the replica's passphrase"), tok, testOpts("box"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Local().Put("identity", []byte("the replica's libp2p private key")); err != nil {
			t.Fatal(err)
		}
		r.Close()
		keys := attackerKeys(dev.Keys().MeshKeyForPairing(), dev)
		keys = append(keys, tok.Proof, tok.Rendezvous)
		attack(t, dir, keys, []string{"x/identity", "replica-token", "device"}, 0)
	})

	t.Run("migrated v1 fixture", func(t *testing.T) {
		e := loadFixtureExpect(t)
		dir := fixtureDir(t, "store")
		s, err := Open(dir, fixtureStorePass, fixtureOpts(e))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Keys().LoadKeyEpochs(); err != nil {
			t.Fatal(err)
		}
		keys := attackerKeys(s.Keys().MeshKeyForPairing(), s) // the phone held epoch 1 too
		s.Close()
		attack(t, dir, keys, e.LocalNames, e.History)
	})
}

// attackerKeys is every key the attacker can make from the mesh key and the epoch keys
// that holder (a store of the attacker, or one whose keys it was granted) holds.
func attackerKeys(mesh []byte, holder *Store) [][]byte {
	labels := []string{
		"meshsync/v1/id", "meshsync/v1/index", "meshsync/v1/local", "meshsync/v1/rendezvous",
		"meshsync/v1/pairing", "meshsync/v1/mesh-id", "meshsync/v1/consent", "meshsync/v1/replica",
		"meshsync/v1/key-id", "meshsync/v1/mdns", "meshsync/v2/local", "meshsync/v2/rendezvous",
		"meshsync/v2/mdns",
	}
	for e := range 4 {
		labels = append(labels, fmt.Sprintf("meshsync/v1/data/epoch/%d", e))
	}
	roots := [][]byte{mesh}
	if es := holder.keys.epochs.Load(); es != nil {
		for _, k := range es.all() {
			roots = append(roots, k.Key)
		}
	}
	var out [][]byte
	for _, r := range roots {
		out = append(out, r)
		for _, l1 := range labels {
			k1, _ := hkdf.Key(sha256.New, r, nil, l1, 32)
			out = append(out, k1)
			for _, l2 := range labels {
				k2, _ := hkdf.Key(sha256.New, k1, nil, l2, 32)
				out = append(out, k2)
			}
		}
	}
	return out
}

// attack tries every key on every sealed value of the copied file in dir. want names local
// values that must be there; hist is the number of history entries there.
func attack(t *testing.T, dir string, keys [][]byte, want []string, hist int) {
	t.Helper()
	stolen := filepath.Join(t.TempDir(), "stolen")
	if err := os.MkdirAll(stolen, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(dir, FileName), filepath.Join(stolen, FileName))
	_, sealed := rawFile(t, stolen)
	for _, name := range want {
		if sealed[name] == nil {
			t.Errorf("the file holds no local value %q", name)
		}
	}
	n := 0
	for name := range sealed {
		if bytes.HasPrefix([]byte(name), []byte("hist/")) {
			n++
		}
	}
	if n < hist {
		t.Errorf("the file holds %d history entries, want %d", n, hist)
	}
	tried, opened := 0, 0
	for name, v := range sealed {
		if len(v) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
			t.Fatalf("value %q too short", name)
		}
		nonce, ct := v[:chacha20poly1305.NonceSizeX], v[chacha20poly1305.NonceSizeX:]
		ads := [][]byte{[]byte(name), nil, []byte("x/" + name)}
		if k, ok := bytes.CutPrefix([]byte(name), []byte("hist/")); ok {
			ads = append(ads, k)
		}
		for _, k := range keys {
			aead, err := chacha20poly1305.NewX(k)
			if err != nil {
				t.Fatal(err)
			}
			for _, ad := range ads {
				tried++
				if _, err := aead.Open(nil, nonce, ct, ad); err == nil {
					opened++
					t.Errorf("the attacker opened %q", name)
				}
			}
		}
	}
	t.Logf("%d values, %d keys, %d attempts, %d opened", len(sealed), len(keys), tried, opened)
}
