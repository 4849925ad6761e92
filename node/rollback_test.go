package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshsync/meshsync/store"
)

func copyFileT(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRestoredStoreStartsNewEpoch (row 9, node level): B's store is put back from an old
// copy of its file while A remembers more of B's epoch than the copy holds. B notices at
// the next hello, starts a new epoch, gets its own lost writes back from A, and A loses
// nothing; B's later writes reach A.
func TestRestoredStoreStartsNewEpoch(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	cfg := b.cfg
	for i := range 5 {
		b.Put("notes", fmt.Sprint("old", i), []byte(`"before the copy"`))
	}
	eventually(t, "a has b's first writes", func() error { return hasValue(a, "notes", "old4", `"before the copy"`) })
	waitSynced(t, b)
	b.Close()
	file := filepath.Join(cfg.Dir, store.FileName)
	copyFileT(t, file, file+".old")

	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustStart(t, b)
	for i := range 10 {
		b.Put("notes", fmt.Sprint("lost", i), []byte(`"after the copy"`))
	}
	eventually(t, "a has b's later writes", func() error { return hasValue(a, "notes", "lost9", `"after the copy"`) })
	waitSynced(t, a)
	oldEpoch := b.st.Replication().Epoch()
	b.Close()
	copyFileT(t, file+".old", file) // the disk is restored from the old copy

	b, err = Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustStart(t, b)
	eventually(t, "b gets its lost writes back from a", func() error {
		b.SyncNow(context.Background())
		return hasValue(b, "notes", "lost9", `"after the copy"`)
	})
	if _, ok := b.st.Replication().RolledBack(); !ok || b.st.Replication().Epoch() == oldEpoch {
		t.Errorf("b did not notice it was rolled back (new epoch: %v)", b.st.Replication().Epoch() != oldEpoch)
	}
	b.Put("notes", "fresh", []byte(`"after the restore"`))
	eventually(t, "a gets b's new write", func() error { return hasValue(a, "notes", "fresh", `"after the restore"`) })
	for i := range 10 {
		if err := hasValue(a, "notes", fmt.Sprint("lost", i), `"after the copy"`); err != nil {
			t.Errorf("a regressed: %v", err)
		}
	}
}
