package node

import (
	"context"
	"net"
	"testing"
)

// Two paired devices restart on new ports, so that no remembered address works, and
// find each other again through mDNS.
func TestMDNSFindsDevice(t *testing.T) {
	if !hasMulticast() {
		// libp2p's mdns (zeroconf) sends and listens only on up interfaces with the
		// MULTICAST flag; lo has none, so a loopback-only host cannot run this test.
		t.Skip("no up interface with multicast: mDNS cannot run on this host")
	}
	nodes := newMeshWith(t, 2, func(c *Config) { c.EnableMDNS = true })
	a, b := nodes[0], nodes[1]
	waitSynced(t, a)
	acfg, bcfg := a.cfg, b.cfg
	bcfg.EnableMDNS = true
	a.Close()
	b.Close()

	// Reopen both: they listen on new random ports, so every address the other
	// remembers is stale.
	a2, err := Open(context.Background(), acfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	b2, err := Open(context.Background(), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	mustStart(t, a2)
	mustStart(t, b2)
	if err := a2.Put("notes", "after-restart", []byte(`"hi"`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b finds a through mDNS", func() error { return hasValue(b2, "notes", "after-restart", `"hi"`) })
	if m := a2.mdnsFound.Load() + b2.mdnsFound.Load(); m == 0 {
		t.Fatalf("the devices met, but not through mDNS")
	}
}

// hasMulticast reports whether an up, multicast-capable interface exists (multicast sent
// on it loops back to this host, so two nodes on loopback addresses still meet).
func hasMulticast() bool {
	ifs, err := net.Interfaces()
	if err != nil {
		return false
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp != 0 && i.Flags&net.FlagMulticast != 0 {
			return true
		}
	}
	return false
}
