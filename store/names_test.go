package store

import (
	"errors"
	"testing"
)

// TestKeyCanonicalization is test plan row 23: spellings that look alike must not alias,
// and one key must not split in two across platforms.
func TestKeyCanonicalization(t *testing.T) {
	s := mustInit(t, nil)
	nfc, nfd := "caf\u00e9", "cafe\u0301"
	if err := s.Put("notes", nfd, []byte(`"written on a Mac"`)); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Get("notes", nfc)
	if err != nil || string(rec.Value) != `"written on a Mac"` {
		t.Fatalf("NFC lookup of an NFD key: %v %v", rec, err)
	}
	if rec.Key != nfc {
		t.Errorf("stored key %q, want the NFC form", rec.Key)
	}
	if err := s.Put("notes", nfc, []byte(`"overwrite"`)); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List("notes", ""); len(l) != 1 {
		t.Errorf("NFC and NFD made %d records", len(l))
	}
	if l, _ := s.List("notes", "caf"); len(l) != 1 {
		t.Errorf("prefix list: %d", len(l))
	}
	// Case is significant: two records.
	s.Put("notes", "Cafe", []byte(`1`))
	s.Put("notes", "cafe", []byte(`2`))
	if a, _ := s.Get("notes", "Cafe"); string(a.Value) != "1" {
		t.Error("case-different keys aliased")
	}
	// Invisible characters are refused, so no look-alike key can be made.
	for _, bad := range []string{"ca\u200bfe", "\ufeffcafe", "caf\u200de", "a\x00b", "x\u202ey", "tab\there"} {
		if err := s.Put("notes", bad, []byte(`1`)); !errors.Is(err, ErrInvalid) {
			t.Errorf("key %q: %v, want ErrInvalid", bad, err)
		}
		if _, err := s.Get("notes", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("get %q: %v", bad, err)
		}
	}
	if err := s.Put("no\u200btes", "k", []byte(`1`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("collection with a zero-width space: %v", err)
	}
}
