package consent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

var testPass = []byte("correct horse battery staple")

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// newDevice creates a store (joining meshKey's mesh when set) and a registry over it.
func newDevice(t *testing.T, name string, meshKey []byte, c *clock) (*store.Store, *Registry) {
	t.Helper()
	s, err := store.Init(filepath.Join(t.TempDir(), name), testPass, &store.Options{KDF: store.DefaultKDF, DeviceName: name, MeshKey: meshKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r, err := New(s, testKey, &Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

// pair makes two stores of one mesh trust each other, as pairing does (each names the
// other a member under its signing key).
func pair(t *testing.T, a, b *store.Store) {
	t.Helper()
	for _, p := range [][2]*store.Store{{a, b}, {b, a}} {
		key := p[1].Keys().SigningKey().Public().(ed25519.PublicKey)
		if err := p[0].Authority().AddAnchors(map[resolve.DeviceID]ed25519.PublicKey{p[1].Device().ID: key}); err != nil {
			t.Fatal(err)
		}
	}
}

// envelopes returns every envelope a store holds.
func envelopes(t *testing.T, s *store.Store) [][]byte {
	t.Helper()
	var out [][]byte
	if _, err := s.Replication().Since(0, 0, func(_ uint64, raw []byte) error {
		out = append(out, append([]byte(nil), raw...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func syncTo(t *testing.T, from, to *store.Store) {
	t.Helper()
	res, err := to.Replication().Apply(envelopes(t, from))
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("sync: %v %v", err, res.Rejected)
	}
}

// TestTwoDevices runs the scenarios that need two devices of one mesh on one pair of stores.
func TestTwoDevices(t *testing.T) {
	c := &clock{t: t0}
	sa, ra := newDevice(t, "laptop", nil, c)
	sb, rb := newDevice(t, "phone", sa.Keys().MeshKeyForPairing(), c)
	pair(t, sa, sb)

	t.Run("grant on A, revoke on B, A refuses after sync", func(t *testing.T) {
		g, err := ra.Grant(GrantSpec{Collection: "notes", Purpose: "research", Destination: peerA, Expires: t0.Add(48 * time.Hour),
			Fields: []FieldRule{{Path: "title", Action: Keep}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ra.Check("notes", "research", peerA); err != nil {
			t.Fatalf("A before revoke: %v", err)
		}
		stale := envelopes(t, sa) // A's copy of the grant, before any revocation
		syncTo(t, sa, sb)
		if _, err := rb.Check("notes", "research", peerA); err != nil {
			t.Fatalf("B after sync: the grant did not arrive: %v", err)
		}
		c.t = c.t.Add(time.Minute)
		if _, err := rb.Revoke(g.ID[:6]); err != nil {
			t.Fatal(err)
		}
		if _, err := rb.Check("notes", "research", peerA); !errors.Is(err, ErrRevoked) {
			t.Fatalf("B after revoke: %v", err)
		}
		if _, err := ra.Check("notes", "research", peerA); err != nil {
			t.Fatalf("A before hearing of it still shares (expected until sync): %v", err)
		}
		syncTo(t, sb, sa)
		syncTo(t, sa, sb)
		if _, err := ra.Authorize("notes", "research", peerA); !errors.Is(err, ErrRevoked) {
			t.Fatalf("A after sync: %v, want ErrRevoked", err)
		}
		// An old copy of the grant arriving later changes nothing.
		if _, err := sa.Replication().Apply(stale); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Replication().Apply(stale); err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]*Registry{"A": ra, "B": rb} {
			if _, err := r.Check("notes", "research", peerA); !errors.Is(err, ErrRevoked) {
				t.Errorf("%s after a stale copy: %v", name, err)
			}
			got, err := r.FindGrant(g.ID)
			if err != nil || !got.IsRevoked() || got.RevokedBy != string(sb.Device().ID) {
				t.Errorf("%s: grant %+v %v, want revoked by B", name, got, err)
			}
		}
		// The refusal on A is in the audit log, and the log reaches B.
		syncTo(t, sa, sb)
		log, err := rb.Audit()
		if err != nil {
			t.Fatal(err)
		}
		if len(log) != 1 || log[0].Outcome != OutcomeRefused || log[0].GrantID != g.ID || log[0].Device != string(sa.Device().ID) ||
			!strings.Contains(log[0].Reason, "revoked") {
			t.Errorf("audit on B: %+v", log)
		}
	})

	t.Run("approve on A and deny on B concurrently: deny wins", func(t *testing.T) {
		q, err := ra.Request(RequestSpec{App: "fitness", Collection: "runs", Purpose: "coach", Destination: peerB,
			Fields: []FieldRule{{Path: "km", Action: Generalize, Arg: "1"}}})
		if err != nil {
			t.Fatal(err)
		}
		syncTo(t, sa, sb)
		pb, err := rb.Pending()
		if err != nil || len(pb) != 1 || pb[0].ID != q.ID {
			t.Fatalf("B pending: %+v %v", pb, err)
		}
		c.t = c.t.Add(time.Minute)
		g, err := ra.Approve(q.ID, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rb.Deny(q.ID); err != nil {
			t.Fatal(err)
		}
		syncTo(t, sa, sb)
		syncTo(t, sb, sa)
		for name, r := range map[string]*Registry{"A": ra, "B": rb} {
			if _, err := r.Check("runs", "coach", peerB); !errors.Is(err, ErrRevoked) {
				t.Errorf("%s: Check = %v, want ErrRevoked (the grant %s of a denied request)", name, err, g.ID)
			}
			got, err := r.FindRequest(q.ID)
			if err != nil || got.Status != Denied {
				t.Errorf("%s: request %+v %v, want denied", name, got.Status, err)
			}
			if p, _ := r.Pending(); len(p) != 0 {
				t.Errorf("%s: still pending: %+v", name, p)
			}
		}
	})
}

func TestShareFlow(t *testing.T) {
	c := &clock{t: t0}
	s, r := newDevice(t, "laptop", nil, c)
	// This device's own peer id is in the device list: not a share destination.
	if err := s.Update(func(tx *store.Tx) error {
		return tx.PutReserved(DevicesCollection, "dev1", []byte(`{"id":"dev1","peer":"`+peerDev+`","name":"laptop","role":"device"}`))
	}); err != nil {
		t.Fatal(err)
	}
	const keyCanary, secretCanary, redactCanary = "KEYCANARY-groceries", "SECRETCANARY", "REDACTCANARY"
	if err := s.Update(func(tx *store.Tx) error {
		if err := tx.Put("notes", keyCanary, []byte(`{"title":"shopping","body":"`+secretCanary+`","author":{"email":"`+redactCanary+`","id":"u1"},"at":"2026-03-04T17:20:00+01:00"}`)); err != nil {
			return err
		}
		if err := tx.Put("notes", "other-"+keyCanary, []byte(`{"title":"todo","body":"`+secretCanary+`2"}`)); err != nil {
			return err
		}
		return tx.PutRaw("notes", "raw-"+keyCanary, []byte(`{"title":"raw bytes are never sent"}`))
	}); err != nil {
		t.Fatal(err)
	}
	rules, err := ParseRules([]string{"title=keep", "author.email=redact", "author.id=pseudonymize", "at=generalize:day"})
	if err != nil {
		t.Fatal(err)
	}
	spec := GrantSpec{Collection: "notes", Purpose: "research", Destination: peerA, Expires: t0.Add(24 * time.Hour), Fields: rules}

	// Refused before any grant, and audited.
	if _, err := r.Authorize("notes", "research", peerA); !errors.Is(err, ErrNoGrant) {
		t.Fatalf("no grant: %v", err)
	}
	// A device of the mesh cannot be a destination.
	bad := spec
	bad.Destination = peerDev
	if _, err := r.Grant(bad); !errors.Is(err, ErrMeshDevice) {
		t.Fatalf("grant to own device: %v", err)
	}
	bad = spec
	bad.Collection = "_grants"
	if _, err := r.Grant(bad); !errors.Is(err, ErrBadGrant) {
		t.Fatalf("grant of a reserved collection: %v", err)
	}
	bad = spec
	bad.Expires = t0
	if _, err := r.Grant(bad); !errors.Is(err, ErrBadGrant) {
		t.Fatalf("grant already expired: %v", err)
	}
	g, err := r.Grant(spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authorize("notes", "ads", peerA); !errors.Is(err, ErrWrongPurpose) {
		t.Fatalf("other purpose: %v", err)
	}
	if _, err := r.Authorize("notes", "research", peerB); !errors.Is(err, ErrWrongDestination) {
		t.Fatalf("other peer: %v", err)
	}
	if _, err := r.Authorize("photos", "research", peerA); !errors.Is(err, ErrNoGrant) {
		t.Fatalf("other collection: %v", err)
	}

	got, err := r.Authorize("notes", "research", peerA)
	if err != nil || got.ID != g.ID {
		t.Fatalf("Authorize: %v %v", got.ID, err)
	}
	docs, skipped, err := r.Documents(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || skipped != 1 {
		t.Fatalf("%d documents, %d skipped; want 2 and 1 (the raw record)", len(docs), skipped)
	}
	joined := string(docs[0]) + "\n" + string(docs[1])
	for _, s := range []string{"KEYCANARY", secretCanary, redactCanary, "u1", "notes", "raw bytes", "+01:00"} {
		if strings.Contains(joined, s) {
			t.Errorf("sent documents hold %q:\n%s", s, joined)
		}
	}
	if !strings.Contains(joined, `"at":"2026-03-04T00:00:00Z"`) || !strings.Contains(joined, `"email":"[redacted]"`) {
		t.Errorf("documents: %s", joined)
	}

	// The destination signs a receipt over what it received.
	pub, priv := testReceiptKeys(t, 9)
	sr := mustSign(t, NewReceipt(got, peerDev, docs, c.t), priv)
	e, err := r.RecordShare(Sent{Grant: got, Sender: peerDev, Docs: docs}, &sr, Ed25519Verifier(pub))
	if err != nil || !e.Verified {
		t.Fatalf("good receipt: %+v %v", e, err)
	}
	// A receipt by another key, a receipt for fewer documents, no receipt: recorded unverified.
	_, otherPriv := testReceiptKeys(t, 10)
	forged := mustSign(t, NewReceipt(got, peerDev, docs, c.t), otherPriv)
	short := mustSign(t, NewReceipt(got, peerDev, docs[:1], c.t), priv)
	for name, rc := range map[string]*SignedReceipt{"forged": &forged, "short": &short, "none": nil} {
		e, err := r.RecordShare(Sent{Grant: got, Sender: peerDev, Docs: docs}, rc, Ed25519Verifier(pub))
		if !errors.Is(err, ErrBadReceipt) || e.Verified || e.ReceiptError == "" || e.ID == "" {
			t.Errorf("%s receipt: %+v %v", name, e, err)
		}
	}

	// After expiry: refused.
	c.t = t0.Add(25 * time.Hour)
	if _, err := r.Authorize("notes", "research", peerA); !errors.Is(err, ErrExpired) {
		t.Fatalf("after expiry: %v", err)
	}

	log, err := r.Audit()
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, e := range log {
		s := e.Outcome
		if e.Outcome == OutcomeShared {
			s += map[bool]string{true: "+verified", false: "-unverified"}[e.Verified]
			if e.Count != 2 || len(e.Fields) != 4 || e.DocsDigest != DigestDocs(docs) {
				t.Errorf("share entry: %+v", e)
			}
		}
		outcomes = append(outcomes, s)
	}
	want := "refused refused refused refused shared+verified shared-unverified shared-unverified shared-unverified refused"
	if strings.Join(outcomes, " ") != want {
		t.Errorf("audit outcomes:\n got  %s\n want %s", strings.Join(outcomes, " "), want)
	}
	if log[0].Reason == "" || !strings.Contains(log[0].Reason, "no grant covers notes") {
		t.Errorf("refusal reason: %q", log[0].Reason)
	}
}

func TestRequestFlow(t *testing.T) {
	c := &clock{t: t0}
	_, r := newDevice(t, "laptop", nil, c)
	q, err := r.Request(RequestSpec{App: "fitness", Collection: "runs", Purpose: "coach", Destination: peerB,
		Fields: []FieldRule{{Path: "km", Action: Keep}}, For: 7 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is shared while the request waits.
	if _, err := r.Authorize("runs", "coach", peerB); !errors.Is(err, ErrNoGrant) {
		t.Fatalf("pending request shares: %v", err)
	}
	done := make(chan Request, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		got, err := r.Wait(ctx, q.ID)
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
		done <- got
	}()
	p, err := r.Pending()
	if err != nil || len(p) != 1 || p[0].App != "fitness" {
		t.Fatalf("pending: %+v %v", p, err)
	}
	g, err := r.Approve(q.ID[:8], []FieldRule{{Path: "km", Action: Generalize, Arg: "5"}}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Request != q.ID || !g.Expires.Equal(t0.Add(7*24*time.Hour)) || g.Fields[0].Arg != "5" {
		t.Errorf("approved grant: %+v", g)
	}
	if got := <-done; got.Status != Approved || got.GrantID != "" && got.GrantID != g.ID {
		t.Errorf("Wait returned %+v", got)
	}
	if _, err := r.Authorize("runs", "coach", peerB); err != nil {
		t.Errorf("after approval: %v", err)
	}
	if _, err := r.Deny(q.ID); !errors.Is(err, ErrDecided) {
		t.Errorf("deny after approve: %v", err)
	}
	q2, _ := r.Request(RequestSpec{App: "ads", Collection: "runs", Purpose: "ads", Destination: peerA})
	if _, err := r.Deny(q2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Approve(q2.ID, nil, time.Time{}); !errors.Is(err, ErrDecided) {
		t.Errorf("approve after deny: %v", err)
	}
	if _, err := r.Authorize("runs", "ads", peerA); !errors.Is(err, ErrWrongDestination) {
		t.Errorf("denied request shares: %v", err)
	}
	if _, err := r.Approve("zzzz", nil, time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown request: %v", err)
	}
	if p, _ := r.Pending(); len(p) != 0 {
		t.Errorf("pending after decisions: %+v", p)
	}
}
