package consent

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func testReceiptKeys(t *testing.T, seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	return testReceiptKeysF(seed)
}

func testReceiptKeysF(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	return priv.Public().(ed25519.PublicKey), priv
}

func TestReceiptSignVerify(t *testing.T) {
	g := testGrant(t, "a=keep", "b=drop", "c=generalize:10")
	docs := [][]byte{[]byte(`{"a":1}`), []byte(`{"a":2,"c":30}`)}
	pub, priv := testReceiptKeys(t, 1)
	otherPub, otherPriv := testReceiptKeys(t, 2)

	sent := NewReceipt(g, peerDev, docs, t0)
	if sent.Count != 2 || len(sent.Fields) != 2 || sent.Fields[0] != "a=keep" || sent.Fields[1] != "c=generalize:10" {
		t.Fatalf("receipt fields: %+v", sent)
	}
	// The destination builds its receipt from what it received, later, and signs it.
	got := NewReceipt(g, peerDev, docs, t0.Add(time.Second))
	sr, err := SignReceipt(got, Ed25519Signer(priv))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyReceipt(sr, sent, Ed25519Verifier(pub)); err != nil {
		t.Fatalf("a good receipt: %v", err)
	}
	// Wire round trip.
	b, err := sr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSignedReceipt(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyReceipt(back, sent, Ed25519Verifier(pub)); err != nil {
		t.Fatalf("after a round trip: %v", err)
	}

	bad := []struct {
		name   string
		sr     SignedReceipt
		verify Verifier
	}{
		{"signed by another key", mustSign(t, got, otherPriv), Ed25519Verifier(pub)},
		{"checked against another key", sr, Ed25519Verifier(otherPub)},
		{"no verifier", sr, nil},
		{"signature altered", func() SignedReceipt {
			s := sr
			s.Signature = append([]byte(nil), sr.Signature...)
			s.Signature[0] ^= 1
			return s
		}(), Ed25519Verifier(pub)},
		{"count changed after signing", func() SignedReceipt { s := sr; s.Receipt.Count = 3; return s }(), Ed25519Verifier(pub)},
		{"acknowledges fewer documents", mustSign(t, NewReceipt(g, peerDev, docs[:1], t0), priv), Ed25519Verifier(pub)},
		{"other documents", mustSign(t, NewReceipt(g, peerDev, [][]byte{[]byte(`{"a":9}`), docs[1]}, t0), priv), Ed25519Verifier(pub)},
		{"other grant", mustSign(t, func() Receipt { r := got; r.GrantID = "ffff"; return r }(), priv), Ed25519Verifier(pub)},
		{"other purpose", mustSign(t, func() Receipt { r := got; r.Purpose = "ads"; return r }(), priv), Ed25519Verifier(pub)},
		{"other fields", mustSign(t, func() Receipt { r := got; r.Fields = []string{"a=keep", "b=keep"}; return r }(), priv), Ed25519Verifier(pub)},
		{"other sender", mustSign(t, func() Receipt { r := got; r.Sender = peerB; return r }(), priv), Ed25519Verifier(pub)},
	}
	for _, tc := range bad {
		if err := VerifyReceipt(tc.sr, sent, tc.verify); !errors.Is(err, ErrBadReceipt) {
			t.Errorf("%s: VerifyReceipt = %v, want ErrBadReceipt", tc.name, err)
		}
	}
}

func mustSign(t *testing.T, r Receipt, priv ed25519.PrivateKey) SignedReceipt {
	t.Helper()
	sr, err := SignReceipt(r, Ed25519Signer(priv))
	if err != nil {
		t.Fatal(err)
	}
	return sr
}

func TestReceiptEncoding(t *testing.T) {
	r := NewReceipt(testGrant(t, "a=keep"), peerDev, [][]byte{[]byte(`{}`)}, t0)
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"grant":"0123456789abcdef","purpose":"research","destination":"` + peerA + `","sender":"` + peerDev +
		`","count":1,"fields":["a=keep"],"docs_digest":"` + mustText(t, DigestDocs([][]byte{[]byte(`{}`)})) + `","time":"2026-03-04T12:00:00Z"}`
	if string(b) != want {
		t.Fatalf("encoding\n got  %s\n want %s", b, want)
	}
	if back, err := ParseReceipt(b); err != nil || back.Count != 1 || !back.Time.Equal(t0) {
		t.Fatalf("ParseReceipt: %+v %v", back, err)
	}
	// Non-canonical forms of the same receipt are refused.
	for _, s := range []string{
		" " + want,
		`{"purpose":"research",` + want[1:],
		want[:len(want)-1] + `,"extra":1}`,
		want[:len(want)-22] + `2026-03-04T13:00:00+01:00"}`,
	} {
		if _, err := ParseReceipt([]byte(s)); !errors.Is(err, ErrBadReceipt) {
			t.Errorf("ParseReceipt(%s) = %v, want ErrBadReceipt", s, err)
		}
	}
	// The digest separates documents: ["ab"] and ["a","b"] differ.
	if DigestDocs([][]byte{[]byte("ab")}) == DigestDocs([][]byte{[]byte("a"), []byte("b")}) {
		t.Error("digest does not separate documents")
	}
}

func mustText(t *testing.T, d Digest) string {
	b, err := d.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGrantEncoding(t *testing.T) {
	g := testGrant(t, "a=keep", "b.c=generalize:day", "d=pseudonymize")
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseGrant(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := back.Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip:\n%s\n%s", b, b2)
	}
	if !bytes.Contains(b, []byte(`"fields":["a=keep","b.c=generalize:day","d=pseudonymize"]`)) {
		t.Errorf("rules not stored in CLI syntax: %s", b)
	}
	invalid := []func(*Grant){
		func(g *Grant) { g.ID = "" },
		func(g *Grant) { g.ID = "UPPER" },
		func(g *Grant) { g.Collection = "" },
		func(g *Grant) { g.Collection = "_grants" },
		func(g *Grant) { g.Purpose = "" },
		func(g *Grant) { g.Purpose = "a\nb" },
		func(g *Grant) { g.Destination = "me" },
		func(g *Grant) { g.Destination = peerA + "/x" },
		func(g *Grant) { g.Expires = g.Created },
		func(g *Grant) { g.Created = time.Time{} },
		func(g *Grant) { g.Fields = append(g.Fields, FieldRule{Path: "a", Action: Drop}) },
	}
	for i, f := range invalid {
		bad := g
		bad.Fields = append([]FieldRule(nil), g.Fields...)
		f(&bad)
		if _, err := bad.Marshal(); !errors.Is(err, ErrBadGrant) {
			t.Errorf("invalid grant %d: Marshal = %v, want ErrBadGrant", i, err)
		}
	}
	for _, s := range []string{`{}`, `[]`, `{"id":"x","unknown":1}`, string(b) + "x", string(b) + `{}`} {
		if _, err := ParseGrant([]byte(s)); !errors.Is(err, ErrBadGrant) {
			t.Errorf("ParseGrant(%.40s) = %v", s, err)
		}
	}
}
