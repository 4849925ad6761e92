package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// copyAll applies every envelope of from to to and returns how many were added.
func copyAll(t *testing.T, from, to *Store) int {
	t.Helper()
	var raw [][]byte
	if _, err := from.Replication().Since(0, 0, func(_ uint64, b []byte) error {
		raw = append(raw, bytes.Clone(b))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res, err := to.Replication().Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("%d envelopes rejected, first: %v", len(res.Rejected), res.Rejected[0].Err)
	}
	return res.Added
}

// TestBlindReplicaForwardsWithoutReading: a replica stores and forwards a device's
// envelopes (conflicting versions included), keeps the same Merkle root, passes Verify,
// opens nothing, and a device that never met the writer reads everything through it.
func TestBlindReplicaForwardsWithoutReading(t *testing.T) {
	a := mustInit(t, testOpts("canary-name-a41"))
	b := mustInit(t, &Options{KDF: testKDF, DeviceName: "b", MeshKey: a.keys.mesh})
	canaries := []string{"canary-coll-8e1f", "canary-key-55aa", "canary-value-c3d2", "canary-field-9b0e", "canary-name-a41"}
	for i := 0; i < 40; i++ {
		v := fmt.Sprintf(`{"%s":"%s-%d"}`, canaries[3], canaries[2], i)
		if err := a.Put(canaries[0], fmt.Sprintf("%s-%d", canaries[1], i), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Delete(canaries[0], canaries[1]+"-7"); err != nil {
		t.Fatal(err)
	}
	// A conflict: b learns record 3 and both change it.
	copyAll(t, a, b)
	a.Put(canaries[0], canaries[1]+"-3", []byte(`{"side":"a"}`))
	b.Put(canaries[0], canaries[1]+"-3", []byte(`{"side":"b"}`))

	tok, err := a.Keys().ReplicaToken()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "replica")
	r, err := InitReplica(dir, []byte("replica pass"), tok, testOpts("box"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Blind() || r.Keys().MeshID() != a.Keys().MeshID() {
		t.Fatalf("replica: blind %v, mesh id %x want %x", r.Blind(), r.Keys().MeshID(), a.Keys().MeshID())
	}
	copyAll(t, a, r)
	copyAll(t, b, r)
	if got := copyAll(t, a, r); got != 0 {
		t.Errorf("re-applying the same envelopes added %d", got)
	}
	// A device closes the conflict with a write that saw both sides: the replica drops
	// the two versions it cannot read.
	copyAll(t, b, a)
	if err := a.Put(canaries[0], canaries[1]+"-3", []byte(`{"side":"both"}`)); err != nil {
		t.Fatal(err)
	}
	copyAll(t, a, r)

	for name, err := range map[string]error{
		"get":  func() error { _, err := r.Get(canaries[0], canaries[1]+"-1"); return err }(),
		"put":  r.Put("c", "k", []byte(`1`)),
		"list": func() error { _, err := r.List("", ""); return err }(),
		"conflicts": func() error {
			_, err := r.Conflicts().List()
			return err
		}(),
		"export": func() error { _, err := r.Export(&bytes.Buffer{}, []byte("x"), nil); return err }(),
		"pairing subkey": func() error {
			_, err := r.Keys().Subkey(PurposePairing)
			return err
		}(),
	} {
		if !errors.Is(err, ErrBlind) {
			t.Errorf("%s on a replica: %v, want ErrBlind", name, err)
		}
	}
	if k, err := r.Keys().Subkey(PurposeReplica); err != nil || !bytes.Equal(k, tok.Proof) {
		t.Errorf("replica proof key: %v", err)
	}
	if r.Keys().MeshKeyForPairing() != nil {
		t.Error("a replica hands out a mesh key")
	}

	// Reopen: wrong passphrase refused, right one gives the same replica.
	r.Close()
	if _, err := Open(dir, testPass, testOpts("")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("open replica with a wrong passphrase: %v", err)
	}
	r, err = Open(dir, []byte("replica pass"), testOpts(""))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify()
	if err != nil || !rep.OK() {
		t.Fatalf("verify replica: %v %v", err, rep)
	}

	// A third device that never met a or b gets everything from the replica alone.
	c := mustInit(t, &Options{KDF: testKDF, DeviceName: "c", MeshKey: a.keys.mesh})
	copyAll(t, r, c)
	copyAll(t, a, b)
	copyAll(t, b, a)
	ra, _ := a.Replication().Root()
	rr, _ := r.Replication().Root()
	rc, _ := c.Replication().Root()
	if ra != rr || rr != rc {
		t.Errorf("roots differ: device %v, replica %v, via replica %v", ra, rr, rc)
	}
	got, err := c.Get(canaries[0], canaries[1]+"-12")
	if err != nil || !bytes.Contains(got.Value, []byte(canaries[2]+"-12")) {
		t.Errorf("record through the replica: %v %+v", err, got)
	}
	if _, err := c.Get(canaries[0], canaries[1]+"-7"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted record through the replica: %v", err)
	}
	if got, err := c.Get(canaries[0], canaries[1]+"-3"); err != nil || string(got.Value) != `{"side":"both"}` {
		t.Errorf("closed conflict through the replica: %v %+v", err, got)
	}
	// Row 24: the replica sees sizes only in Padmé buckets.
	sizes := map[int]int{}
	if _, err := r.Replication().Since(0, 0, func(_ uint64, raw []byte) error {
		e, err := UnmarshalEnvelope(raw)
		if err != nil {
			return err
		}
		n := len(e.Ciphertext) - 16 // the Poly1305 tag
		if padme(n) != n {
			t.Errorf("envelope of %d plaintext bytes is not padded to a Padmé size (%d)", n, padme(n))
		}
		sizes[n]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("size buckets the replica sees (padded plaintext bytes: envelopes): %v", sizes)
	r.Close()

	// Row 24: nothing readable in the replica's file.
	db, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, cn := range canaries {
		if bytes.Contains(db, []byte(cn)) {
			t.Errorf("replica file contains canary %q", cn)
		}
	}
	if bytes.Contains(db, a.keys.mesh) || bytes.Contains(db, a.keys.data[0]) || bytes.Contains(db, a.keys.id) {
		t.Error("replica file contains a mesh, data or id key")
	}
	if bytes.Contains(db, tok.Proof) || bytes.Contains(db, tok.Rendezvous) {
		t.Error("replica file holds its token in clear")
	}
}

// TestReplicaTokenRefusedWhenMalformed: a token without keys makes no replica.
func TestReplicaTokenRefusedWhenMalformed(t *testing.T) {
	_, err := InitReplica(t.TempDir(), testPass, ReplicaToken{Proof: []byte("short")}, testOpts(""))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("malformed token: %v", err)
	}
}
