package share

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node/internal/wire"
)

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// capture is an OnShare that keeps copies of what arrived.
type capture struct {
	mu     sync.Mutex
	shares []Share
}

func (c *capture) on(s Share) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := s
	cp.Docs = nil
	for _, d := range s.Docs {
		cp.Docs = append(cp.Docs, bytes.Clone(d))
	}
	c.shares = append(c.shares, cp)
	return nil
}

func (c *capture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.shares)
}

var testFields = []string{"at=generalize:day", "author=pseudonymize", "title=keep"}

// A share between two real hosts arrives byte for byte, and its receipt verifies with the
// public key of the destination's peer id against what the sender sent.
func TestSendReceive(t *testing.T) {
	a, b := newHost(t), newHost(t)
	var got capture
	r := NewReceiver(b, &Options{OnShare: got.on})
	defer r.Close()
	connect(t, a, b)

	docs := [][]byte{[]byte(`{"title":"one"}`), []byte(`{"author":"x","title":"two"}`)}
	// Enough documents to fill more than one batch frame.
	big := []byte(`{"title":"` + strings.Repeat("z", 300<<10) + `"}`)
	docs = append(docs, big, big, big, big)
	res, err := Send(context.Background(), a, b.ID(), Outgoing{Grant: "0123abcd", Purpose: "research", Fields: testFields, Docs: docs})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Started {
		t.Error("Started = false after a share")
	}
	if got.count() != 1 {
		t.Fatalf("receiver got %d shares, want 1", got.count())
	}
	sh := got.shares[0]
	if sh.Sender != a.ID() || sh.Header.Count != len(docs) || len(sh.Docs) != len(docs) {
		t.Fatalf("received from %s, header %+v, %d docs", sh.Sender, sh.Header, len(sh.Docs))
	}
	for i := range docs {
		if !bytes.Equal(sh.Docs[i], docs[i]) {
			t.Errorf("doc %d differs", i)
		}
	}
	sr, err := consent.ParseSignedReceipt(res.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := b.ID().ExtractPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	verify := func(msg, sig []byte) error {
		if ok, err := pub.Verify(msg, sig); !ok || err != nil {
			return errors.New("bad signature")
		}
		return nil
	}
	rules, _ := consent.ParseRules(testFields)
	g := consent.Grant{ID: "0123abcd", Purpose: "research", Destination: b.ID().String(), Fields: rules}
	want := consent.NewReceipt(g, a.ID().String(), docs, time.Now())
	if err := consent.VerifyReceipt(sr, want, verify); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	// The same receipt does not verify for other documents.
	want.DocsDigest = consent.DigestDocs(docs[:1])
	if err := consent.VerifyReceipt(sr, want, verify); !errors.Is(err, consent.ErrBadReceipt) {
		t.Fatalf("receipt for other documents: %v", err)
	}
}

// An empty share is a header and an end; it still gets a receipt.
func TestSendEmpty(t *testing.T) {
	a, b := newHost(t), newHost(t)
	var got capture
	defer NewReceiver(b, &Options{OnShare: got.on}).Close()
	connect(t, a, b)
	res, err := Send(context.Background(), a, b.ID(), Outgoing{Grant: "0123abcd", Purpose: "p", Fields: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if sr, err := consent.ParseSignedReceipt(res.Receipt); err != nil || sr.Receipt.Count != 0 {
		t.Fatalf("receipt %+v, %v", sr, err)
	}
}

// A destination refuses what is over its limits, or what it cannot keep, and says why;
// the sender then holds no receipt.
func TestReceiverRefuses(t *testing.T) {
	small := [][]byte{[]byte(`{"a":1}`), []byte(`{"a":2}`), []byte(`{"a":3}`)}
	var large [][]byte // 16 MiB: the destination refuses while the sender still writes
	for range 16 {
		large = append(large, []byte(`{"a":"`+strings.Repeat("x", 1<<20-16)+`"}`))
	}
	for _, tc := range []struct {
		name string
		opts Options
		docs [][]byte
		want string
	}{
		{"too many documents", Options{MaxDocs: 2}, small, "3 documents"},
		{"too many bytes", Options{MaxBytes: 20}, small, "more than 20 bytes"},
		{"too many bytes midway", Options{MaxBytes: 2 << 20}, large, "more than 2097152 bytes"},
		{"cannot keep", Options{OnShare: func(Share) error { return errors.New("disk full") }}, small, "could not keep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newHost(t), newHost(t)
			o := tc.opts
			defer NewReceiver(b, &o).Close()
			connect(t, a, b)
			res, err := Send(context.Background(), a, b.ID(), Outgoing{Grant: "0123abcd", Purpose: "p", Fields: []string{"a=keep"}, Docs: tc.docs})
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrRefused with %q", err, tc.want)
			}
			if res.Receipt != nil {
				t.Fatal("refused share came with a receipt")
			}
		})
	}
}

// The sender refuses to send what the protocol cannot carry, before opening a stream.
func TestSendRefusesBadInput(t *testing.T) {
	a, b := newHost(t), newHost(t)
	var got capture
	defer NewReceiver(b, &Options{OnShare: got.on}).Close()
	connect(t, a, b)
	for _, out := range []Outgoing{
		{Grant: "0123abcd", Purpose: "p", Fields: []string{"a=keep"}, Docs: [][]byte{[]byte(`[1]`)}},
		{Grant: "0123abcd", Purpose: "p", Fields: []string{"a=keep"}, Docs: [][]byte{[]byte("{\"a\": 1}")}},
		{Grant: "0123abcd", Purpose: "p", Fields: []string{"a=drop"}},
		{Grant: "0123abcd", Purpose: "p", Fields: []string{"b=keep", "a=keep"}},
		{Grant: "Not An Id", Purpose: "p", Fields: []string{}},
		{Grant: "0123abcd", Purpose: "", Fields: []string{}},
	} {
		res, err := Send(context.Background(), a, b.ID(), out)
		if err == nil || res.Started {
			t.Errorf("%+v: err %v, started %v", out, err, res.Started)
		}
	}
	if got.count() != 0 {
		t.Fatalf("receiver got %d shares", got.count())
	}
}

// A sender that breaks the protocol (more documents than announced, a stray frame) gets
// no receipt, and the destination keeps nothing.
func TestReceiverProtocolViolations(t *testing.T) {
	hb, _ := Header{Grant: "0123abcd", Purpose: "p", Fields: []string{"a=keep"}, Count: 1}.marshal()
	b1, _ := marshalBatch([][]byte{[]byte(`{"a":1}`)})
	b2, _ := marshalBatch([][]byte{[]byte(`{"a":1}`), []byte(`{"a":2}`)})
	for name, frames := range map[string][]struct {
		t wire.Type
		b []byte
	}{
		"more than announced":  {{typeHeader, hb}, {typeBatch, b2}, {typeEnd, nil}},
		"fewer than announced": {{typeHeader, hb}, {typeEnd, nil}},
		"stray frame":          {{typeHeader, hb}, {typeReceipt, b1}, {typeEnd, nil}},
		"no header":            {{typeBatch, b1}, {typeEnd, nil}},
	} {
		t.Run(name, func(t *testing.T) {
			a, b := newHost(t), newHost(t)
			var got capture
			defer NewReceiver(b, &Options{OnShare: got.on}).Close()
			connect(t, a, b)
			s, err := a.NewStream(context.Background(), b.ID(), ID)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Reset()
			s.SetDeadline(time.Now().Add(10 * time.Second))
			for _, f := range frames {
				wire.WriteFrame(s, f.t, f.b)
			}
			s.CloseWrite()
			if typ, _, err := wire.ReadFrame(s, wire.MaxFrame); err == nil && typ == typeReceipt {
				t.Fatal("got a receipt")
			}
			if got.count() != 0 {
				t.Fatal("destination kept a broken share")
			}
		})
	}
}

// Cancelling the context ends a share that waits on a silent destination.
func TestSendCancel(t *testing.T) {
	a, b := newHost(t), newHost(t)
	b.SetStreamHandler(ID, func(network.Stream) {}) // never answers
	connect(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Send(ctx, a, b.ID(), Outgoing{Grant: "0123abcd", Purpose: "p", Fields: []string{}})
	if err == nil {
		t.Fatal("share to a silent destination succeeded")
	}
}
