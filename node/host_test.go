package node

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// Two devices speak TLS (AES-GCM on the CPU's AES instructions): a bulk transfer seals and
// opens every byte once more in the transport, and Noise's ChaCha20-Poly1305 cost a
// million-record initial sync about a second of CPU (baseOptions).
func TestDevicesSpeakTLS(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	if err := a.Put("notes", "x", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b sees a's write", func() error { return hasValue(b, "notes", "x", `{"v":1}`) })
	conns := a.Host().Network().ConnsToPeer(b.id)
	tcpConns := 0
	for _, c := range conns {
		if c.ConnState().Transport != "tcp" {
			continue // QUIC has TLS built in
		}
		tcpConns++
		if got := c.ConnState().Security; got != libp2ptls.ID {
			t.Errorf("a's connection to b (%s) is secured by %q, want %q", c.RemoteMultiaddr(), got, libp2ptls.ID)
		}
	}
	if tcpConns == 0 {
		t.Fatalf("a has no TCP connection to b after a sync (%d in all)", len(conns))
	}
}

// A device whose host proposes Noise first (every meshsync before TLS came first) is still
// admitted, over Noise, and its streams are answered.
func TestNoiseFirstDeviceStillConnects(t *testing.T) {
	target := newMesh(t, 1)[0]
	old := newHostile(t, target, "old")
	rm, err := newResourceManager()
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(old.key),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx := ctxT(t, 10*time.Second)
	if err := h.Connect(ctx, peer.AddrInfo{ID: target.id, Addrs: target.Host().Addrs()}); err != nil {
		t.Fatalf("a Noise-first device of the mesh cannot connect: %v", err)
	}
	conns := h.Network().ConnsToPeer(target.id)
	if len(conns) == 0 {
		t.Fatal("no connection after Connect")
	}
	for _, c := range conns {
		if got := c.ConnState().Security; got != noise.ID {
			t.Errorf("connection secured by %q, want %q (the dialler's first choice)", got, noise.ID)
		}
	}
	s, err := h.NewStream(ctx, target.id, SyncProtocol)
	if err != nil {
		t.Fatalf("sync stream over Noise: %v", err)
	}
	s.Reset()
}
