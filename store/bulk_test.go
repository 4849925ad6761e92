package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/meshsync/meshsync/internal/storehook"
	"github.com/meshsync/meshsync/merkle"
)

// TestBulkFileLayout: the bench's bulk file (storehook.OpenBulkFile) holds a store's
// envelopes as the store does: every bucket a store has, the envelopes in sequence order,
// and an id index entry a store would decode, pointing at the envelope of that id.
func TestBulkFileLayout(t *testing.T) {
	s := mustInit(t, nil)
	err := s.Update(func(tx *Tx) error {
		for i := range 50 {
			if err := tx.PutRaw("bench", fmt.Sprintf("r%03d", i), []byte{byte(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var envs [][]byte
	var ids []merkle.ID
	if _, err := s.Replication().Since(0, 1000, func(_ uint64, raw []byte) error {
		e, err := UnmarshalEnvelope(raw)
		if err != nil {
			return err
		}
		envs, ids = append(envs, bytes.Clone(raw)), append(ids, e.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "bulk.db")
	f, err := storehook.OpenBulkFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Write(envs[:20], ids[:20]); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(envs[20:], ids[20:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(btx *bolt.Tx) error {
		for _, b := range allBuckets {
			if btx.Bucket(b) == nil {
				t.Errorf("bucket %q missing", b)
			}
		}
		tx := &Tx{tx: btx} // read with the store's own decoders
		for i, id := range ids {
			e, ok, err := tx.loadEntry(id)
			if err != nil || !ok {
				t.Fatalf("index entry %d: %v, found %v", i, err, ok)
			}
			if e.tag != (Tag{1}) || len(e.seqs) != 1 || e.seqs[0] != uint64(i+1) {
				t.Errorf("index entry %d: tag %x seqs %v", i, e.tag, e.seqs)
			}
			if got := btx.Bucket(bucketEnv).Get(u64be(uint64(i + 1))); !bytes.Equal(got, envs[i]) {
				t.Errorf("envelope %d differs", i+1)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
