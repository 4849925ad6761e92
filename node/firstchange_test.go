package node

import (
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// TestFirstChangeAfterJoin: the first write on either device right after a pairing is
// readable on the other without any timer's help: retries and anti-entropy are an hour
// away, so only the pairing itself and the push can carry it.
func TestFirstChangeAfterJoin(t *testing.T) {
	slow := func(c *Config) {
		c.RetryMin, c.RetryMax, c.AntiEntropy = time.Hour, time.Hour, time.Hour
	}
	for _, dir := range []string{"inviter", "joiner"} {
		t.Run("put on the "+dir, func(t *testing.T) {
			a := newMeshWith(t, 1, slow)[0]
			cfg := testConfig(t, "b")
			slow(&cfg)
			b := joinWith(t, a, "b", cfg)
			t0 := time.Now()
			from, to := a, b
			if dir == "joiner" {
				from, to = b, a
			}
			if err := from.Put("notes", "first", []byte(`"hello"`)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the first change arrives", func() error { return hasValue(to, "notes", "first", `"hello"`) })
			t.Logf("first change after join: %v (logged, not asserted)", time.Since(t0))
		})
	}
}

// TestTwoNodesOneMachineOwnPorts: two nodes on one machine with the default listen
// addresses never share a TCP port. libp2p listens with SO_REUSEPORT, so the second used
// to bind the first one's port too; the kernel then gave each incoming connection to
// either node, half the dials between them failed, and the first change after a pairing
// on one machine waited for the retries.
func TestTwoNodesOneMachineOwnPorts(t *testing.T) {
	def := func(c *Config) {
		c.ListenAddrs = nil
		c.RetryMin, c.RetryMax, c.AntiEntropy = time.Hour, time.Hour, time.Hour
	}
	a := newMeshWith(t, 1, def)[0]
	cfg := testConfig(t, "b")
	def(&cfg)
	b := joinWith(t, a, "b", cfg)
	ports := func(n *Node) map[string]bool {
		out := map[string]bool{}
		for _, addr := range n.Host().Network().ListenAddresses() {
			if p, err := addr.ValueForProtocol(ma.P_TCP); err == nil && p != "0" {
				out[p] = true
			}
		}
		return out
	}
	pa, pb := ports(a), ports(b)
	for p := range pb {
		if pa[p] {
			t.Fatalf("both nodes listen on TCP port %s (a: %v, b: %v)", p, pa, pb)
		}
	}
	// And the first change after the pairing crosses, with every timer an hour away.
	if err := a.Put("notes", "first", []byte(`"hello"`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first change arrives", func() error { return hasValue(b, "notes", "first", `"hello"`) })
}
