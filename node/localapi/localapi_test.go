package localapi

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

func init() { testmode.Enable() }

func serve(t *testing.T) (*store.Store, *Client) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s")
	st, err := store.Init(dir, []byte("pass"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := NewServer(st, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, dir) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		st.Close()
	})
	var c *Client
	for i := 0; ; i++ {
		c, err = Dial(ctx, dir)
		if err == nil {
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { c.Close() })
	return st, c
}

func TestClientMirrorsStore(t *testing.T) {
	st, c := serve(t)
	if err := c.Put("notes", "a/b", []byte(`{"x": 1}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.PutRaw("blobs", "r", []byte{0, 255}); err != nil {
		t.Fatal(err)
	}
	rec, err := st.Get("notes", "a/b")
	if err != nil || string(rec.Value) != `{"x":1}` {
		t.Fatalf("daemon store: %v %v", rec, err)
	}
	got, err := c.Get("notes", "a/b")
	if err != nil || string(got.Value) != `{"x":1}` || got.Version.Device != st.Device().ID {
		t.Fatalf("client get: %+v %v", got, err)
	}
	if r, _ := c.Get("blobs", "r"); r == nil || r.Kind != resolve.KindRaw || len(r.Value) != 2 {
		t.Fatalf("raw: %+v", r)
	}
	list, err := c.List("", "")
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	// Sentinel errors survive the trip.
	if _, err := c.Get("notes", "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get missing: %v", err)
	}
	if err := c.Put("notes", "bad", []byte(`{`)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad json: %v", err)
	}
	if err := c.Put("_x", "k", []byte(`1`)); !errors.Is(err, store.ErrReserved) {
		t.Errorf("reserved: %v", err)
	}
	if err := c.Delete("notes", "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("notes", "a/b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := c.SetPolicy("notes", resolve.Policy{Strategy: resolve.StrategyMerge}); err != nil {
		t.Fatal(err)
	}
	if p, explicit, err := c.Policy("notes"); err != nil || !explicit || p.Strategy != resolve.StrategyMerge {
		t.Errorf("policy: %+v %v %v", p, explicit, err)
	}
	if rep, err := c.Verify(); err != nil || !rep.OK() {
		t.Errorf("verify: %+v %v", rep, err)
	}
	path := filepath.Join(t.TempDir(), "b.age")
	if info, err := c.ExportFile(path, []byte("bp"), nil); err != nil || info.Envelopes == 0 {
		t.Fatalf("export: %+v %v", info, err)
	}
	if st, err := c.ImportFile(path, []byte("bp"), true); err != nil || st.Unchanged == 0 {
		t.Errorf("import dry run: %+v %v", st, err)
	}
	if _, err := c.ImportFile(path, []byte("wrong"), true); !errors.Is(err, store.ErrWrongPassphrase) {
		t.Errorf("wrong backup pass: %v", err)
	}
	if err := c.ChangePassphrase([]byte("nope"), []byte("x"), nil); !errors.Is(err, store.ErrWrongPassphrase) {
		t.Errorf("passwd: %v", err)
	}
}

func TestDialWithoutDaemon(t *testing.T) {
	if _, err := Dial(context.Background(), t.TempDir()); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("dial: %v", err)
	}
}
