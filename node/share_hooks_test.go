package node

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/node/share"
)

// destination is a share destination on loopback: a receive host with a receiver that
// keeps every byte it was given.
type destination struct {
	h host.Host
	r *share.Receiver

	mu     sync.Mutex
	shares []share.Share
	raw    [][]byte // header fields and documents as received
	onHook func(share.Share)
}

func newDestination(t testing.TB, opts *share.Options) *destination {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewReceiveHost(sk, []string{"/ip4/127.0.0.1/tcp/0"})
	if err != nil {
		t.Fatal(err)
	}
	d := &destination{h: h}
	var o share.Options
	if opts != nil {
		o = *opts
	}
	o.OnShare = func(s share.Share) error {
		d.mu.Lock()
		hook := d.onHook
		cp := s
		cp.Docs = nil
		for _, doc := range s.Docs {
			cp.Docs = append(cp.Docs, bytes.Clone(doc))
			d.raw = append(d.raw, bytes.Clone(doc))
		}
		hdr, _ := json.Marshal(s.Header)
		d.raw = append(d.raw, hdr)
		d.shares = append(d.shares, cp)
		d.mu.Unlock()
		if hook != nil {
			hook(s)
		}
		return nil
	}
	d.r = share.NewReceiver(h, &o)
	t.Cleanup(func() { d.r.Close(); h.Close() })
	return d
}

func (d *destination) info() peer.AddrInfo { return peer.AddrInfo{ID: d.h.ID(), Addrs: d.h.Addrs()} }

func (d *destination) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.shares)
}

// putCanaries writes records whose keys and unshared fields hold canary strings.
func putCanaries(t testing.TB, n *Node, coll string, k int) {
	t.Helper()
	for i := range k {
		doc := fmt.Sprintf(`{"title":"t%d","secret":"CANARY-SECRET-%d","name":"CANARY-NAME-%d","author":"alice","at":"2026-03-04T17:20:00+01:00","n":37.25,"notes":{"private":"CANARY-NESTED-%d","tag":"x"}}`, i, i, i, i)
		if err := n.Put(coll, fmt.Sprintf("CANARY-KEY-%d", i), []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
}

var shareRules = []string{"title=keep", "secret=drop", "name=redact", "author=pseudonymize", "at=generalize:day", "n=generalize:10", "notes.tag=keep"}

func grant(t testing.TB, n *Node, coll, purpose string, dest peer.ID, expires time.Time) consent.Grant {
	t.Helper()
	reg, err := n.Consent()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := consent.ParseRules(shareRules)
	if err != nil {
		t.Fatal(err)
	}
	g, err := reg.Grant(consent.GrantSpec{Collection: coll, Purpose: purpose, Destination: dest.String(), Expires: expires, Fields: rules})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func auditLog(t testing.TB, n *Node) []consent.AuditEntry {
	t.Helper()
	reg, err := n.Consent()
	if err != nil {
		t.Fatal(err)
	}
	log, err := reg.Audit()
	if err != nil {
		t.Fatal(err)
	}
	return log
}

func lastAudit(t testing.TB, n *Node) consent.AuditEntry {
	t.Helper()
	log := auditLog(t, n)
	if len(log) == 0 {
		t.Fatal("audit log is empty")
	}
	return log[len(log)-1]
}

// Deny by default: without a grant that names exactly this collection, purpose and
// destination, live and not revoked, nothing reaches the destination, no connection is
// made, and the refusal is audited with its reason.
func TestShareDenyByDefault(t *testing.T) {
	var clock atomic.Int64 // offset added to the real time
	nodes := newMeshWith(t, 1, func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(clock.Load())) }
	})
	a := nodes[0]
	putCanaries(t, a, "notes", 3)
	putCanaries(t, a, "health", 3)
	putCanaries(t, a, "journal", 3)
	dest, other := newDestination(t, nil), newDestination(t, nil)
	month := time.Now().Add(30 * 24 * time.Hour)
	ctx := ctxT(t, time.Minute)

	for _, tc := range []struct {
		name  string
		setup func()
		coll  string
		want  error
	}{
		{"no grant", func() {}, "notes", consent.ErrNoGrant},
		{"other destination", func() { grant(t, a, "notes", "research", other.h.ID(), month) }, "notes", consent.ErrWrongDestination},
		{"other purpose", func() { grant(t, a, "notes", "marketing", dest.h.ID(), month) }, "notes", consent.ErrWrongPurpose},
		{"other collection", func() { grant(t, a, "health", "research", dest.h.ID(), month) }, "journal", consent.ErrNoGrant},
		{"revoked", func() {
			g := grant(t, a, "notes", "research", dest.h.ID(), month)
			reg, _ := a.Consent()
			if _, err := reg.Revoke(g.ID); err != nil {
				t.Fatal(err)
			}
		}, "notes", consent.ErrRevoked},
		{"expired", func() {
			grant(t, a, "notes", "research", dest.h.ID(), time.Now().Add(time.Hour))
			clock.Store(int64(2 * time.Hour))
		}, "notes", consent.ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			before := len(auditLog(t, a))
			_, err := a.Share(ctx, tc.coll, "research", dest.info())
			var de *consent.DeniedError
			if !errors.As(err, &de) || !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want a DeniedError for %v", err, tc.want)
			}
			if de.Hint() == "" {
				t.Error("a refusal without a hint")
			}
			if dest.count() != 0 || other.count() != 0 {
				t.Fatalf("destinations got %d and %d shares", dest.count(), other.count())
			}
			if c := a.Host().Network().Connectedness(dest.h.ID()); c == network.Connected {
				t.Fatal("the node connected to a destination it may not share with")
			}
			log := auditLog(t, a)
			if len(log) != before+1 {
				t.Fatalf("audit log grew by %d, want 1", len(log)-before)
			}
			e := log[len(log)-1]
			if e.Outcome != consent.OutcomeRefused || e.Destination != dest.h.ID().String() || e.Count != 0 {
				t.Fatalf("audit entry %+v", e)
			}
		})
	}

	// A destination is never a device of the mesh: the gater and the registry agree.
	var de *consent.DeniedError
	if _, err := a.Share(ctx, "notes", "research", peer.AddrInfo{ID: a.id}); !errors.As(err, &de) {
		t.Fatalf("share to itself: %v", err)
	}
}

// A real share: what the destination received holds no record key and no value of a
// dropped or redacted field (a canary scan of every byte handed to it), pseudonyms are
// stable within the share, the receipt verifies and the audit entry says so.
func TestShareReachesDestination(t *testing.T) {
	a := newMesh(t, 1)[0]
	putCanaries(t, a, "notes", 5)
	a.PutRaw("notes", "CANARY-KEY-RAW", []byte("CANARY-RAW-VALUE"))
	dest := newDestination(t, nil)
	g := grant(t, a, "notes", "research", dest.h.ID(), time.Now().Add(time.Hour))

	res, err := a.Share(ctxT(t, time.Minute), "notes", "research", dest.info())
	if err != nil {
		t.Fatal(err)
	}
	if res.Grant.ID != g.ID || res.Skipped != 1 || !res.Audit.Verified || res.Audit.Count != 5 {
		t.Fatalf("result %+v", res)
	}
	if dest.count() != 1 {
		t.Fatalf("destination got %d shares", dest.count())
	}
	sh := dest.shares[0]
	if sh.Sender != a.id || sh.Header.Grant != g.ID || sh.Header.Purpose != "research" {
		t.Fatalf("share from %s, header %+v", sh.Sender, sh.Header)
	}
	all := bytes.Join(dest.raw, []byte("\n"))
	for _, canary := range []string{"CANARY", "alice", "+01:00", "private", "secret", "37.25", "17:20", a.id.String(), a.DeviceID()} {
		if bytes.Contains(all, []byte(canary)) {
			t.Errorf("destination received %q:\n%s", canary, all)
		}
	}
	var first map[string]any
	if err := json.Unmarshal(sh.Docs[0], &first); err != nil {
		t.Fatal(err)
	}
	if first["name"] != consent.RedactedMarker || first["at"] != "2026-03-04T00:00:00Z" || first["n"] != float64(30) {
		t.Fatalf("first document %s", sh.Docs[0])
	}
	for _, d := range sh.Docs[1:] {
		var m map[string]any
		json.Unmarshal(d, &m)
		if m["author"] != first["author"] {
			t.Fatalf("pseudonyms differ within one destination: %v, %v", m["author"], first["author"])
		}
	}
	e := lastAudit(t, a)
	if e.Outcome != consent.OutcomeShared || !e.Verified || e.Receipt == nil || e.GrantID != g.ID || e.Count != 5 {
		t.Fatalf("audit entry %+v", e)
	}
	if e.Receipt.Receipt.DocsDigest != consent.DigestDocs(sh.Docs) {
		t.Fatal("the audited receipt does not cover the documents received")
	}
	// The share left no lasting connection.
	eventually(t, "connection closed", func() error {
		if a.Host().Network().Connectedness(dest.h.ID()) == network.Connected {
			return errors.New("still connected")
		}
		return nil
	})
}

// After a revocation the next share sends nothing.
func TestShareAfterRevoke(t *testing.T) {
	a := newMesh(t, 1)[0]
	putCanaries(t, a, "notes", 2)
	dest := newDestination(t, nil)
	g := grant(t, a, "notes", "research", dest.h.ID(), time.Now().Add(time.Hour))
	ctx := ctxT(t, time.Minute)
	if _, err := a.Share(ctx, "notes", "research", dest.info()); err != nil {
		t.Fatal(err)
	}
	reg, _ := a.Consent()
	if _, err := reg.Revoke(g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Share(ctx, "notes", "research", dest.info()); !errors.Is(err, consent.ErrRevoked) {
		t.Fatalf("share after revoke: %v", err)
	}
	if dest.count() != 1 {
		t.Fatalf("destination got %d shares, want the 1 from before the revocation", dest.count())
	}
	if e := lastAudit(t, a); e.Outcome != consent.OutcomeRefused || e.GrantID != g.ID {
		t.Fatalf("audit entry %+v", e)
	}
}

// A grant made on device A and revoked on device B: after sync, A refuses to share.
func TestShareRevokedOnAnotherDevice(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	putCanaries(t, a, "notes", 1)
	dest := newDestination(t, nil)
	g := grant(t, a, "notes", "research", dest.h.ID(), time.Now().Add(time.Hour))
	waitSynced(t, a)
	regB, _ := b.Consent()
	eventually(t, "grant reaches b", func() error { _, err := regB.FindGrant(g.ID); return err })
	if _, err := regB.Revoke(g.ID); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, b)
	regA, _ := a.Consent()
	eventually(t, "revocation reaches a", func() error {
		got, err := regA.FindGrant(g.ID)
		if err == nil && !got.IsRevoked() {
			err = errors.New("not revoked yet")
		}
		return err
	})
	if _, err := a.Share(ctxT(t, time.Minute), "notes", "research", dest.info()); !errors.Is(err, consent.ErrRevoked) {
		t.Fatalf("share after a revocation on another device: %v", err)
	}
	if dest.count() != 0 {
		t.Fatal("destination got a share")
	}
}

// A destination whose receipt does not verify (signed by another key, or not a receipt at
// all): the documents left, and the audit entry records the share as unverified.
func TestShareBadReceipt(t *testing.T) {
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	a := newMesh(t, 1)[0]
	putCanaries(t, a, "notes", 2)

	t.Run("wrong key", func(t *testing.T) {
		dest := newDestination(t, &share.Options{Sign: other.Sign})
		grant(t, a, "notes", "research", dest.h.ID(), time.Now().Add(time.Hour))
		_, err := a.Share(ctxT(t, time.Minute), "notes", "research", dest.info())
		if !errors.Is(err, consent.ErrBadReceipt) {
			t.Fatalf("err = %v, want ErrBadReceipt", err)
		}
		e := lastAudit(t, a)
		if e.Outcome != consent.OutcomeShared || e.Verified || e.ReceiptError == "" || e.Count != 2 {
			t.Fatalf("audit entry %+v", e)
		}
	})

	t.Run("garbage", func(t *testing.T) {
		sk, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		h, err := NewReceiveHost(sk, []string{"/ip4/127.0.0.1/tcp/0"})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		h.SetStreamHandler(share.ID, func(s network.Stream) {
			s.SetDeadline(time.Now().Add(10 * time.Second))
			for {
				t, _, err := wire.ReadFrame(s, wire.MaxFrame)
				if err != nil || t == 'Z' {
					break
				}
			}
			wire.WriteFrame(s, 'R', []byte(`{"receipt":"not one"}`))
			s.Close()
		})
		grant(t, a, "notes", "research", h.ID(), time.Now().Add(time.Hour))
		_, err = a.Share(ctxT(t, time.Minute), "notes", "research", peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		if !errors.Is(err, consent.ErrBadReceipt) {
			t.Fatalf("err = %v, want ErrBadReceipt", err)
		}
		if e := lastAudit(t, a); e.Outcome != consent.OutcomeShared || e.Verified || e.Receipt != nil {
			t.Fatalf("audit entry %+v", e)
		}
	})
}

// A share destination gets no more than the share: it cannot dial the node, even with an
// active grant, and on the connection the node dialled it cannot open sync, push or
// pairing (an invite is open, the case where pairing admits strangers).
func TestShareDestinationGetsNothingElse(t *testing.T) {
	a := newMesh(t, 1)[0]
	putCanaries(t, a, "notes", 1)
	if _, _, err := a.Invite(time.Minute); err != nil {
		t.Fatal(err)
	}
	dest := newDestination(t, nil)
	grant(t, a, "notes", "research", dest.h.ID(), time.Now().Add(time.Hour))

	var mu sync.Mutex
	results := map[string]string{}
	dest.onHook = func(s share.Share) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range []string{string(SyncProtocol), string(PushProtocol), string(PairProtocol)} {
			n, err := tryProtocol(dest.h, s.Sender, protocol.ID(p))
			if n > 0 || err == nil {
				results[p] = fmt.Sprintf("read %d bytes (%v)", n, err)
			}
		}
	}
	if _, err := a.Share(ctxT(t, time.Minute), "notes", "research", dest.info()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for p, r := range results {
		t.Errorf("destination opened %s on the share connection: %s", p, r)
	}

	// Dialling in is refused at the gate.
	a.Host().Network().ClosePeer(dest.h.ID())
	ctx := ctxT(t, 10*time.Second)
	if err := dest.h.Connect(ctx, peer.AddrInfo{ID: a.id, Addrs: a.Host().Addrs()}); err == nil {
		if n, err := tryProtocol(dest.h, a.id, SyncProtocol); n > 0 || err == nil {
			t.Fatalf("destination dialled in and read %d bytes of sync", n)
		}
	}
}
