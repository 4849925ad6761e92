package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshsync/meshsync/node/internal/wire"
)

// TestPairThroughRelay: an inviter reachable only through a relay with a public relay's
// limits (2 minutes, 128 KiB) still pairs a new device: the invite carries the relayed
// address and pairing moves a few kilobytes.
func TestPairThroughRelay(t *testing.T) {
	relay, err := StartRelay(RelayConfig{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: true, MaxDuration: 2 * time.Minute, MaxData: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	var raddrs []string
	for _, a := range relay.Addrs() {
		raddrs = append(raddrs, a.String())
	}
	cfg := testConfig(t, "inviter")
	cfg.LANOnly, cfg.Relays, cfg.DHTMode = false, raddrs, DHTClient
	inviter, err := Init(context.Background(), cfg, "inviter")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inviter.Close() })
	mustStart(t, inviter)
	eventually(t, "connected to the relay", func() error {
		if inviter.Host().Network().Connectedness(relay.PeerID()) != network.Connected {
			return errors.New("not yet")
		}
		return nil
	})
	code, _, err := inviter.Invite(10 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Only the relayed address: the joiner cannot reach the inviter directly. (libp2p
	// advertises relayed addresses only for relays with public addresses, so the test
	// spells the loopback one out.)
	inv, err := wire.ParseInvite(code)
	if err != nil {
		t.Fatal(err)
	}
	circuit, err := ma.NewMultiaddr(relay.Addrs()[0].String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	inv.Addrs = []ma.Multiaddr{circuit}
	code, err = inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var j *Node
	jcfg := testConfig(t, "joiner")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		// Until the relay holds the inviter's reservation the dial fails; that does not
		// spend the invite.
		if j, err = Join(ctxT(t, 30*time.Second), jcfg, code, "joiner"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("join through the relay: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer j.Close()
	t.Logf("paired through the relay in %v", time.Since(start))
	if _, ok := j.isMember(inviter.PeerID()); !ok {
		t.Error("the joiner does not know the inviter")
	}
	eventually(t, "the inviter records the joiner", func() error {
		if _, ok := inviter.isMember(j.PeerID()); !ok {
			return errors.New("not yet")
		}
		return nil
	})
	// The code of a device with a relay fits on a line (issue 19: at most 60 characters)
	// and names no address: a joiner given --relay finds the inviter through it (issue 19:
	// pairing uses the joiner's network flags).
	code2, _, err := inviter.Invite(10 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(code2) > 60 {
		t.Errorf("the invite of a device with a relay has %d characters (%s), want at most 60", len(code2), code2)
	}
	inv2, err := wire.ParseInvite(code2)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv2.Addrs) != 0 {
		t.Errorf("the invite names %v; a device with a relay names none", inv2.Addrs)
	}
	t.Logf("invite of a device with a relay: %s (%d characters)", code2, len(code2))
	j2cfg := testConfig(t, "joiner2")
	j2cfg.Relays = raddrs
	j2, err := Join(ctxT(t, 60*time.Second), j2cfg, code2, "joiner2")
	if err != nil {
		t.Fatalf("join through the joiner's own relay: %v", err)
	}
	j2.Close()
}
