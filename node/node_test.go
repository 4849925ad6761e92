package node

import (
	"testing"
	"time"
)

func TestPairAndSync(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	if err := a.Put("notes", "x", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put("notes", "y", []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b sees a's write", func() error { return hasValue(b, "notes", "x", `{"v":1}`) })
	eventually(t, "a sees b's write", func() error { return hasValue(a, "notes", "y", `{"v":2}`) })
	if err := a.WaitSynced(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Logf("states a: %+v", a.States())
}
