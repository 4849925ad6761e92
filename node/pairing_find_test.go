package node

import (
	"errors"
	"testing"
	"time"

	"github.com/meshsync/meshsync/node/internal/wire"
)

// TestPairFoundOnDHT: the joiner is given the short code only, no address, no LAN: it
// finds the inviter as a provider of the code's rendezvous key on a DHT (here a DHT server
// on loopback, the one `meshsync relay` runs, as the only bootstrap peer of both). A long
// code that names no address is found the same way (issue 19: join uses --bootstrap).
func TestPairFoundOnDHT(t *testing.T) {
	relay, err := StartRelay(RelayConfig{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	var boot []string
	for _, a := range relay.Addrs() {
		boot = append(boot, a.String())
	}
	inviter := newMeshWith(t, 1, func(c *Config) {
		c.LANOnly, c.Bootstrap, c.DHTMode = false, boot, DHTClient
	})[0]
	inv, err := inviter.InviteShort(0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "joiner")
	cfg.LANOnly, cfg.Bootstrap = false, boot
	start := time.Now()
	j, err := Join(ctxT(t, 2*time.Minute), cfg, inv.Code, "joiner")
	if err != nil {
		t.Fatalf("join by short code through the DHT: %v", err)
	}
	defer j.Close()
	t.Logf("found on the DHT and paired in %v", time.Since(start))
	if _, ok := inviter.isMember(j.PeerID()); !ok {
		t.Fatal("the inviter does not list the joiner")
	}

	code := inviteWithoutAddrs(t, inviter)
	cfg = testConfig(t, "long")
	cfg.LANOnly, cfg.Bootstrap = false, boot
	start = time.Now()
	j2, err := Join(ctxT(t, 2*time.Minute), cfg, code, "long")
	if err != nil {
		t.Fatalf("join by a long code without address through the DHT: %v", err)
	}
	j2.Close()
	t.Logf("long code found on the DHT and paired in %v", time.Since(start))
}

// TestPairFoundOnLAN: with mDNS on, a short code alone, and a long code that names no
// address, find the inviter on the LAN.
func TestPairFoundOnLAN(t *testing.T) {
	if !hasMulticast() {
		t.Skip("no up interface with multicast: mDNS cannot run on this host")
	}
	inviter := newMeshWith(t, 1, func(c *Config) { c.EnableMDNS = true })[0]
	inv, err := inviter.InviteShort(0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "short")
	cfg.EnableMDNS = true
	j, err := Join(ctxT(t, time.Minute), cfg, inv.Code, "short")
	if err != nil {
		t.Fatalf("join by short code on the LAN: %v", err)
	}
	j.Close()

	code := inviteWithoutAddrs(t, inviter)
	cfg = testConfig(t, "long")
	cfg.EnableMDNS = true
	j, err = Join(ctxT(t, time.Minute), cfg, code, "long")
	if err != nil {
		t.Fatalf("join by a long code without address on the LAN: %v", err)
	}
	j.Close()

	// Without mDNS (and no DHT), nothing finds it, and the error says what was tried.
	code = inviteWithoutAddrs(t, inviter)
	_, err = Join(ctxT(t, time.Minute), testConfig(t, "blind"), code, "blind")
	if !errors.Is(err, ErrInviterUnreachable) {
		t.Fatalf("join without any way to find the inviter: %v, want ErrInviterUnreachable", err)
	}
}

// inviteWithoutAddrs is a long invite code of n that names no address: the joiner has to
// find the inviter.
func inviteWithoutAddrs(t *testing.T, n *Node) string {
	t.Helper()
	code, _, err := n.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	long, err := wire.ParseInvite(code)
	if err != nil {
		t.Fatal(err)
	}
	long.Addrs = nil
	if code, err = long.Encode(); err != nil {
		t.Fatal(err)
	}
	return code
}
