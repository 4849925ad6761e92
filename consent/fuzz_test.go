package consent

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"a=keep", "a.b=drop", "x=redact", "u=pseudonymize", "n=generalize:10", "n=generalize:0.25",
		"g=generalize:2dp", "t=generalize:day", "s=generalize:prefix3", "a=", "=keep", "a=generalize:", "a..b=keep", "é=keep"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			return
		}
		if r.String() != s {
			t.Fatalf("ParseRule(%q).String() = %q", s, r.String())
		}
		b, err := r.MarshalText()
		if err != nil {
			t.Fatalf("a parsed rule does not encode: %v", err)
		}
		var back FieldRule
		if err := back.UnmarshalText(b); err != nil || back != r {
			t.Fatalf("round trip: %+v %v", back, err)
		}
	})
}

// roundTrip checks decode → encode → decode → encode gives the same bytes twice.
func roundTrip[T any](t *testing.T, b []byte, parse func([]byte) (T, error), marshal func(T) ([]byte, error)) {
	v, err := parse(b)
	if err != nil {
		return
	}
	enc, err := marshal(v)
	if err != nil {
		t.Fatalf("a parsed value does not encode: %v", err)
	}
	v2, err := parse(enc)
	if err != nil {
		t.Fatalf("an encoded value does not parse: %v\n%s", err, enc)
	}
	enc2, err := marshal(v2)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("round trip differs (%v):\n%s\n%s", err, enc, enc2)
	}
}

func FuzzParseGrant(f *testing.F) {
	g := testGrant(f, "a=keep", "b.c=generalize:day", "d=pseudonymize")
	b := mustEnc(f)(g.Marshal())
	f.Add(b)
	g.Revoked, g.RevokedBy, g.Request = t0.Add(1), "dev2", "abcd"
	b = mustEnc(f)(g.Marshal())
	f.Add(b)
	f.Add([]byte(`{"id":"x","fields":["a=keep"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, ParseGrant, Grant.Marshal)
	})
}

func FuzzParseRequest(f *testing.F) {
	q := Request{ID: "abcd", App: "fit", Collection: "runs", Purpose: "coach", Destination: peerA,
		Fields: []FieldRule{{Path: "km", Action: Keep}}, For: 3600e9, Created: t0, CreatedBy: "d", Status: Pending}
	b := mustEnc(f)(q.Marshal())
	f.Add(b)
	q.Status, q.Decided, q.GrantID = Approved, t0, "ffff"
	b = mustEnc(f)(q.Marshal())
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, ParseRequest, Request.Marshal)
	})
}

func FuzzParseAuditEntry(f *testing.F) {
	_, priv := testReceiptKeysF(9)
	g := testGrant(f, "a=keep")
	docs := [][]byte{[]byte(`{"a":1}`)}
	sr, err := SignReceipt(NewReceipt(g, peerDev, docs, t0), Ed25519Signer(priv))
	if err != nil {
		f.Fatal(err)
	}
	e := AuditEntry{ID: "0000000000000001-abcdef0123456789", Time: t0, Outcome: OutcomeShared, Device: "d", GrantID: g.ID,
		Collection: "notes", Purpose: "research", Destination: peerA, Count: 1, Fields: []string{"a=keep"},
		DocsDigest: DigestDocs(docs), Receipt: &sr, Verified: true}
	b := mustEnc(f)(e.Marshal())
	f.Add(b)
	e = AuditEntry{ID: "0000000000000002-abcdef0123456789", Time: t0, Outcome: OutcomeRefused, Collection: "notes", Reason: "no grant"}
	b = mustEnc(f)(e.Marshal())
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, ParseAuditEntry, AuditEntry.Marshal)
	})
}

func FuzzParseReceipt(f *testing.F) {
	_, priv := testReceiptKeysF(1)
	r := NewReceipt(testGrant(f, "a=keep", "b=redact"), peerDev, [][]byte{[]byte(`{}`)}, t0)
	b := mustEnc(f)(r.Marshal())
	f.Add(b, false)
	sr, err := SignReceipt(r, Ed25519Signer(priv))
	if err != nil {
		f.Fatal(err)
	}
	b = mustEnc(f)(sr.Marshal())
	f.Add(b, true)
	f.Fuzz(func(t *testing.T, b []byte, signed bool) {
		// Canonical decoders: whatever parses re-encodes to the very same bytes.
		if signed {
			if sr, err := ParseSignedReceipt(b); err == nil {
				if enc, err := sr.Marshal(); err != nil || !bytes.Equal(enc, b) {
					t.Fatalf("signed receipt not canonical: %v\n%s\n%s", err, b, enc)
				}
			}
			return
		}
		if r, err := ParseReceipt(b); err == nil {
			if enc, err := r.Marshal(); err != nil || !bytes.Equal(enc, b) {
				t.Fatalf("receipt not canonical: %v\n%s\n%s", err, b, enc)
			}
		}
	})
}

func FuzzApply(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":"x","d":[1,2,{"e":"2026-03-04T17:00:00Z"}]}}`), "a=keep\nb.c=pseudonymize\nb.d.e=generalize:day")
	f.Add([]byte(`{"n":1e400,"m":-0.0000001,"s":"éèê"}`), "n=generalize:10\nm=generalize:2dp\ns=generalize:prefix2")
	f.Add([]byte(`{"a":[[[]]],"b":null}`), "a=redact\nb=generalize:hour")
	f.Add([]byte(`[1]`), "a=keep")
	f.Fuzz(func(t *testing.T, doc []byte, rules string) {
		rs, err := ParseRules(strings.Split(rules, "\n"))
		if err != nil {
			return
		}
		g := testGrant(t)
		g.Fields = rs
		out, err := Apply(g, doc, testKey)
		if err != nil {
			return
		}
		v, err := decodeJSON(out)
		if err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if _, ok := v.(map[string]any); !ok {
			t.Fatalf("output is not an object: %s", out)
		}
		canon, _ := encodeJSON(v)
		if !bytes.Equal(canon, out) {
			t.Fatalf("output not canonical:\n%s\n%s", out, canon)
		}
		again, err := Apply(g, doc, testKey)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Apply is not deterministic")
		}
	})
}

// mustEnc fails the fuzz setup when a seed does not encode, so no seed is silently void.
func mustEnc(f *testing.F) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		f.Helper()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
}
