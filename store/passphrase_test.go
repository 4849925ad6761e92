package store

import (
	"errors"
	"testing"
)

// TestCheckPassphrase: the passphrase that opened the store checks out, any other (or
// none) is ErrWrongPassphrase, and a changed passphrase is checked against the new one.
func TestCheckPassphrase(t *testing.T) {
	s := mustInit(t, nil)
	if err := s.Keys().CheckPassphrase(testPass); err != nil {
		t.Fatalf("right passphrase: %v", err)
	}
	for _, p := range [][]byte{nil, {}, []byte("wrong"), append(testPass, ' ')} {
		if err := s.Keys().CheckPassphrase(p); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("passphrase %q: %v, want ErrWrongPassphrase", p, err)
		}
	}
	if err := s.Keys().ChangePassphrase(testPass, []byte("new one"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Keys().CheckPassphrase(testPass); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("old passphrase after a change: %v, want ErrWrongPassphrase", err)
	}
	if err := s.Keys().CheckPassphrase([]byte("new one")); err != nil {
		t.Errorf("new passphrase: %v", err)
	}
}
