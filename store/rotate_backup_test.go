package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

// TestRestoreAfterRotation: a backup taken after a key rotation and a full re-seal
// restores on a new device (which no grant names) and reads every record.
func TestRestoreAfterRotation(t *testing.T) {
	a, _ := rotatedPair(t)
	for {
		st, err := a.Keys().Reseal(DefaultResealBatch)
		if err != nil {
			t.Fatal(err)
		}
		if st.Done {
			break
		}
	}
	if e := sealedEpoch(t, a, "notes", "old-0"); e != 1 {
		t.Fatalf("old record sealed under epoch %d after the re-seal, want 1", e)
	}
	var backup bytes.Buffer
	if _, err := a.Export(&backup, []byte("backup pass"), &ExportOptions{WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	r, st, err := Restore(filepath.Join(t.TempDir(), "restored"), bytes.NewReader(backup.Bytes()), []byte("backup pass"), testPass, testOpts("r"))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, r)
	if st.Rejected > 0 {
		t.Errorf("restore rejected %d envelopes", st.Rejected)
	}
	for _, k := range []string{"after", "old-0", "old-4"} {
		if _, err := r.Get("notes", k); err != nil {
			t.Errorf("restored store reads notes/%s: %v", k, err)
		}
	}
}

// TestBackupWorkFactorBounds: an export asks for a work factor in range, and an empty
// backup passphrase is a wrong passphrase.
func TestBackupWorkFactorBounds(t *testing.T) {
	s := mustInit(t, nil)
	for _, wf := range []int{MaxBackupWorkFactor + 1, 31, 40} {
		if _, err := s.Export(&bytes.Buffer{}, []byte("p"), &ExportOptions{WorkFactor: wf}); !errors.Is(err, ErrInvalid) {
			t.Errorf("work factor %d: %v, want ErrInvalid", wf, err)
		}
	}
	var b bytes.Buffer
	if _, err := s.Export(&b, []byte("p"), &ExportOptions{WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(bytes.NewReader(b.Bytes()), nil, true); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("empty passphrase: %v, want ErrWrongPassphrase", err)
	}
}
