package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/store"
)

// Test plan row 11: a host that is not a device of the mesh gets no byte of meshsync data,
// however it finds the node and whichever protocol it opens.

// unpairedCanary is a record value that must never leave the node towards a stranger.
const unpairedCanary = "canary-4b1d-unpaired-must-not-see"

// logCounter is a slog handler that counts the node's log records by message, to see
// from the inside which handler refused a stream.
type logCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func newLogCounter() *logCounter { return &logCounter{counts: map[string]int{}} }

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.counts[r.Message]++
	c.mu.Unlock()
	return nil
}
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }

func (c *logCounter) get(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[msg]
}

// handlerRefusals counts the sync, push and members streams the node's handlers refused
// because the peer is not a device.
func (c *logCounter) handlerRefusals() int {
	return c.get("sync refused: not a device") + c.get("push refused: not a device") + c.get("members refused: not a device")
}

// accepted counts what a stranger must never cause: a session, a push or a pairing run.
func (c *logCounter) accepted() int {
	return c.get("sync session failed") + c.get("push stream ended") + c.get("device paired")
}

// leakMarkers are byte strings that identify meshsync data of n: the canary value, every
// record id, the Merkle root fingerprint, the store epoch and the mesh id.
func leakMarkers(t *testing.T, n *Node) [][]byte {
	t.Helper()
	out := [][]byte{[]byte(unpairedCanary)}
	if _, err := n.st.Replication().Since(0, 0, func(_ uint64, raw []byte) error {
		env, err := store.UnmarshalEnvelope(raw)
		if err != nil {
			return err
		}
		out = append(out, bytes.Clone(env.ID[:]))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	root, err := n.st.Replication().Root()
	if err != nil {
		t.Fatal(err)
	}
	epoch, mesh := n.st.Replication().Epoch(), n.st.Keys().MeshID()
	return append(out, bytes.Clone(root.FP[:]), epoch[:], mesh[:])
}

// leaks counts the markers found in b.
func leaks(b []byte, markers [][]byte) int {
	n := 0
	for _, m := range markers {
		if bytes.Contains(b, m) {
			n++
		}
	}
	return n
}

// probeResult is what a stranger got from opening one protocol.
type probeResult struct {
	proto  protocol.ID
	opened bool   // NewStream returned a stream
	data   []byte // everything read before EOF, reset or the deadline
	err    error  // why the stream could not be opened, or how it ended
	took   time.Duration
}

// probe opens proto from h to target (without dialling when noDial), writes a sync hello
// (or, for pairing, a join request with the given proof) and reads what comes back for up
// to three seconds.
func probe(h host.Host, target peer.ID, proto protocol.ID, noDial bool, proof []byte) probeResult {
	r := probeResult{proto: proto}
	start := time.Now()
	defer func() { r.took = time.Since(start) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if noDial {
		ctx = network.WithNoDial(ctx, "probe an existing connection")
	}
	s, err := h.NewStream(ctx, target, proto)
	if err != nil {
		r.err = err
		return r
	}
	r.opened = true
	defer s.Reset()
	s.SetDeadline(time.Now().Add(3 * time.Second))
	if proto == PairProtocol {
		b, _ := json.Marshal(&pairMsg{Proof: proof, Name: "stranger"})
		wire.WriteFrame(s, wire.TypePair, b)
	} else {
		wire.WriteFrame(s, wire.TypeHello, (&wire.Hello{Version: wire.Version}).Marshal())
	}
	r.data, r.err = io.ReadAll(io.LimitReader(s, 1<<20))
	return r
}

// redial forgets h's dial backoff towards p, so that the next attempt really reaches p.
func redial(h host.Host, p peer.ID) {
	h.Network().ClosePeer(p)
	if sw, ok := h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}

// median returns the middle of ds (0 when empty).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// unpairedNode starts a one-device mesh holding a canary record, logging into a counter.
func unpairedNode(t *testing.T, mod func(*Config)) (*Node, *logCounter) {
	t.Helper()
	lc := newLogCounter()
	nodes := newMeshWith(t, 1, func(c *Config) {
		c.Logger = slog.New(lc)
		if mod != nil {
			mod(c)
		}
	})
	a := nodes[0]
	if err := a.Put("secret", "k", []byte(`"`+unpairedCanary+`"`)); err != nil {
		t.Fatal(err)
	}
	return a, lc
}

// gatedDial dials info from h (dial backoff cleared first) and returns how long it took
// from the start of the dial until h saw the connection closed, or an error when it
// stayed open. A refused dial may still report success to the dialer: it finishes its side
// of the handshake before the node's gate closes the connection.
func gatedDial(t *testing.T, h host.Host, info peer.AddrInfo) (time.Duration, error) {
	t.Helper()
	redial(h, info.ID)
	start := time.Now()
	if err := h.Connect(ctxT(t, 10*time.Second), info); err != nil {
		return time.Since(start), nil // closed during the upgrade
	}
	for h.Network().Connectedness(info.ID) == network.Connected {
		if time.Since(start) > 10*time.Second {
			return time.Since(start), errors.New("the connection is still open after 10 s")
		}
		time.Sleep(500 * time.Microsecond)
	}
	return time.Since(start), nil
}

// addrInfo is a's peer id and listen addresses, as a stranger dialling directly uses them.
func addrInfo(a *Node) peer.AddrInfo { return peer.AddrInfo{ID: a.id, Addrs: a.Host().Addrs()} }

// noConnFrom checks that the node holds no connection from p (the gate closed it).
func noConnFrom(t *testing.T, a *Node, p peer.ID) {
	t.Helper()
	eventually(t, "the node holds no connection from the stranger", func() error {
		if cs := a.Host().Network().ConnsToPeer(p); len(cs) > 0 {
			return errors.New("still connected")
		}
		return nil
	})
}

// A stranger on the LAN hears the node's mDNS announcement (the service name travels in
// clear in every multicast answer, so a listener learns it), dials the addresses it
// advertises, and is closed at InterceptSecured: no stream opens.
func TestUnpairedMDNSPeerRefused(t *testing.T) {
	if !hasMulticast() {
		t.Skip("no up interface with multicast: mDNS cannot run on this host")
	}
	a, lc := unpairedNode(t, func(c *Config) { c.EnableMDNS = true })
	h := plainHost(t)
	keys, err := a.st.Keys().DiscoveryKeys()
	if err != nil {
		t.Fatal(err)
	}
	found := make(chan peer.AddrInfo, 16)
	svc := mdns.NewMdnsService(h, mdnsName(keys[0].Key, a.id), notifeeFunc(func(pi peer.AddrInfo) {
		select {
		case found <- pi:
		default:
		}
	}))
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	var info peer.AddrInfo
	timeout := time.After(30 * time.Second)
	for info.ID != a.id {
		select {
		case info = <-found:
		case <-timeout:
			t.Fatal("the stranger heard no mDNS announcement of the node in 30 s")
		}
	}
	t.Logf("mDNS gave the stranger %d addresses of the node", len(info.Addrs))
	refused0 := a.States().Refused
	var closes []time.Duration
	got, opened := 0, 0
	for _, proto := range []protocol.ID{SyncProtocol, PushProtocol, PairProtocol} {
		took, err := gatedDial(t, h, info)
		closes = append(closes, took)
		if err != nil {
			t.Errorf("the stranger's connection from mDNS addresses: %v", err)
		}
		redial(h, a.id)
		// NewStream may hand out a stream on a connection the gate is closing (the
		// dialer's side of the handshake is done): what counts is that nothing comes back
		// and no handler runs (checked below).
		r := probe(h, a.id, proto, false, nil)
		got += len(r.data)
		if len(r.data) > 0 {
			t.Errorf("%s: %d bytes read", proto, len(r.data))
		}
		if r.opened {
			opened++
		}
	}
	noConnFrom(t, a, h.ID())
	refused := a.States().Refused - refused0
	if refused == 0 {
		t.Error("the gate counted no refusal")
	}
	if n := lc.handlerRefusals() + lc.accepted(); n != 0 {
		t.Errorf("%d streams reached a meshsync handler through a gated connection", n)
	}
	t.Logf("found by mDNS: %d bytes returned, 0 streams accepted (%d opened locally on a closing connection), %d gate refusals, time to close median %v (max %v)",
		got, opened, refused, median(closes).Round(time.Microsecond), slices.Max(closes).Round(time.Microsecond))
}

// notifeeFunc adapts a function to mdns.Notifee.
type notifeeFunc func(peer.AddrInfo)

func (f notifeeFunc) HandlePeerFound(pi peer.AddrInfo) { f(pi) }

// A stranger dials the node directly and tries every protocol the node's host has
// registered, libp2p's own included: with no invite open, every connection is closed at
// InterceptSecured, so no byte comes back and no stream reaches a handler.
func TestUnpairedEveryProtocolNoInvite(t *testing.T) {
	a, lc := unpairedNode(t, nil)
	h := plainHost(t)
	protos := a.Host().Mux().Protocols()
	if !slices.Contains(protos, PairProtocol) || !slices.Contains(protos, SyncProtocol) {
		t.Fatalf("registered protocols %v lack pairing or sync", protos)
	}
	t.Logf("registered protocols: %v", protos)
	refused0 := a.States().Refused
	var closes []time.Duration
	got, opened := 0, 0
	for _, proto := range protos {
		took, err := gatedDial(t, h, addrInfo(a))
		closes = append(closes, took)
		if err != nil {
			t.Errorf("%s: the stranger's connection: %v", proto, err)
		}
		redial(h, a.id)
		r := probe(h, a.id, proto, false, nil)
		got += len(r.data)
		if len(r.data) > 0 {
			t.Errorf("%s: %d bytes read (%v)", proto, len(r.data), r.err)
		}
		if r.opened {
			opened++
		}
	}
	noConnFrom(t, a, h.ID())
	refused := a.States().Refused - refused0
	// Every attempt (a Connect and a NewStream per protocol) reached the gate at least once.
	if want := uint64(2 * len(protos)); refused < want {
		t.Errorf("gate refusals: %d, want at least %d", refused, want)
	}
	if n := lc.handlerRefusals() + lc.accepted(); n != 0 {
		t.Errorf("%d streams reached a handler through a gated connection", n)
	}
	t.Logf("%d protocols, no invite: %d bytes returned, 0 streams accepted (%d opened locally on a closing connection), %d gate refusals, time to close median %v (max %v)",
		len(protos), got, opened, refused, median(closes).Round(time.Microsecond), slices.Max(closes).Round(time.Microsecond))
}

// /meshsync/pair with no invite open on a connection the gate admitted earlier: the
// invite was cancelled, or expired, after the stranger connected. The pairing handler
// refuses (0 bytes) and the node closes the stranger's connection; a new one is refused
// at the gate.
func TestUnpairedPairWithoutInvite(t *testing.T) {
	a, lc := unpairedNode(t, nil)
	h := plainHost(t)
	cases := map[string]func(){
		"cancelled": a.CancelInvite,
		"expired": func() {
			a.invites.mu.Lock()
			a.invites.cur.expires = time.Now().Add(-time.Second)
			a.invites.mu.Unlock()
		},
	}
	for name, closeInvite := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := a.Invite(time.Minute); err != nil {
				t.Fatal(err)
			}
			redial(h, a.id)
			if err := h.Connect(ctxT(t, 10*time.Second), addrInfo(a)); err != nil {
				t.Fatalf("connect while the invite is open: %v", err)
			}
			closeInvite()
			start := time.Now()
			r := probe(h, a.id, PairProtocol, true, make([]byte, 32))
			if len(r.data) > 0 {
				t.Fatalf("pairing with no invite open answered %d bytes: %q", len(r.data), r.data)
			}
			eventually(t, "the node closes the stranger's connection", func() error {
				if h.Network().Connectedness(a.id) == network.Connected {
					return errors.New("still connected")
				}
				return nil
			})
			took := time.Since(start)
			refused0 := a.States().Refused
			if _, err := gatedDial(t, h, addrInfo(a)); err != nil {
				t.Errorf("a new connection with no invite open: %v", err)
			}
			if a.States().Refused == refused0 {
				t.Error("the gate counted no refusal")
			}
			if n := lc.accepted(); n != 0 {
				t.Errorf("%d pairing or sync runs accepted", n)
			}
			t.Logf("invite %s: pairing answered 0 bytes, connection closed %v after the pairing stream opened", name, took.Round(time.Microsecond))
		})
	}
	if n := len(a.Devices()); n != 1 {
		t.Fatalf("the node lists %d devices, want 1", n)
	}
}

// While an invite is open the gate admits strangers, for pairing. A stranger then opens
// every registered protocol: the meshsync handlers refuse it themselves (0 bytes, one
// refusal each in the node's log), pairing with a wrong secret answers an error and no
// key, and libp2p's own protocols (identify) answer with nothing of the mesh's data.
func TestUnpairedEveryProtocolDuringInvite(t *testing.T) {
	a, lc := unpairedNode(t, nil)
	markers := leakMarkers(t, a)
	h := plainHost(t)
	if _, _, err := a.Invite(time.Minute); err != nil {
		t.Fatal(err)
	}
	protos := a.Host().Mux().Protocols()
	// Pairing last, the long code's at the very end: a wrong secret makes the node drop
	// the stranger (and so does the short-code protocol while a long invite is open).
	rank := map[protocol.ID]int{PairShortProtocol: 1, PairProtocol: 2}
	slices.SortStableFunc(protos, func(x, y protocol.ID) int { return rank[x] - rank[y] })
	if err := h.Connect(ctxT(t, 10*time.Second), peer.AddrInfo{ID: a.id, Addrs: a.Host().Addrs()}); err != nil {
		t.Fatalf("connect during the invite: %v", err)
	}
	meshsyncStreams, meshsyncBytes, libp2pBytes, leaked := 0, 0, 0, 0
	for _, proto := range protos {
		r := probe(h, a.id, proto, true, make([]byte, 32))
		leaked += leaks(r.data, markers)
		switch {
		case proto == PairShortProtocol:
			// The open invite is a long code's: the node resets the stream and drops the
			// stranger before reading anything.
			if len(r.data) > 0 {
				t.Errorf("short-code pairing during a long invite answered %q", r.data)
			}
			if err := h.Connect(ctxT(t, 10*time.Second), peer.AddrInfo{ID: a.id, Addrs: a.Host().Addrs()}); err != nil {
				t.Fatalf("connect again during the invite: %v", err)
			}
		case proto == PairProtocol:
			// The node answers {error} and resets the stream at once: the stranger reads
			// that error, or nothing.
			if len(r.data) > 0 {
				if m := decodePairReply(t, r.data); m == nil || m.Error == "" || len(m.MeshKey) > 0 || m.Token != nil || len(m.Devices) > 0 {
					t.Errorf("pairing with a wrong secret answered %q", r.data)
				}
			}
		case strings.HasPrefix(string(proto), "/meshsync/"):
			meshsyncStreams++
			meshsyncBytes += len(r.data)
			if len(r.data) > 0 {
				t.Errorf("%s: the stranger read %d bytes", proto, len(r.data))
			}
		default:
			libp2pBytes += len(r.data)
		}
		t.Logf("%-28s opened %-5v read %5d bytes (%v)", proto, r.opened, len(r.data), r.err)
	}
	if leaked > 0 {
		t.Errorf("%d markers of the mesh's data (record ids, root, epoch, mesh id, canary) reached the stranger", leaked)
	}
	if got := lc.handlerRefusals(); got != meshsyncStreams {
		t.Errorf("the meshsync handlers refused %d streams, the stranger opened %d", got, meshsyncStreams)
	}
	if n := lc.accepted(); n != 0 {
		t.Errorf("%d meshsync streams accepted", n)
	}
	t.Logf("invite open, %d protocols: meshsync %d streams refused by their handlers, %d bytes; libp2p protocols %d bytes (no mesh data: %d markers found)",
		len(protos), meshsyncStreams, meshsyncBytes, libp2pBytes, leaked)
}

// decodePairReply parses the pairing frame a stranger read (nil if there is none).
func decodePairReply(t *testing.T, b []byte) *pairMsg {
	t.Helper()
	typ, body, err := wire.ReadFrame(bytes.NewReader(b), wire.MaxPairFrame)
	if err != nil || typ != wire.TypePair {
		return nil
	}
	m, err := decodePairMsg(body)
	if err != nil {
		return nil
	}
	return m
}

// A peer the node dialled itself, as it dials DHT peers and relays (here with the DHT as
// a client, and as a server, which also admits strangers' inbound connections), opens
// every protocol of the node back over that connection: the meshsync handlers refuse it
// (0 bytes), pairing is refused on a connection the node dialled, and nothing of the
// mesh's data leaves. As a DHT client the node refuses the peer's own inbound dial at the
// gate.
func TestUnpairedOutboundPeerOpensBack(t *testing.T) {
	for _, mode := range []DHTMode{DHTClient, DHTServer} {
		name := map[DHTMode]string{DHTClient: "dht-client", DHTServer: "dht-server"}[mode]
		t.Run(name, func(t *testing.T) {
			b, lc := unpairedNode(t, func(c *Config) { c.LANOnly = false; c.DHTMode = mode })
			markers := leakMarkers(t, b)
			h := plainHost(t)
			protos := b.Host().Mux().Protocols()
			meshsync, got, libp2pBytes, leaked := 0, 0, 0, 0
			for _, proto := range protos {
				// The node dials the peer (a DHT query or a relay reservation would).
				if err := b.Host().Connect(ctxT(t, 10*time.Second), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
					t.Fatalf("the node dials the peer: %v", err)
				}
				r := probe(h, b.id, proto, true, make([]byte, 32))
				leaked += leaks(r.data, markers)
				if strings.HasPrefix(string(proto), "/meshsync/") {
					meshsync++
					got += len(r.data)
					if len(r.data) > 0 {
						t.Errorf("%s: the peer read %d bytes back over the node's own connection", proto, len(r.data))
					}
				} else {
					libp2pBytes += len(r.data)
				}
				t.Logf("%-34s opened %-5v read %5d bytes (%v)", proto, r.opened, len(r.data), r.err)
			}
			for _, c := range b.Host().Network().ConnsToPeer(h.ID()) {
				if c.Stat().Direction != network.DirOutbound {
					t.Errorf("the node holds an inbound connection from the peer (%v)", c.Stat().Direction)
				}
			}
			if leaked > 0 {
				t.Errorf("%d markers of the mesh's data reached the peer", leaked)
			}
			// Sync and push reach their handlers, which refuse; both pairing protocols are
			// refused before their handlers on a connection the node dialled.
			want := meshsync - 2
			if got := lc.handlerRefusals(); got != want {
				t.Errorf("the meshsync handlers refused %d streams, want %d", got, want)
			}
			if n := lc.accepted(); n != 0 {
				t.Errorf("%d meshsync streams accepted", n)
			}
			refused0 := b.States().Refused
			var took time.Duration
			var err error
			if mode == DHTClient {
				h.Network().ClosePeer(b.id)
				if took, err = gatedDial(t, h, addrInfo(b)); err != nil {
					t.Errorf("as a DHT client the node admitted the peer's inbound connection: %v", err)
				}
				if b.States().Refused == refused0 {
					t.Error("the gate counted no refusal")
				}
				noConnFrom(t, b, h.ID())
			} else {
				redial(h, b.id)
				start := time.Now()
				if err = h.Connect(ctxT(t, 10*time.Second), addrInfo(b)); err != nil {
					t.Fatalf("as a DHT server the node refused the peer's inbound connection: %v", err)
				}
				took = time.Since(start)
				// A DHT server admits it; the handlers still refuse every meshsync stream.
				for _, proto := range []protocol.ID{SyncProtocol, PushProtocol, PairProtocol} {
					if r := probe(h, b.id, proto, true, make([]byte, 32)); len(r.data) > 0 && proto != PairProtocol {
						t.Errorf("%s over the peer's inbound connection: %d bytes", proto, len(r.data))
					} else if proto == PairProtocol && len(r.data) > 0 {
						t.Errorf("pairing with no invite open answered %d bytes", len(r.data))
					}
				}
			}
			t.Logf("%s: %d meshsync protocols opened back over the node's own connection: %d bytes, 0 accepted; libp2p protocols %d bytes, %d markers of mesh data; the peer's own dial ended after %v (gate refusals %d)",
				name, meshsync, got, libp2pBytes, leaked, took.Round(time.Microsecond), b.States().Refused-refused0)
		})
	}
}
