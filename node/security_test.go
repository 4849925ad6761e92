package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/node/session"
)

func plainHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// readAll opens proto on target and returns what it could read (nothing, for a refused
// stream).
func tryProtocol(h host.Host, target peer.ID, proto protocol.ID) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, target, proto)
	if err != nil {
		return 0, err
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(3 * time.Second))
	hello := &wire.Hello{Version: wire.Version}
	wire.WriteFrame(s, wire.TypeHello, hello.Marshal())
	b, err := io.ReadAll(s)
	return len(b), err
}

// A host that is not paired is refused at the gate, and, while an invite is open, gets no
// byte of the sync or push protocols.
func TestUnpairedHostGetsNothing(t *testing.T) {
	nodes := newMesh(t, 1)
	a := nodes[0]
	a.Put("secret", "k", []byte(`"v"`))
	h := plainHost(t)
	info := a.Host().Peerstore().PeerInfo(a.id)
	info.Addrs = a.Host().Addrs()
	if err := h.Connect(ctxT(t, 5*time.Second), info); err == nil {
		// The gate closes it at InterceptSecured; a stream must not open.
		if n, err := tryProtocol(h, a.id, SyncProtocol); n > 0 || err == nil {
			t.Fatalf("unpaired host read %d bytes of sync (%v)", n, err)
		}
	}
	if a.States().Refused == 0 {
		t.Error("gate reports no refused connection")
	}
	// With an invite open the connection is admitted, but only pairing answers.
	if _, _, err := a.Invite(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctxT(t, 5*time.Second), info); err != nil {
		t.Fatalf("connect during invite: %v", err)
	}
	for _, proto := range []protocol.ID{SyncProtocol, PushProtocol} {
		if n, err := tryProtocol(h, a.id, proto); n > 0 || err == nil {
			t.Errorf("%s: unpaired host read %d bytes (%v)", proto, n, err)
		}
	}
}

// withSecret returns code with its secret replaced.
func withSecret(t *testing.T, code string, b byte) string {
	inv, err := wire.ParseInvite(code)
	if err != nil {
		t.Fatal(err)
	}
	inv.Secret[0] ^= b
	out, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInviteWrongUsedExpired(t *testing.T) {
	nodes := newMesh(t, 1)
	a := nodes[0]
	code, _, err := a.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// A typo is caught before any network use.
	typo := []byte(code)
	typo[10] ^= 1
	if _, err := Join(ctxT(t, 10*time.Second), testConfig(t, "x"), string(typo), "x"); !errors.Is(err, ErrBadInvite) {
		t.Fatalf("typo: %v", err)
	}
	// Three wrong secrets kill the invite: even the right one is then refused.
	for i := range MaxInviteFailures {
		_, err := Join(ctxT(t, 10*time.Second), testConfig(t, "x"), withSecret(t, code, byte(i+1)), "x")
		if !errors.Is(err, ErrInviteRefused) {
			t.Fatalf("wrong secret %d: %v", i, err)
		}
	}
	if _, err := Join(ctxT(t, 10*time.Second), testConfig(t, "x"), code, "x"); !errors.Is(err, ErrInviteRefused) {
		t.Fatalf("right secret after 3 failures: %v", err)
	}
	// A code works once.
	code, _, _ = a.Invite(time.Minute)
	b, err := Join(ctxT(t, 30*time.Second), testConfig(t, "b"), code, "b")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := Join(ctxT(t, 10*time.Second), testConfig(t, "c"), code, "c"); !errors.Is(err, ErrInviteRefused) {
		t.Fatalf("reused code: %v", err)
	}
	// An expired code is refused by the joiner, and by the inviter if the joiner ignores
	// the expiry.
	code, _, _ = a.Invite(time.Minute)
	a.invites.mu.Lock()
	a.invites.cur.expires = time.Now().Add(-time.Second)
	a.invites.mu.Unlock()
	inv, _ := wire.ParseInvite(code)
	sk, _, _ := crypto.GenerateEd25519Key(nil)
	h, err := joinHost(sk)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	created := false
	err = pairWith(ctxT(t, 10*time.Second), h, inv, inv.Addrs, "late", 5*time.Second, func(*pairMsg, peer.AddrInfo) (string, error) {
		created = true
		return "dev", nil
	})
	if err == nil || created {
		t.Fatalf("expired invite paired: %v (offer received: %v)", err, created)
	}
	// A long code of format 1 carries its expiry: the joiner refuses it without dialling.
	inv.Expires = time.Now().Add(-time.Minute)
	old, _ := inv.EncodeLong()
	if _, err := Join(ctxT(t, 10*time.Second), testConfig(t, "d"), old, "d"); !errors.Is(err, ErrInviteExpired) {
		t.Fatalf("expired code: %v", err)
	}
	if n := len(a.Devices()); n != 2 {
		t.Fatalf("a lists %d devices, want 2 (itself and b)", n)
	}
}

// fakeDevice is a plain host registered as a device of a's mesh: a paired peer that
// misbehaves.
func fakeDevice(t *testing.T, a *Node) host.Host {
	h := plainHost(t)
	admitPeer(t, a, "fake", h.ID())
	info := peer.AddrInfo{ID: a.id, Addrs: a.Host().Addrs()}
	if err := h.Connect(ctxT(t, 5*time.Second), info); err != nil {
		t.Fatal(err)
	}
	return h
}

// A paired peer that sends malformed, oversized or slow messages loses its session; the
// node keeps serving honest devices.
func TestHostilePeer(t *testing.T) {
	nodes := newMeshWith(t, 2, func(c *Config) { c.StepTimeout = 500 * time.Millisecond })
	a, b := nodes[0], nodes[1]
	evil := fakeDevice(t, a)
	goodHello := func() []byte {
		root, _ := a.st.Replication().Root()
		h := &wire.Hello{Version: wire.Version, Proof: session.Proof(a.pairKey, 'I', evil.ID(), a.id), RootCount: root.Count + 1}
		return h.Marshal()
	}
	frame := func(t wire.Type, body []byte) []byte {
		var buf bytes.Buffer
		wire.WriteFrame(&buf, t, body)
		return buf.Bytes()
	}
	cases := map[string][]byte{
		"garbage":        []byte("GET / HTTP/1.1\r\n\r\n"),
		"oversize":       {0x7f, 0xff, 0xff, 0xff, byte(wire.TypeHello)},
		"bad hello":      frame(wire.TypeHello, []byte("short")),
		"wrong proof":    frame(wire.TypeHello, (&wire.Hello{Version: wire.Version}).Marshal()),
		"slow":           nil, // sends nothing
		"bad merkle":     append(frame(wire.TypeHello, goodHello()), frame(wire.TypeMerkle, []byte{1, 2, 3})...),
		"truncated body": append(frame(wire.TypeHello, goodHello()), 0, 0, 1, 0, byte(wire.TypeMerkle)),
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := evil.NewStream(ctxT(t, 5*time.Second), a.id, SyncProtocol)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Reset()
			s.Write(msg)
			s.SetReadDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			got, err := io.ReadAll(s)
			if err == nil && len(got) > wire.HelloSize+5+4096 {
				t.Fatalf("session went on: read %d bytes", len(got))
			}
			if time.Since(start) > 9*time.Second {
				t.Fatal("the node did not end the session")
			}
		})
	}
	// Push stream with a corrupt batch.
	s, err := evil.NewStream(ctxT(t, 5*time.Second), a.id, PushProtocol)
	if err != nil {
		t.Fatal(err)
	}
	var epoch [16]byte
	wire.WriteFrame(s, wire.TypePushOpen, (&wire.PushOpen{Epoch: epoch}).Marshal())
	wire.WriteFrame(s, wire.TypeBatch, (&wire.Batch{From: 0, To: 1, Envelopes: [][]byte{[]byte("not an envelope")}}).Marshal())
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(s); err == nil {
		t.Error("push stream with a corrupt envelope was not reset")
	}
	s.Reset()
	// The honest device still syncs.
	b.Put("notes", "still", []byte(`"ok"`))
	eventually(t, "honest sync", func() error { return hasValue(a, "notes", "still", `"ok"`) })
	if _, err := a.Get("notes", "x"); err != nil && !isNotFound(err) && !strings.Contains(err.Error(), "not found") {
		t.Fatal(err)
	}
}

// An inviting device that cannot be reached is named as such, with the addresses tried,
// not as a refused invite (issue 19): the invite was never used.
func TestJoinUnreachableInviter(t *testing.T) {
	a := mustStart(t, newMesh(t, 1)[0])
	code, _, err := a.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := wire.ParseInvite(code)
	if err != nil {
		t.Fatal(err)
	}
	a.Stop()
	_, err = Join(ctxT(t, 20*time.Second), testConfig(t, "j"), code, "j")
	if !errors.Is(err, ErrInviterUnreachable) || errors.Is(err, ErrInviteRefused) {
		t.Fatalf("join with the inviter down: %v, want ErrInviterUnreachable", err)
	}
	for _, addr := range inv.Addrs {
		if !strings.Contains(err.Error(), addr.String()) {
			t.Errorf("the error does not list %s: %v", addr, err)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("the error runs over several lines: %q", err)
	}
}
