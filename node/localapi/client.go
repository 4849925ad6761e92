package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/meshsync/meshsync/node/view"
	"github.com/meshsync/meshsync/store"
)

// Client is a typed client of the local API, the daemon's (Dial) or one served in this
// process (Local). Errors the server reports come back wrapping the same sentinel errors
// as the packages that raised them (store, node, consent, share, context), so a caller
// handles them alike whichever server answered.
type Client struct {
	http  *http.Client
	hello Hello
	stop  func() error // stops an in-process server; nil for a daemon's
}

func newClient(dial func(ctx context.Context) (net.Conn, error)) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
	return &Client{http: &http.Client{Transport: tr}}
}

// Dial connects to the daemon serving dir. It returns an error wrapping ErrNoDaemon when
// none answers, and ErrOldDaemon when the daemon serves another version of the API.
func Dial(ctx context.Context, dir string) (*Client, error) {
	path := SocketPath(dir)
	c := newClient(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	})
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := c.do(pctx, "GET", "/ping", nil, nil, &c.hello)
	if err == nil {
		return c, nil
	}
	c.http.CloseIdleConnections()
	var re *remoteError
	switch {
	case errors.Is(err, errNoRoute):
		return nil, fmt.Errorf("%w on %s: stop it and start it again with this meshsync", ErrOldDaemon, path)
	case errors.As(err, &re):
		return nil, err
	}
	return nil, fmt.Errorf("%w on %s", ErrNoDaemon, path)
}

// Local serves srv in this process, on an in-memory listener, and returns its client.
// Closing the client stops the server and then closes owned (the store or node that srv
// serves), when not nil.
func Local(srv *Server, owned io.Closer) (*Client, error) {
	ln := newPipeListener()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.serve(ctx, ln) }()
	c := newClient(ln.dial)
	c.stop = func() error {
		c.http.CloseIdleConnections()
		cancel() // the server shuts down and closes ln
		err := <-served
		if owned != nil {
			err = errors.Join(err, owned.Close())
		}
		return err
	}
	if err := c.do(context.Background(), "GET", "/ping", nil, nil, &c.hello); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close releases the client; for an in-process server, it stops the server and closes
// what it serves.
func (c *Client) Close() error {
	if c.stop != nil {
		stop := c.stop
		c.stop = nil
		return stop()
	}
	c.http.CloseIdleConnections()
	return nil
}

// Daemon reports whether a daemon serves the API. When it does not, the server lives in
// this process for as long as the client: work that must outlast a request (answering a
// joining device, a sync) happens only while the client waits for it.
func (c *Client) Daemon() bool { return c.hello.Daemon }

// PID is the serving process's id.
func (c *Client) PID() int { return c.hello.PID }

// Device is the device whose store is served.
func (c *Client) Device() store.DeviceInfo { return c.hello.Device }

// errNoRoute is a 404 answered without an error body: a server without the route.
var errNoRoute = errors.New("no such route")

// send sends one request under Prefix and returns the response of a success; an error
// response comes back as its error. body is sent raw when it is []byte, else as JSON.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	u := "http://meshsync" + Prefix + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("local API: %w", err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb errorBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb); err != nil || eb.Error == "" {
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("local API: %s %s: %w", method, path, errNoRoute)
		}
		return nil, fmt.Errorf("local API: %s", resp.Status)
	}
	return nil, errorFromWire(eb)
}

// do sends one request and decodes the answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("local API: decode answer: %w", err)
	}
	return nil
}

func rec(c, k string) url.Values { return url.Values{"collection": {c}, "key": {k}} }

// Put writes a JSON value.
func (c *Client) Put(ctx context.Context, collection, key string, value []byte) error {
	return c.do(ctx, "PUT", "/record", rec(collection, key), value, nil)
}

// PutRaw writes raw bytes.
func (c *Client) PutRaw(ctx context.Context, collection, key string, value []byte) error {
	q := rec(collection, key)
	q.Set("raw", "1")
	return c.do(ctx, "PUT", "/record", q, value, nil)
}

// Get reads a resolved record (store.ErrNotFound when there is none).
func (c *Client) Get(ctx context.Context, collection, key string) (view.Record, error) {
	var r view.Record
	err := c.do(ctx, "GET", "/record", rec(collection, key), nil, &r)
	rawRecord(&r)
	return r, err
}

// Delete writes a tombstone.
func (c *Client) Delete(ctx context.Context, collection, key string) error {
	return c.do(ctx, "DELETE", "/record", rec(collection, key), nil, nil)
}

// List lists the live records of a collection (every collection when empty) whose keys
// start with prefix.
func (c *Client) List(ctx context.Context, collection, prefix string) ([]view.Record, error) {
	var out []view.Record
	err := c.do(ctx, "GET", "/records", url.Values{"collection": {collection}, "prefix": {prefix}}, nil, &out)
	for i := range out {
		rawRecord(&out[i])
	}
	return out, err
}

// Conflicts lists records with concurrent versions.
func (c *Client) Conflicts(ctx context.Context) ([]view.Conflict, error) {
	var out []view.Conflict
	err := c.do(ctx, "GET", "/conflicts", nil, nil, &out)
	for i := range out {
		rawVersions(&out[i])
	}
	return out, err
}

// Conflict finds one conflict by id prefix or "collection/key".
func (c *Client) Conflict(ctx context.Context, id string) (view.Conflict, error) {
	var out view.Conflict
	err := c.do(ctx, "GET", "/conflict", url.Values{"id": {id}}, nil, &out)
	rawVersions(&out)
	return out, err
}

// ResolveConflict closes the conflict id names (as Conflict takes it): it keeps version
// pick (from 1), or writes value when pick is 0. expect is the number of versions the
// caller saw: store.ErrStale when the conflict has changed since.
func (c *Client) ResolveConflict(ctx context.Context, id string, pick int, value []byte, expect int) error {
	return c.do(ctx, "POST", "/conflict/resolve", nil, resolveRequest{ID: id, Pick: pick, Value: value, Expect: expect}, nil)
}

// History lists the losing values of resolved conflicts (of one collection, or one
// record, when given).
func (c *Client) History(ctx context.Context, collection, key string) ([]view.HistoryEntry, error) {
	var out []view.HistoryEntry
	err := c.do(ctx, "GET", "/history", rec(collection, key), nil, &out)
	for i := range out {
		if e := &out[i]; !e.Deleted && e.Value == nil && e.Raw == nil {
			e.Raw = []byte{}
		}
	}
	return out, err
}

// Policy returns a collection's policy, defaults filled in; Explicit says whether it was
// set for that collection.
func (c *Client) Policy(ctx context.Context, collection string) (view.Policy, error) {
	var out view.Policy
	err := c.do(ctx, "GET", "/policy", url.Values{"collection": {collection}}, nil, &out)
	return out, err
}

// SetPolicy sets a collection's conflict policy on every device of the mesh.
func (c *Client) SetPolicy(ctx context.Context, collection string, p view.Policy) error {
	return c.do(ctx, "PUT", "/policy", url.Values{"collection": {collection}}, p, nil)
}

// Scope returns the collections this device holds.
func (c *Client) Scope(ctx context.Context) (ScopeView, error) {
	var out ScopeView
	err := c.do(ctx, "GET", "/scope", nil, nil, &out)
	return out, err
}

// SetScope makes this device hold collections (none: all); dryRun only counts what
// narrowing would drop.
func (c *Client) SetScope(ctx context.Context, collections []string, dryRun bool) (ScopeResult, error) {
	return c.SetScopeWith(ctx, ScopeRequest{Collections: collections, DryRun: dryRun})
}

// SetScopeWith is SetScope with every option of the request (Force).
func (c *Client) SetScopeWith(ctx context.Context, req ScopeRequest) (ScopeResult, error) {
	var out ScopeResult
	err := c.do(ctx, "PUT", "/scope", nil, req, &out)
	return out, err
}

// Policies returns every explicit policy by collection, as set (no defaults filled in).
func (c *Client) Policies(ctx context.Context) (map[string]view.Policy, error) {
	var out map[string]view.Policy
	err := c.do(ctx, "GET", "/policies", nil, nil, &out)
	return out, err
}

// Verify checks every record and index of the store.
func (c *Client) Verify(ctx context.Context) (view.Report, error) {
	var out view.Report
	err := c.do(ctx, "POST", "/verify", nil, nil, &out)
	return out, err
}

// ExportFile makes the server write a backup to path (absolute: the server's working
// directory is not the caller's).
func (c *Client) ExportFile(ctx context.Context, path string, pass []byte) (view.BackupInfo, error) {
	var out view.BackupInfo
	err := c.do(ctx, "POST", "/export", nil, exportRequest{path, pass}, &out)
	return out, err
}

// ImportFile makes the server merge the backup at path (absolute); with dryRun it counts
// what would change and changes nothing.
func (c *Client) ImportFile(ctx context.Context, path string, pass []byte, dryRun bool) (view.ImportStats, error) {
	var out view.ImportStats
	err := c.do(ctx, "POST", "/import", nil, importRequest{path, pass, dryRun}, &out)
	return out, err
}

// Progress returns the export or import the server is running, or nil when none is.
func (c *Client) Progress(ctx context.Context) (*Progress, error) {
	var out Progress
	if err := c.do(ctx, "GET", "/progress", nil, nil, &out); err != nil {
		return nil, err
	}
	if out.Op == "" {
		return nil, nil
	}
	return &out, nil
}

// ChangePassphrase rewraps the store's mesh key under a new passphrase.
func (c *Client) ChangePassphrase(ctx context.Context, oldPass, newPass []byte) error {
	return c.do(ctx, "POST", "/passwd", nil, passwdRequest{oldPass, newPass}, nil)
}

// rawRecord restores an empty raw value, which JSON omits: a record always has a value,
// and a JSON one is never empty.
func rawRecord(r *view.Record) {
	if r.Collection != "" && r.Value == nil && r.Raw == nil {
		r.Raw = []byte{}
	}
}

// rawVersions restores the empty raw values of a conflict's versions.
func rawVersions(c *view.Conflict) {
	for i := range c.Versions {
		if v := &c.Versions[i]; !v.Deleted && v.Value == nil && v.Raw == nil {
			v.Raw = []byte{}
		}
	}
}
