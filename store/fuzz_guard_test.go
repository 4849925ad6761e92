package store

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzHeader feeds arbitrary bytes to the store header parser (the clear part of the file,
// which whoever holds the disk can edit): no panic, and what parses encodes back to the
// same bytes.
func FuzzHeader(f *testing.F) {
	h, err := newHeader(secrets{root: make([]byte, meshKeySize), local: make([]byte, localSecretSize)}, testPass, testKDF)
	if err != nil {
		f.Fatal(err)
	}
	good := h.marshal()
	f.Add(good)
	f.Add(good[:20])
	v1 := *h // a version-1 header: the mesh key alone
	v1.Version = headerV1
	v1.Wrapped = v1.Wrapped[:wrappedSize(headerV1)]
	f.Add(v1.marshal())
	f.Add([]byte(headerPrefix))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		if again := h.marshal(); !bytes.Equal(again, b) {
			t.Fatalf("decode/encode changed the header:\n in %x\nout %x", b, again)
		}
		if _, err := h.unwrap([]byte("x")); err == nil && !h.KDF.belowFloor() {
			t.Fatal("a fuzzed header unwrapped with a wrong passphrase")
		}
	})
}

// FuzzCanonicalName checks the key canonicaliser (row 23): an accepted name is valid NFC
// UTF-8 without invisible characters, canonicalising is idempotent, and two spellings that
// are canonically equivalent (NFC and NFD) give the same name.
func FuzzCanonicalName(f *testing.F) {
	for _, s := range []string{"café", "cafe\u0301", "a\u200bb", "\ufeffkey", "Key", "", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := canonicalName("the key", s)
		if err != nil {
			return
		}
		if !utf8.ValidString(c) || !norm.NFC.IsNormalString(c) {
			t.Fatalf("%q canonicalised to %q, not NFC", s, c)
		}
		if c2, err := canonicalName("the key", c); err != nil || c2 != c {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", s, c, c2, err)
		}
		if d, err := canonicalName("the key", norm.NFD.String(s)); err != nil || d != c {
			t.Fatalf("NFD spelling of %q gives %q, NFC gives %q (%v)", s, d, c, err)
		}
	})
}
