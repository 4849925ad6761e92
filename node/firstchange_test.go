package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshsync/meshsync/store"
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

// TestInitialSyncProgress: while a new device receives the whole store of another, its
// status says how far it has come (received of about the other's record count), and says
// nothing of it once the session ended.
func TestInitialSyncProgress(t *testing.T) {
	a := newMesh(t, 1)[0]
	const records = 2000
	value := make([]byte, 2048) // 4 MiB in all: several batches of at most 1 MiB
	if err := a.st.Update(func(tx *store.Tx) error {
		for i := range records {
			if err := tx.PutRaw("bulk", strconv.Itoa(i), value); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	code, _, err := a.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "b")
	cfg.ApplyBatch = 200 // a group per batch frame, each reported
	b, err := Join(ctxT(t, 30*time.Second), cfg, code, "b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	sub := b.SubscribeStates(1 << 12)
	defer sub.Close()
	mustStart(t, b)
	waitSynced(t, b)
	var seen []InitialSync
	for len(sub.C) > 0 {
		if ev := <-sub.C; ev.Device.InitialSync != nil && ev.Device.PeerID == a.id {
			seen = append(seen, *ev.Device.InitialSync)
		}
	}
	if len(seen) < 2 {
		t.Fatalf("%d initial sync reports, want one per apply group: %+v", len(seen), seen)
	}
	first, last := seen[0], seen[len(seen)-1]
	if first.Received >= last.Received || last.Received < records || last.Total < records || first.Total < records {
		t.Errorf("initial sync went from %+v to %+v, want it to grow to %d of about %d", first, last, records, records)
	}
	for _, d := range b.States().Devices {
		if d.InitialSync != nil {
			t.Errorf("after the sync, %s still shows an initial sync: %+v", d.Name, *d.InitialSync)
		}
	}
}

// TestPushStartsWhileDialling: a device loop that dials a device's old address (here a
// port that accepts and never answers, as a dead address can for seconds) still starts the
// push stream an inbound session asks for, before that dial ends. Before, the push waited
// for the dial to time out: the first change after a pairing took ~4.7 s.
func TestPushStartsWhileDialling(t *testing.T) {
	cfg := testConfig(t, "a")
	a, err := Init(context.Background(), cfg, "a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	a.manual = true // no device loops of its own: the test drives one
	mustStart(t, a)
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	admitPeer(t, a, "ghost", p)

	// The old address: accepts, then says nothing until the dialler gives up.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted, closed := make(chan struct{}), make(chan struct{})
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		close(accepted)
		io.Copy(io.Discard, c) // until the dialler closes
		c.Close()
		close(closed)
	}()
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", l.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	h := a.Host()
	h.Peerstore().AddAddrs(p, []ma.Multiaddr{addr}, time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pl := &peerLoop{p: p, kick: make(chan struct{}, 1), push: make(chan uint64, 1), gone: make(chan struct{}, 1)}
	started := make(chan uint64, 1)
	dialled := make(chan error, 1)
	go func() { dialled <- a.dial(ctx, h, pl, func(from uint64) { started <- from }) }()
	<-accepted
	pl.ensurePush(7) // what an inbound session from the device asks for
	select {
	case from := <-started:
		if from != 7 {
			t.Errorf("push started after %d, want 7", from)
		}
	case <-closed:
		t.Fatal("the dial ended before the push started")
	case err := <-dialled:
		t.Fatalf("the dial ended (%v) before the push started", err)
	}
	cancel()
	<-dialled
}
