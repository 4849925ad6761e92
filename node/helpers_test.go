package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

var testPass = []byte("correct horse battery staple")

// Stores made by the tests use a cheap KDF: they open in a millisecond instead of
// seconds under -race.
func init() { testmode.Enable() }

// testConfig is a loopback node configuration in a fresh directory.
func testConfig(t testing.TB, name string) Config {
	t.Helper()
	return Config{
		Dir:         filepath.Join(t.TempDir(), name),
		Passphrase:  testPass,
		ListenAddrs: testListen(),
		LANOnly:     true, // never the DHT's public bootstrap peers
		RetryMin:    200 * time.Millisecond,
		RetryMax:    2 * time.Second,
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustStart(t testing.TB, n *Node) *Node {
	t.Helper()
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

// newMesh creates a started first node and k-1 more joined with real invites.
func newMesh(t testing.TB, k int) []*Node { return newMeshWith(t, k, nil) }

// newMeshWith is newMesh with the first node's configuration changed by mod.
func newMeshWith(t testing.TB, k int, mod func(*Config)) []*Node {
	return newMeshEach(t, k, func(i int, c *Config) {
		if i == 0 && mod != nil {
			mod(c)
		}
	})
}

// newMeshEach is newMesh with node i's configuration changed by mod(i, cfg).
func newMeshEach(t testing.TB, k int, mod func(int, *Config)) []*Node {
	t.Helper()
	cfg := testConfig(t, "n0")
	mod(0, &cfg)
	first, err := Init(context.Background(), cfg, "n0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	nodes := []*Node{mustStart(t, first)}
	for i := 1; i < k; i++ {
		name := fmt.Sprintf("n%d", i)
		cfg := testConfig(t, name)
		mod(i, &cfg)
		nodes = append(nodes, joinWith(t, first, name, cfg))
	}
	return nodes
}

func join(t testing.TB, inviter *Node, name string) *Node {
	return joinWith(t, inviter, name, testConfig(t, name))
}

func joinWith(t testing.TB, inviter *Node, name string, cfg Config) *Node {
	t.Helper()
	return mustStart(t, joinStopped(t, inviter, name, cfg))
}

// joinStopped pairs a new device with inviter and returns it before its Start, for a test
// that sets it up first.
func joinStopped(t testing.TB, inviter *Node, name string, cfg Config) *Node {
	t.Helper()
	code, _, err := inviter.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.JoinPeers) == 0 && len(inviter.cfg.Relays) > 0 {
		// The code of a device with relays names no address (the joiner would come through
		// its own --relay, mDNS or the DHT, none of which these tests run): --peer.
		cfg.JoinPeers = p2pAddrs(inviter)
	}
	n, err := Join(ctxT(t, 30*time.Second), cfg, code, name)
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// p2pAddrs are n's addresses with its peer id, as `join --peer` takes them.
func p2pAddrs(n *Node) []string {
	var out []string
	for _, a := range n.Host().Addrs() {
		out = append(out, a.String()+"/p2p/"+n.PeerID().String())
	}
	return out
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after 60s: %v", what, err)
}

// hasValue checks that n reads want under c/k.
func hasValue(n *Node, c, k, want string) error {
	rec, err := n.Get(c, k)
	if err != nil {
		return err
	}
	if string(rec.Value) != want {
		return fmt.Errorf("%s/%s = %s, want %s", c, k, rec.Value, want)
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// checkGoroutines fails if the goroutine count does not come back near base.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	var n int
	for range 100 {
		n = runtime.NumGoroutine()
		if n <= base+2 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	t.Errorf("goroutines: %d after close, %d before\n%s", n, base, buf)
}

// waitSynced retries WaitSynced until every device was reached (a new device's address
// spreads with the device list, so the first round may not reach it).
func waitSynced(t testing.TB, n *Node) {
	t.Helper()
	eventually(t, "wait synced", func() error { return n.WaitSynced(ctxT(t, 30*time.Second)) })
}

// testListen is the loopback listen addresses of test nodes: TCP and QUIC, or only one
// of them with MESHSYNC_TEST_TRANSPORT=tcp or quic (to compare them in benchmarks).
func testListen() []string {
	switch os.Getenv("MESHSYNC_TEST_TRANSPORT") {
	case "tcp":
		return []string{"/ip4/127.0.0.1/tcp/0"}
	case "quic":
		return []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	return []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
}

// admitPeer records p as a device of a's mesh under id, admitted by a as pairing would.
func admitPeer(t *testing.T, a *Node, id string, p peer.ID) {
	t.Helper()
	key, err := signingKeyOf(p)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := a.st.Authority().Admit(resolve.DeviceID(id), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := putDevice(a.st, Device{ID: id, PeerID: p, Name: id, Role: RoleDevice, Key: key, Admission: &ad}); err != nil {
		t.Fatal(err)
	}
	if err := a.devicesChanged(); err != nil {
		t.Fatal(err)
	}
}
