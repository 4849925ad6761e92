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

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// Client talks to the daemon of one data directory. Its record methods mirror the store's,
// and return the store's sentinel errors, so a caller can use either.
type Client struct {
	dir  string
	http *http.Client
	// PID is the daemon's process id.
	PID int
}

// Dial connects to the daemon serving dir. It returns ErrNoDaemon when none answers.
func Dial(ctx context.Context, dir string) (*Client, error) {
	path := SocketPath(dir)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	c := &Client{dir: dir, http: &http.Client{Transport: tr}}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var ping struct {
		PID int `json:"pid"`
	}
	if err := c.Do(pctx, "GET", "/v1/ping", nil, nil, &ping); err != nil {
		tr.CloseIdleConnections()
		var re *remoteError
		if errors.As(err, &re) {
			return nil, err
		}
		return nil, fmt.Errorf("%w on %s", ErrNoDaemon, path)
	}
	c.PID = ping.PID
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// Do sends one request: body (if not nil) as JSON, or raw when it is []byte; the answer is
// decoded into out (if not nil). Errors the daemon reports keep their sentinels.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	u := "http://meshsync" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb errorBody
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb); err != nil || eb.Error == "" {
			return fmt.Errorf("daemon: %s", resp.Status)
		}
		return errorFromWire(eb.Code, eb.Error)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("daemon: decode answer: %w", err)
	}
	return nil
}

func rec(c, k string) url.Values { return url.Values{"collection": {c}, "key": {k}} }

var bg = context.Background()

// Put writes a JSON value.
func (c *Client) Put(collection, key string, value []byte) error {
	return c.Do(bg, "PUT", "/v1/record", rec(collection, key), value, nil)
}

// PutRaw writes raw bytes.
func (c *Client) PutRaw(collection, key string, value []byte) error {
	q := rec(collection, key)
	q.Set("raw", "1")
	return c.Do(bg, "PUT", "/v1/record", q, value, nil)
}

// Get reads a resolved record.
func (c *Client) Get(collection, key string) (*store.Record, error) {
	var r store.Record
	if err := c.Do(bg, "GET", "/v1/record", rec(collection, key), nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Delete writes a tombstone.
func (c *Client) Delete(collection, key string) error {
	return c.Do(bg, "DELETE", "/v1/record", rec(collection, key), nil, nil)
}

// List lists live records.
func (c *Client) List(collection, prefix string) ([]store.Record, error) {
	var out []store.Record
	err := c.Do(bg, "GET", "/v1/records", url.Values{"collection": {collection}, "prefix": {prefix}}, nil, &out)
	return out, err
}

// Conflicts lists records with concurrent versions.
func (c *Client) Conflicts() ([]store.ConflictInfo, error) {
	var out []store.ConflictInfo
	err := c.Do(bg, "GET", "/v1/conflicts", nil, nil, &out)
	return out, err
}

// Conflict finds one conflict by id prefix or "collection/key".
func (c *Client) Conflict(id string) (*store.ConflictInfo, error) {
	var out store.ConflictInfo
	if err := c.Do(bg, "GET", "/v1/conflict", url.Values{"id": {id}}, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResolveConflict closes a conflict (see store.Store.ResolveConflict).
func (c *Client) ResolveConflict(id merkle.ID, pick int, value []byte, expect int) error {
	return c.Do(bg, "POST", "/v1/conflict/resolve", nil, resolveRequest{id, pick, value, expect}, nil)
}

// History lists the losing values of resolved conflicts.
func (c *Client) History(collection, key string) ([]store.HistoryEntry, error) {
	var out []store.HistoryEntry
	err := c.Do(bg, "GET", "/v1/history", rec(collection, key), nil, &out)
	return out, err
}

// SetPolicy sets a collection's conflict policy.
func (c *Client) SetPolicy(collection string, p resolve.Policy) error {
	return c.Do(bg, "PUT", "/v1/policy", url.Values{"collection": {collection}}, p, nil)
}

// Policy returns a collection's policy and whether it was set explicitly.
func (c *Client) Policy(collection string) (resolve.Policy, bool, error) {
	var out policyReply
	err := c.Do(bg, "GET", "/v1/policy", url.Values{"collection": {collection}}, nil, &out)
	return out.Policy, out.Explicit, err
}

// Policies returns every explicit policy.
func (c *Client) Policies() (map[string]resolve.Policy, error) {
	var out map[string]resolve.Policy
	err := c.Do(bg, "GET", "/v1/policies", nil, nil, &out)
	return out, err
}

// Verify checks the daemon's store.
func (c *Client) Verify() (*store.Report, error) {
	var out store.Report
	if err := c.Do(bg, "POST", "/v1/verify", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ExportFile makes the daemon write a backup to path (absolute).
func (c *Client) ExportFile(path string, pass []byte, _ *store.ExportOptions) (store.BackupInfo, error) {
	var out store.BackupInfo
	err := c.Do(bg, "POST", "/v1/export", nil, exportRequest{path, pass}, &out)
	return out, err
}

// ImportFile makes the daemon merge the backup at path (absolute).
func (c *Client) ImportFile(path string, pass []byte, dryRun bool) (store.ImportStats, error) {
	var out store.ImportStats
	err := c.Do(bg, "POST", "/v1/import", nil, importRequest{path, pass, dryRun}, &out)
	return out, err
}

// ChangePassphrase rewraps the daemon's mesh key.
func (c *Client) ChangePassphrase(oldPass, newPass []byte, _ *store.KDFParams) error {
	return c.Do(bg, "POST", "/v1/passwd", nil, passwdRequest{oldPass, newPass}, nil)
}
