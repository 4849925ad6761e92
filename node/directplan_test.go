package node

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	ma "github.com/multiformats/go-multiaddr"
)

var (
	t0       = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	relayed  = directCond{relayedOnly: true, initiator: true, ownReady: true, peerReady: true}
	punchErr = errors.New("failed to open hole-punching stream: protocols not supported: [/libp2p/dcutr]")
)

// The race of issue 19: the device dials through the relay before it knows a public
// address; libp2p's one attempt fails. The plan waits for the device, then tries within
// directFirst of the relayed connection (or at once, when the device comes later), and
// tries again on failure.
func TestDirectPlanStartOrder(t *testing.T) {
	var p directPlan
	notYet := relayed
	notYet.peerReady = false
	if p.look(t0, notYet, 0.5) {
		t.Fatal("attempt while the device has no hole punching")
	}
	if st := p.state(); st == nil || st.State != DirectDeviceNoAddress || st.Attempts != 0 {
		t.Fatalf("state %+v, want %s", st, DirectDeviceNoAddress)
	}
	if want := t0.Add(directPollMin); !p.next.Equal(want) {
		t.Errorf("next look %v, want %v", p.next, want)
	}
	// The device announces hole punching 5 s later (an event wakes the loop): try now.
	now := t0.Add(5 * time.Second)
	if !p.look(now, relayed, 0.5) {
		t.Fatal("no attempt once both sides run hole punching")
	}
	if st := p.state(); st.State != DirectTrying || !p.next.IsZero() {
		t.Fatalf("state %+v next %v while an attempt runs", st, p.next)
	}
	if p.look(now.Add(time.Second), relayed, 0.5) {
		t.Fatal("a second attempt while one runs")
	}
	p.done(now.Add(2*time.Second), punchErr, false, 0.5)
	st := p.state()
	if st.Attempts != 1 || st.LastError != punchErr.Error() || !st.Next.Equal(now.Add(2*time.Second+directRetryMin)) {
		t.Fatalf("after a failure: %+v", st)
	}
	// Both ready from the start: the first attempt waits directFirst (libp2p's own
	// attempt runs first).
	var q directPlan
	if q.look(t0, relayed, 0.5) || !q.next.Equal(t0.Add(directFirst)) {
		t.Fatalf("first look: attempt or next %v, want %v", q.next, t0.Add(directFirst))
	}
	if !q.look(q.next, relayed, 0.5) {
		t.Fatal("no attempt at the planned time")
	}
}

// Failures back off doubling from directRetryMin to directRetryMax, each within
// ±directJitter; a busy service (libp2p's own attempt) is not a failure; a direct path
// resets everything.
func TestDirectPlanBackoff(t *testing.T) {
	var p directPlan
	now := t0
	p.look(now, relayed, 0.5)
	now = p.next
	want := []time.Duration{5, 10, 20, 40, 80, 160, 300, 300, 300}
	for i, w := range want {
		w *= time.Second
		if !p.look(now, relayed, 0.5) {
			t.Fatalf("attempt %d not started at %v", i+1, now)
		}
		r := float64(i%3) / 2.999 // 0, ~0.5, ~1: both ends of the jitter
		p.done(now, punchErr, false, r)
		got := p.next.Sub(now)
		lo, hi := time.Duration(float64(w)*(1-directJitter)), time.Duration(float64(w)*(1+directJitter))
		if got < lo || got > hi {
			t.Errorf("attempt %d: next in %v, want %v ±%.0f%%", i+1, got, w, directJitter*100)
		}
		if p.look(now.Add(got/2), relayed, 0.5) {
			t.Fatalf("attempt %d: tried again before the backoff ran out", i+1)
		}
		now = p.next
	}
	if st := p.state(); st.Attempts != len(want) || st.State != DirectTrying {
		t.Fatalf("state %+v, want %d attempts", st, len(want))
	}
	// Busy: not counted, tried again soon.
	p.look(now, relayed, 0.5)
	p.done(now, errors.New("busy"), true, 0.5)
	if st := p.state(); st.Attempts != len(want) || !st.Next.Equal(now.Add(directBusy)) {
		t.Fatalf("busy counted or planned wrong: %+v", st)
	}
	// Direct: nothing left.
	if p.look(now.Add(time.Minute), directCond{}, 0.5) || p.state() != nil || !p.next.IsZero() || p.backoff != 0 {
		t.Fatalf("direct path left a plan: %+v", p)
	}
}

// A side that only dialled (every relayed connection outbound) cannot start DCUtR; one
// without a public address neither. Both wait, looking less and less often (up to
// directPollMax), and say why.
func TestDirectPlanWaits(t *testing.T) {
	for _, c := range []struct {
		cond directCond
		want DirectState
	}{
		{directCond{relayedOnly: true, initiator: true, peerReady: true}, DirectNoAddress},
		{directCond{relayedOnly: true, initiator: true, ownReady: true}, DirectDeviceNoAddress},
		{directCond{relayedOnly: true, ownReady: true, peerReady: true}, DirectDeviceTries},
	} {
		var p directPlan
		now := t0
		var last time.Duration
		for i := 0; i < 12; i++ {
			if p.look(now, c.cond, 0.5) {
				t.Fatalf("%s: an attempt", c.want)
			}
			last = p.next.Sub(now)
			now = p.next
		}
		if st := p.state(); st.State != c.want || !st.Next.IsZero() {
			t.Errorf("state %+v, want %s", st, c.want)
		}
		if last != directPollMax {
			t.Errorf("%s: looks every %v after 12 looks, want %v", c.want, last, directPollMax)
		}
	}
	// What it waits for changes (this host learnt its public address, the device has
	// not yet): the next look comes soon again.
	var w directPlan
	own := directCond{relayedOnly: true, initiator: true, peerReady: true}
	now := t0
	for i := 0; i < 12; i++ {
		w.look(now, own, 0.5)
		now = w.next
	}
	w.look(now, directCond{relayedOnly: true, initiator: true, ownReady: true}, 0.5)
	if got := w.next.Sub(now); got != directPollMin || w.try.State != DirectDeviceNoAddress {
		t.Errorf("after a change: %s, next look in %v, want %s in %v", w.try.State, got, DirectDeviceNoAddress, directPollMin)
	}
	// Not connected at all: no plan.
	var p directPlan
	if p.look(t0, directCond{}, 0.5) || p.state() != nil || !p.next.IsZero() {
		t.Fatal("a plan without a relayed connection")
	}
}

// Once a device is reached only through a relay, its public addresses other than relayed
// ones leave the peerstore (an old NAT mapping dialled again leaves router state that
// breaks the next punch); its LAN and relayed addresses stay.
func TestForgetPublicAddrs(t *testing.T) {
	ps, err := pstoremem.NewPeerstore()
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	p := peer.ID("device")
	keep := []string{"/ip4/192.168.2.2/tcp/4747", "/ip4/127.0.0.1/udp/4747/quic-v1",
		"/ip4/7.0.0.1/tcp/4001/p2p/12D3KooWQuR1teJ6s29L2k4LQswBguHJUGyXNre2nzRbofxVa6Tv/p2p-circuit"}
	drop := []string{"/ip4/7.0.0.12/tcp/4747", "/ip4/8.8.4.4/udp/4747/quic-v1"}
	for _, s := range append(append([]string{}, keep...), drop...) {
		ps.AddAddr(p, ma.StringCast(s), peerstore.PermanentAddrTTL)
	}
	forgetPublicAddrs(ps, p)
	left := map[string]bool{}
	for _, a := range ps.Addrs(p) {
		left[a.String()] = true
	}
	for _, s := range keep {
		if !left[s] {
			t.Errorf("%s was dropped", s)
		}
	}
	for _, s := range drop {
		if left[s] {
			t.Errorf("%s is still there", s)
		}
	}
}

// A node beyond the LAN holds its host's hole-punch service (captured through the option,
// since libp2p does not expose it): without it no attempt is ever retried. LAN-only: none.
func TestHolePunchServiceCaptured(t *testing.T) {
	for _, lanOnly := range []bool{false, true} {
		cfg := testConfig(t, "laptop")
		cfg.LANOnly, cfg.DHTMode = lanOnly, DHTClient
		n, err := Init(context.Background(), cfg, "laptop")
		if err != nil {
			t.Fatal(err)
		}
		mustStart(t, n)
		r := n.net.Load()
		if got := r.holePunch != nil; got == lanOnly {
			t.Errorf("LAN-only %v: hole-punch service held: %v", lanOnly, got)
		}
		n.Close()
	}
}

// A punched connection's address (a NAT's mapping) is not remembered for the next start,
// and a public address remembered before (by an older release) is forgotten once a punch
// was needed: dialled at start, it left router state that broke the punch for 2 minutes.
// A direct address dialled without a relay up is remembered as before.
func TestPunchedAddressNotRemembered(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	waitSynced(t, a)
	addr := func() string {
		d, err := deviceState(a, "n1")
		if err != nil {
			t.Fatal(err)
		}
		return d.Addr
	}
	public := ma.StringCast("/ip4/7.0.0.12/tcp/4747")
	a.track.connected(b.PeerID(), network.DirOutbound, public, false, false)
	if got := addr(); got != public.String() {
		t.Fatalf("a direct dial's address: remembered %q, want %q", got, public)
	}
	a.track.connected(b.PeerID(), network.DirOutbound, ma.StringCast("/ip4/7.0.0.12/tcp/4999"), false, true)
	if got := addr(); got != "" {
		t.Fatalf("after a punch: remembered %q, want nothing", got)
	}
	lan := ma.StringCast("/ip4/192.168.2.2/tcp/4747")
	a.track.connected(b.PeerID(), network.DirOutbound, lan, false, false)
	if got := addr(); got != lan.String() {
		t.Fatalf("a LAN address: remembered %q, want %q", got, lan)
	}
}

// At start the peerstore gets a device's announced addresses and the one remembered from
// the last direct dial, except a remembered public address the device does not announce
// (a NAT's mapping an older release remembered): dialling it breaks the next punch.
func TestSeedSkipsRememberedMapping(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	waitSynced(t, a)
	has := func(s string) bool {
		return slices.ContainsFunc(a.Host().Peerstore().Addrs(b.PeerID()), func(x ma.Multiaddr) bool { return x.String() == s })
	}
	for _, c := range []struct {
		addr string
		kept bool
	}{{"/ip4/7.0.0.12/tcp/4747", false}, {"/ip4/192.168.2.2/tcp/4747", true}} {
		a.track.connected(b.PeerID(), network.DirOutbound, ma.StringCast(c.addr), false, false)
		a.seedPeerstore(a.Host())
		if has(c.addr) != c.kept {
			t.Errorf("remembered %s: in the peerstore %v, want %v", c.addr, !c.kept, c.kept)
		}
	}
}
