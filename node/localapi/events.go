package localapi

import (
	"context"
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"net/url"
	"time"

	"github.com/meshsync/meshsync/store"
)

// events streams GET /v2/events: one Event per line (JSON lines), state changes and,
// with records=1, record changes, until the client goes away or the node stops.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	n, err := s.node()
	if err != nil {
		writeError(w, err)
		return
	}
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
	invite := n.InviteChanged()
	for {
		var ev Event
		select {
		case <-r.Context().Done():
			return
		case <-invite:
			invite = n.InviteChanged()
			st := n.InviteState()
			ev = Event{Time: time.Now().UTC(), Type: "invite", Invite: &st}
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

// Events streams the node's events until ctx ends, the loop stops, or the server goes
// away; with records it includes record changes. An error ends the sequence: ctx's error
// once ctx ends, io.EOF when the server closed the stream.
func (c *Client) Events(ctx context.Context, records bool) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		q := url.Values{}
		if records {
			q.Set("records", "1")
		}
		resp, err := c.send(ctx, "GET", "/events", q, nil)
		if err != nil {
			yield(Event{}, err)
			return
		}
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var ev Event
			if err := dec.Decode(&ev); err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				} else if err == io.ErrUnexpectedEOF {
					err = io.EOF
				}
				yield(Event{}, err)
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}
