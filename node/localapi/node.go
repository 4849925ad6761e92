package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// Status is the answer of GET /v1/status: this device, every other device with its sync
// state, and health warnings. Its JSON is a stable contract (`meshsync status --json`).
type Status struct {
	Device    store.DeviceInfo `json:"device"`
	PeerID    string           `json:"peer_id"`
	Addrs     []string         `json:"addrs"`
	Daemon    bool             `json:"daemon"`
	PID       int              `json:"pid,omitempty"`
	Overall   node.Status      `json:"overall"`
	Devices   []DeviceStatus   `json:"devices"`
	Conflicts int              `json:"conflicts"`
	ClockSkew float64          `json:"clock_skew_seconds"`
	Warnings  []string         `json:"warnings"`
}

// DeviceStatus is one other device in Status.
type DeviceStatus struct {
	node.DeviceState
	Role    string `json:"role"`
	Removed bool   `json:"removed,omitempty"`
}

// NodeStatus builds the status of a node (running or not) from its States, adding the
// device list (removed devices included) and whether a daemon serves it.
func NodeStatus(n *node.Node, daemon bool) (Status, error) {
	st := n.Store()
	out := Status{Device: st.Device(), PeerID: n.PeerID().String(), Daemon: daemon, Addrs: []string{}, Devices: []DeviceStatus{}, Warnings: []string{}}
	if daemon {
		out.PID = os.Getpid()
	}
	for _, a := range n.Addrs() {
		out.Addrs = append(out.Addrs, a.String())
	}
	states := n.States()
	out.Overall = states.Overall
	byDevice := map[string]node.DeviceState{}
	for _, d := range states.Devices {
		byDevice[d.DeviceID] = d
	}
	for _, d := range n.Devices() {
		if d.ID == string(st.Device().ID) {
			continue
		}
		ds, ok := byDevice[d.ID]
		if !ok {
			ds = node.DeviceState{DeviceID: d.ID, PeerID: d.PeerID, Name: d.Name, Status: node.StatusOffline, PendingIn: -1, PendingOut: -1}
		}
		out.Devices = append(out.Devices, DeviceStatus{DeviceState: ds, Role: d.Role, Removed: d.Removed})
	}
	out.Conflicts = states.Conflicts
	out.ClockSkew = states.ClockSkew.Seconds()
	for _, w := range states.Warnings {
		out.Warnings = append(out.Warnings, w.Message)
	}
	if !daemon {
		out.Warnings = append(out.Warnings, "daemon not running: start it with `meshsync daemon` (states shown are the last known)")
	}
	return out, nil
}

// AttachNode adds the node's routes: status, sync, invites, devices and the event stream.
func (s *Server) AttachNode(n *node.Node) {
	m := s.mux
	m.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := NodeStatus(n, true)
		reply(w, st, err)
	})
	m.HandleFunc("POST /v1/sync", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("wait") != "1" {
			reply(w, struct{}{}, n.SyncNow(r.Context()))
			return
		}
		timeout, err := time.ParseDuration(q.Get("timeout"))
		if err != nil || timeout <= 0 {
			timeout = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := n.WaitSynced(ctx); err != nil {
			WriteJSONStatus(w, http.StatusGatewayTimeout, errorBody{Error: err.Error(), Code: syncCode(err)})
			return
		}
		st, err := NodeStatus(n, true)
		reply(w, st, err)
	})
	m.HandleFunc("POST /v1/invite", func(w http.ResponseWriter, r *http.Request) {
		var req inviteRequest
		if err := ReadJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
		invite := n.Invite
		if req.Replica {
			invite = n.InviteReplica
		}
		code, until, err := invite(req.Expires)
		reply(w, Invite{Code: code, Expires: until}, err)
	})
	m.HandleFunc("GET /v1/devices", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, n.Devices())
	})
	m.HandleFunc("DELETE /v1/device", func(w http.ResponseWriter, r *http.Request) {
		var req removeRequest
		if err := ReadJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
		reply(w, struct{}{}, n.RemoveDeviceConfirmed(req.ID, req.Passphrase))
	})
	m.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		streamEvents(w, r, n)
	})
}

// WriteJSONStatus answers with v as JSON under status.
func WriteJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func syncCode(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, node.ErrUnreachable):
		return "unreachable"
	}
	return "error"
}

// Event is one line of GET /v1/events: a sync-state change or a record change.
type Event struct {
	Time   time.Time        `json:"time"`
	Type   string           `json:"type"` // "state" or "record"
	State  *node.StateEvent `json:"state,omitempty"`
	Record *RecordEvent     `json:"record,omitempty"`
}

// RecordEvent is a record change in the event stream.
type RecordEvent struct {
	Collection string `json:"collection"`
	Key        string `json:"key"`
	Deleted    bool   `json:"deleted"`
	Local      bool   `json:"local"`
	Conflict   bool   `json:"conflict"`
}

func streamEvents(w http.ResponseWriter, r *http.Request, n *node.Node) {
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	states := n.SubscribeStates(256)
	defer states.Close()
	var records <-chan store.Change
	if r.URL.Query().Get("records") == "1" {
		sub := n.Subscribe(1024)
		defer sub.Close()
		records = sub.C
	}
	enc := json.NewEncoder(w)
	if fl != nil {
		fl.Flush()
	}
	for {
		var ev Event
		select {
		case <-r.Context().Done():
			return
		case se, ok := <-states.C:
			if !ok {
				return
			}
			ev = Event{Time: time.Now().UTC(), Type: "state", State: &se}
		case c, ok := <-records:
			if !ok {
				return
			}
			ev = Event{Time: time.Now().UTC(), Type: "record", Record: &RecordEvent{c.Collection, c.Key, c.Deleted, c.Local, c.Conflict}}
		}
		if err := enc.Encode(ev); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
	}
}

type inviteRequest struct {
	Expires time.Duration `json:"expires"`
	Replica bool          `json:"replica,omitempty"`
}

// Invite is a pairing invite.
type Invite struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
}

// Status asks the daemon for its status.
func (c *Client) Status() (Status, error) {
	var out Status
	err := c.Do(bg, "GET", "/v1/status", nil, nil, &out)
	return out, err
}

// Sync asks the daemon to sync now; with wait it returns when every device finished a
// session (or timeout passes: an error whose code is "timeout").
func (c *Client) Sync(ctx context.Context, wait bool, timeout time.Duration) (Status, error) {
	var out Status
	q := url.Values{}
	if wait {
		q.Set("wait", "1")
		q.Set("timeout", timeout.String())
	}
	err := c.Do(ctx, "POST", "/v1/sync", q, nil, &out)
	return out, err
}

// Invite asks the daemon for a pairing invite.
func (c *Client) Invite(expires time.Duration) (Invite, error) {
	var out Invite
	err := c.Do(bg, "POST", "/v1/invite", nil, inviteRequest{Expires: expires}, &out)
	return out, err
}

// InviteReplica asks the daemon for an invite that makes a blind replica.
func (c *Client) InviteReplica(expires time.Duration) (Invite, error) {
	var out Invite
	err := c.Do(bg, "POST", "/v1/invite", nil, inviteRequest{Expires: expires, Replica: true}, &out)
	return out, err
}

// Devices lists the mesh's devices.
func (c *Client) Devices() ([]node.Device, error) {
	var out []node.Device
	err := c.Do(bg, "GET", "/v1/devices", nil, nil, &out)
	return out, err
}

// removeRequest asks to remove a device; the passphrase confirms that the owner asks
// (the daemon checks it against its store: store.ErrWrongPassphrase otherwise).
type removeRequest struct {
	ID         string `json:"id"`
	Passphrase []byte `json:"passphrase"`
}

// RemoveDevice removes a device from the mesh, once the daemon has checked pass against
// its store (store.ErrWrongPassphrase otherwise).
func (c *Client) RemoveDevice(id string, pass []byte) error {
	return c.Do(bg, "DELETE", "/v1/device", nil, removeRequest{ID: id, Passphrase: pass}, nil)
}

// Events streams events to fn until ctx ends, fn returns an error, or the daemon stops.
// With records it includes record changes.
func (c *Client) Events(ctx context.Context, records bool, fn func(Event) error) error {
	u := "http://meshsync/v1/events"
	if records {
		u += "?records=1"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev Event
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}
