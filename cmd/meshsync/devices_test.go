package main

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node"
)

func testPeer(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestFindDeviceIDBeforeName: `devices rm X` takes an id (exact, then a unique prefix) over
// a name, so a device that names itself after another's id cannot be removed in its place
// or make the owner remove the wrong one; a shared name is refused.
func TestFindDeviceIDBeforeName(t *testing.T) {
	laptop := node.Device{ID: "a1b2c3d4e5f6", PeerID: testPeer(t), Name: "laptop"}
	p := laptop.PeerID.String()
	devs := []node.Device{
		// Hostile devices listed first, named after the laptop's id, a prefix and its peer id.
		{ID: "ffff00000001", PeerID: testPeer(t), Name: laptop.ID},
		{ID: "ffff00000002", PeerID: testPeer(t), Name: "a1b2"},
		{ID: "ffff00000003", PeerID: testPeer(t), Name: p},
		{ID: "ffff00000004", PeerID: testPeer(t), Name: p[len(p)-8:]},
		laptop,
		{ID: "0123456789ab", PeerID: testPeer(t), Name: "phone"},
		{ID: "0123456789ac", PeerID: testPeer(t), Name: "phone"},
		{ID: "9999aaaabbbb", PeerID: testPeer(t), Name: "tablet"},
	}
	for _, tc := range []struct {
		name, q, want string
	}{
		{"exact id over a name", laptop.ID, laptop.ID},
		{"id prefix over a name", "a1b2", laptop.ID},
		{"exact peer id over a name", p, laptop.ID},
		{"end of a peer id over a name", p[len(p)-8:], laptop.ID},
		{"a unique name", "tablet", "9999aaaabbbb"},
		{"a unique name of a hostile device, by its id", "ffff00000001", "ffff00000001"},
	} {
		d, err := findDevice(devs, tc.q)
		if err != nil || d.ID != tc.want {
			t.Errorf("%s: findDevice(%q) = %s, %v; want %s", tc.name, tc.q, d.ID, err, tc.want)
		}
	}
	for _, tc := range []struct{ name, q string }{
		{"a name two devices share", "phone"},
		{"an ambiguous id prefix", "ffff"},
		{"no such device", "desktop"},
		{"nothing", ""},
	} {
		d, err := findDevice(devs, tc.q)
		var u usageError
		if err == nil || !errors.As(err, &u) {
			t.Errorf("%s: findDevice(%q) = %s, %v; want a usage error", tc.name, tc.q, d.ID, err)
		}
	}
}
