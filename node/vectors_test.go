package node

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/internal/vectors"
	"github.com/meshsync/meshsync/store"
)

// vectorPeer is a fixed peer id and its public key, from a seed of one repeated byte.
func vectorPeer(t *testing.T, b byte) (peer.ID, []byte) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
	sk, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return id, priv.Public().(ed25519.PublicKey)
}

// vectorDevices is a device list with every field of a device record set: a member with
// its admission, and a removed one with its removal point.
func vectorDevices(t *testing.T) []Device {
	p1, k1 := vectorPeer(t, 1)
	p2, k2 := vectorPeer(t, 2)
	added := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []Device{
		{ID: "0123456789abcdef", PeerID: p1, Name: "laptop", Role: RoleDevice, Addrs: []string{"/ip4/192.0.2.1/tcp/4747"},
			Added: added, KeyAgreement: "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq", Key: k1,
			Admission: &store.Admission{By: "0123456789abcdef", At: 1 << 40, Sig: bytes.Repeat([]byte{0xa1}, 64)}},
		{ID: "fedcba9876543210", PeerID: p2, Name: "old phone", Role: RoleDevice, Added: added, Key: k2,
			Removed: true, RemovedAt: added.Add(time.Hour), RemovalPoint: &store.RemovalPoint{Counter: 17, Clock: 1<<40 + 99},
			Admission: &store.Admission{By: "0123456789abcdef", At: 1<<40 + 1, Sig: bytes.Repeat([]byte{0xa2}, 64)}},
	}
}

// TestPairVectors: each committed pairing message (JSON in a 'P' frame) decodes to its
// fields, and the fields encode to the committed bytes. A failure means the pairing format
// changed: devices of one release could no longer pair with another.
func TestPairVectors(t *testing.T) {
	devs := vectorDevices(t)
	var views []Device
	for _, d := range devs {
		views = append(views, memberView(d))
	}
	for _, v := range []struct {
		name string
		msg  pairMsg
	}{
		{"pair_hello", pairMsg{Proof: bytes.Repeat([]byte{0x11}, 32), Name: "new laptop"}}, // joiner: proof of the secret, its name
		{"pair_offer", pairMsg{MeshKey: bytes.Repeat([]byte{0x22}, 32), Devices: devs}},    // inviter: the mesh key and the device list
		{"pair_offer_replica", pairMsg{Token: &store.ReplicaToken{MeshID: [16]byte{1, 2, 3}, // inviter, to a blind replica
			Proof: bytes.Repeat([]byte{0x33}, 32), Rendezvous: bytes.Repeat([]byte{0x44}, 32)}, Devices: views}},
		{"pair_confirm", pairMsg{DeviceID: "00112233aabbccdd"}}, // joiner: its new device id
		{"pair_ok", pairMsg{OK: true}},                          // inviter: done
		{"pair_error", pairMsg{Error: "wrong invite code"}},     // inviter: refused
		// Pairing by short code (PairShortProtocol): the clear opening and answer.
		{"pair_short_open", pairMsg{Nonce: bytes.Repeat([]byte{0x55}, shortNonceSize), PAKE: bytes.Repeat([]byte{0x66}, 34)}},
		{"pair_short_answer", pairMsg{PAKE: bytes.Repeat([]byte{0x77}, 34), Confirm: bytes.Repeat([]byte{0x88}, 32)}},
	} {
		t.Run(v.name, func(t *testing.T) {
			path := "testdata/vectors/" + v.name + ".json"
			b, err := json.Marshal(&v.msg)
			if err != nil {
				t.Fatal(err)
			}
			vectors.Check(t, path, "", b)
			got, err := decodePairMsg(vectors.Read(t, path))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, v.msg) {
				t.Errorf("decoded %+v\nwant    %+v", *got, v.msg)
			}
		})
	}
}

// TestMembersVector: the committed members message (what a device tells a blind replica)
// decodes to its fields, and the fields encode to the committed bytes.
func TestMembersVector(t *testing.T) {
	var m membersMsg
	for _, d := range vectorDevices(t) {
		m.Devices = append(m.Devices, memberView(d))
	}
	m.Discovery = []store.DiscoveryKey{{Epoch: 2, Key: bytes.Repeat([]byte{0x55}, 32)}, {Epoch: 0, Key: bytes.Repeat([]byte{0x66}, 32)}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	const path = "testdata/vectors/members.json"
	vectors.Check(t, path, "", b)

	raw := vectors.Read(t, path)
	var got membersMsg
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("decoded %+v\nwant    %+v", got, m)
	}
	devs, err := decodeMembers(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(devs, m.Devices) {
		t.Errorf("decodeMembers %+v\nwant %+v", devs, m.Devices)
	}
}

// TestPairShortKeyVector: the keys a CPace run of PairShortProtocol derives from its ISK
// (HKDF-SHA-512 under fixed labels), and the first sealed message (the joiner's proof and
// name, ChaCha20-Poly1305 with counter 0), are the committed ones.
func TestPairShortKeyVector(t *testing.T) {
	isk := bytes.Repeat([]byte{0x99}, 64)
	k, err := deriveShortKeys(isk)
	if err != nil {
		t.Fatal(err)
	}
	c := &pairChan{}
	if err := c.seal(k.toInviter, k.toJoiner); err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(&pairMsg{Proof: bytes.Repeat([]byte{0x11}, 32), Name: "new laptop"})
	sealed := c.send.Seal(nil, pairNonce(0), plain, nil)
	got := fmt.Sprintf("isk %x\nconfirm %x\nproof_secret %x\njoiner_to_inviter %x\ninviter_to_joiner %x\nsealed_hello %x\n",
		isk, k.confirm, k.secret, k.toInviter, k.toJoiner, sealed)
	vectors.Check(t, "testdata/vectors/pair_short_keys.txt", "", []byte(got))
	// The sealed hello opens with the inviter's key and nonce 0, and with nothing else.
	r := &pairChan{}
	if err := r.seal(k.toJoiner, k.toInviter); err != nil {
		t.Fatal(err)
	}
	if b, err := r.recv.Open(nil, pairNonce(0), sealed, nil); err != nil || !bytes.Equal(b, plain) {
		t.Fatalf("the inviter cannot open the sealed hello: %v", err)
	}
	if _, err := r.recv.Open(nil, pairNonce(1), sealed, nil); err == nil {
		t.Fatal("the sealed hello opens under the next nonce")
	}
}
