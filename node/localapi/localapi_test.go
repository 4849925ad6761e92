package localapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/view"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

func init() { testmode.Enable() }

// newStore is a fresh store; it is closed at cleanup unless the test hands it over.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Init(filepath.Join(t.TempDir(), "s"), []byte("pass"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// serveSocket serves st the way a daemon does, on the unix socket of its directory.
func serveSocket(t *testing.T, st *store.Store) *Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv := NewServer(st, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, st.Dir()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		st.Close()
	})
	var c *Client
	var err error
	for i := 0; ; i++ {
		if c, err = Dial(ctx, st.Dir()); err == nil {
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serveLocal serves st in this process, as the CLI does when no daemon runs.
func serveLocal(t *testing.T, st *store.Store) *Client {
	t.Helper()
	c, err := Local(NewServer(st, &Options{InProcess: true}), st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

// servers are the two ways to reach a store; every client test runs over both.
var servers = []struct {
	name   string
	serve  func(*testing.T, *store.Store) *Client
	daemon bool
}{
	{"socket", serveSocket, true},
	{"in-process", serveLocal, false},
}

func TestClientMirrorsStore(t *testing.T) {
	for _, sv := range servers {
		t.Run(sv.name, func(t *testing.T) {
			ctx := context.Background()
			st := newStore(t)
			c := sv.serve(t, st)
			if c.Daemon() != sv.daemon || c.Device().ID != st.Device().ID {
				t.Errorf("hello: daemon %v device %v", c.Daemon(), c.Device())
			}
			if err := c.Put(ctx, "notes", "a/b", []byte(`{"x": 1}`)); err != nil {
				t.Fatal(err)
			}
			if err := c.PutRaw(ctx, "blobs", "r", []byte{0, 255}); err != nil {
				t.Fatal(err)
			}
			if err := c.PutRaw(ctx, "blobs", "empty", nil); err != nil {
				t.Fatal(err)
			}
			rec, err := st.Get("notes", "a/b")
			if err != nil || string(rec.Value) != `{"x":1}` {
				t.Fatalf("served store: %v %v", rec, err)
			}
			got, err := c.Get(ctx, "notes", "a/b")
			if err != nil || string(got.Value) != `{"x":1}` || got.Version.Device != string(st.Device().ID) {
				t.Fatalf("client get: %+v %v", got, err)
			}
			if r, _ := c.Get(ctx, "blobs", "r"); len(r.Raw) != 2 || r.Value != nil {
				t.Fatalf("raw: %+v", r)
			}
			if r, _ := c.Get(ctx, "blobs", "empty"); r.Raw == nil || len(r.Raw) != 0 {
				t.Fatalf("empty raw: %+v", r)
			}
			list, err := c.List(ctx, "", "")
			if err != nil || len(list) != 3 {
				t.Fatalf("list: %v %v", list, err)
			}
			// Sentinel errors survive the trip.
			if _, err := c.Get(ctx, "notes", "missing"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("get missing: %v", err)
			}
			if err := c.Put(ctx, "notes", "bad", []byte(`{`)); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("bad json: %v", err)
			}
			if err := c.Put(ctx, "_x", "k", []byte(`1`)); !errors.Is(err, store.ErrReserved) {
				t.Errorf("reserved: %v", err)
			}
			if err := c.Delete(ctx, "notes", "a/b"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(ctx, "notes", "a/b"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("after delete: %v", err)
			}
			if err := c.SetPolicy(ctx, "notes", view.Policy{Strategy: "user", DeadlineSeconds: 3600}); err != nil {
				t.Fatal(err)
			}
			if p, err := c.Policy(ctx, "notes"); err != nil || !p.Explicit || p.Strategy != "user" || p.DeadlineSeconds != 3600 {
				t.Errorf("policy: %+v %v", p, err)
			}
			if p, _, _ := st.Policies().Get("notes"); p.Deadline != time.Hour {
				t.Errorf("stored deadline %s, want 1h", p.Deadline)
			}
			if err := c.SetPolicy(ctx, "notes", view.Policy{Strategy: "sideways"}); !errors.Is(err, ErrBadRequest) {
				t.Errorf("bad policy: %v", err)
			}
			if all, err := c.Policies(ctx); err != nil || all["notes"].Strategy != string(resolve.StrategyUser) {
				t.Errorf("policies: %+v %v", all, err)
			}
			if rep, err := c.Verify(ctx); err != nil || !rep.OK() {
				t.Errorf("verify: %+v %v", rep, err)
			}
			path := filepath.Join(t.TempDir(), "b.age")
			if info, err := c.ExportFile(ctx, path, []byte("bp")); err != nil || info.Envelopes == 0 {
				t.Fatalf("export: %+v %v", info, err)
			}
			if st, err := c.ImportFile(ctx, path, []byte("bp"), true); err != nil || st.Unchanged == 0 {
				t.Errorf("import dry run: %+v %v", st, err)
			}
			if _, err := c.ImportFile(ctx, path, []byte("wrong"), true); !errors.Is(err, store.ErrWrongPassphrase) {
				t.Errorf("wrong backup pass: %v", err)
			}
			if err := c.ChangePassphrase(ctx, []byte("nope"), []byte("x")); !errors.Is(err, store.ErrWrongPassphrase) {
				t.Errorf("passwd: %v", err)
			}
			// A bare store has no node: the node routes refuse, they do not crash.
			if _, err := c.Status(ctx); !errors.Is(err, ErrBadRequest) {
				t.Errorf("status of a bare store: %v", err)
			}
		})
	}
}

// TestWireSchema: the answers are the JSON forms of package view, with the policy's
// deadline in seconds, not Go structs.
func TestWireSchema(t *testing.T) {
	st := newStore(t)
	c := serveLocal(t, st)
	ctx := context.Background()
	if err := c.Put(ctx, "notes", "k", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetPolicy(ctx, "docs", view.Policy{Strategy: "user", DeadlineSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		resp, err := c.send(ctx, "GET", path, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, tc := range []struct{ path, want string }{
		{"/record?collection=notes&key=k", `{"collection":"notes","key":"k","value":{"a":1},"version":{"device":"`},
		{"/policy?collection=docs", `{"strategy":"user","fallback":"timestamp","deadline_seconds":60,`},
		{"/policies", `{"docs":{"strategy":"user","deadline_seconds":60,"explicit":true}}`},
	} {
		if got := get(tc.path); !strings.HasPrefix(got, tc.want) {
			t.Errorf("GET %s:\n got %s\nwant %s...", tc.path, got, tc.want)
		}
	}
}

// TestOriginRefused: a browser page cannot drive the API.
func TestOriginRefused(t *testing.T) {
	c := serveLocal(t, newStore(t))
	req, _ := http.NewRequest("GET", "http://meshsync"+Prefix+"/ping", nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a request with an Origin: %s", resp.Status)
	}
}

func TestDialWithoutDaemon(t *testing.T) {
	if _, err := Dial(context.Background(), t.TempDir()); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("dial: %v", err)
	}
}

// TestErrorCodes: every code names one sentinel, and an error answer rebuilds every
// sentinel its error wrapped.
func TestErrorCodes(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range codes {
		if seen[c.code] {
			t.Errorf("code %q twice", c.code)
		}
		seen[c.code] = true
	}
	err := errors.Join(store.ErrNotFound, context.DeadlineExceeded)
	back := errorFromWire(errorBody{Error: err.Error(), Codes: codesOf(err)})
	if !errors.Is(back, store.ErrNotFound) || !errors.Is(back, context.DeadlineExceeded) || back.Error() != err.Error() {
		t.Errorf("round trip of %v: %v", err, back)
	}
}

// TestEvents: the event stream is a sequence that a range loop reads and stops.
func TestEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pass := []byte("pass")
	n, err := node.Init(ctx, node.Config{Dir: filepath.Join(t.TempDir(), "n"), Passphrase: pass}, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Local(NewNodeServer(n, &Options{InProcess: true}), n)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		time.Sleep(100 * time.Millisecond) // the stream subscribes first
		c.Put(ctx, "notes", "k", []byte(`1`))
	}()
	for ev, err := range c.Events(ctx, true) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Record != nil {
			if ev.Record.Collection != "notes" || ev.Record.Key != "k" || !ev.Record.Local {
				t.Errorf("record event %+v", ev.Record)
			}
			break
		}
	}
	sctx, scancel := context.WithCancel(ctx)
	scancel()
	for _, err := range c.Events(sctx, false) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("a cancelled stream: %v", err)
		}
	}
}

// TestProgress: GET /progress reports the export or import under way (what the CLI's
// progress bar draws), and nothing once it ended.
func TestProgress(t *testing.T) {
	st := newStore(t)
	srv := NewServer(st, &Options{InProcess: true})
	c, err := Local(srv, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	if p, err := c.Progress(ctx); err != nil || p != nil {
		t.Fatalf("progress with nothing under way: %+v, %v", p, err)
	}
	done := srv.startWork("import", "bytes")
	srv.report(512, 2048)
	p, err := c.Progress(ctx)
	if err != nil || p == nil || p.Op != "import" || p.Unit != "bytes" || p.Done != 512 || p.Total != 2048 {
		t.Fatalf("progress %+v, %v; want import 512 of 2048 bytes", p, err)
	}
	done()
	if p, err := c.Progress(ctx); err != nil || p != nil {
		t.Fatalf("progress after the work ended: %+v, %v", p, err)
	}
}

// TestUI: POST /v2/ui answers the web page's login link from Options.UI, and
// ErrBadRequest, saying where the page is served, from a server without one.
func TestUI(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if _, err := serveLocal(t, st).UI(ctx); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "meshsync daemon") {
		t.Errorf("UI of a server without a page: %v, want ErrBadRequest naming the daemon", err)
	}
	st2 := newStore(t)
	c, err := Local(NewServer(st2, &Options{UI: func() (string, error) { return "http://127.0.0.1:1/?token=t", nil }}), st2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ui, err := c.UI(ctx); err != nil || ui.URL != "http://127.0.0.1:1/?token=t" {
		t.Errorf("UI: %+v, %v", ui, err)
	}
}

// TestInviteEvents: the event stream tells of a short invite opening and of a wrong code
// tried against it, so that a tray app can tell the person.
func TestInviteEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pass := []byte("pass")
	cfg := node.Config{Dir: filepath.Join(t.TempDir(), "n"), Passphrase: pass, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LANOnly: true}
	n, err := node.Init(ctx, cfg, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := Local(NewNodeServer(n, &Options{InProcess: true}), n)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inv := make(chan Invite, 1)
	go func() {
		time.Sleep(100 * time.Millisecond) // the stream subscribes first
		i, err := c.InviteShort(ctx, 0)
		if err != nil {
			t.Error(err)
			cancel()
			return
		}
		inv <- i
		jcfg := node.Config{Dir: filepath.Join(t.TempDir(), "j"), Passphrase: pass, LANOnly: true, JoinPeers: i.Addrs}
		node.Join(ctx, jcfg, "7-abash-abduct-abort", "guess") // wrong (or, once in 2^33·99, right)
	}()
	var seen []string
	for ev, err := range c.Events(ctx, false) {
		if err != nil {
			t.Fatalf("events: %v (seen %v)", err, seen)
		}
		if ev.Type != "invite" {
			continue
		}
		seen = append(seen, fmt.Sprintf("open=%v failures=%d", ev.Invite.Open, ev.Invite.Failures))
		if ev.Invite.Failures == 1 {
			break
		}
	}
	if len(seen) < 2 || seen[0] != "open=true failures=0" {
		t.Fatalf("invite events %v, want the opening then the wrong code", seen)
	}
	if st, err := c.InviteState(ctx); err != nil || st.Failures != 1 || !st.Open || !st.Short {
		t.Fatalf("GET /v2/invite: %+v, %v", st, err)
	}
	<-inv
}
