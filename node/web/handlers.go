package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/node/view"
	"github.com/meshsync/meshsync/store"
)

func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("GET /static/", staticHandler())
	m.HandleFunc("GET /{$}", s.devicesPage)
	m.HandleFunc("GET /events", s.events)
	m.HandleFunc("POST /sync", s.syncNow)
	m.HandleFunc("GET /pair", s.pairPage)
	m.HandleFunc("POST /pair", s.pair)
	m.HandleFunc("GET /device/remove", s.removePage)
	m.HandleFunc("POST /device/remove", s.removeDevice)
	m.HandleFunc("GET /records", s.recordsPage)
	m.HandleFunc("GET /record", s.recordPage)
	m.HandleFunc("POST /record", s.putRecord)
	m.HandleFunc("POST /record/delete", s.deleteRecord)
	m.HandleFunc("GET /conflicts", s.conflictsPage)
	m.HandleFunc("GET /conflict", s.conflictPage)
	m.HandleFunc("POST /conflict/resolve", s.resolve)
	m.HandleFunc("GET /policies", s.policiesPage)
	m.HandleFunc("POST /policy", s.setPolicy)
	m.HandleFunc("POST /scope", s.setScope)
	m.HandleFunc("GET /consent", s.consentPage)
	m.HandleFunc("POST /consent/grant", s.grant)
	m.HandleFunc("POST /consent/revoke", s.revoke)
	m.HandleFunc("POST /consent/approve", s.approve)
	m.HandleFunc("POST /consent/deny", s.deny)
	s.mux = m
}

// errorPage shows what went wrong loading a view.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, nav string, err error) {
	status := http.StatusInternalServerError
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, node.ErrUnknownDevice) {
		status = http.StatusNotFound
	} else if errors.Is(err, localapi.ErrBadRequest) || errors.Is(err, store.ErrInvalid) {
		status = http.StatusBadRequest
	}
	s.render(w, r, status, "error", page{Title: "Something went wrong", Nav: nav, Data: err.Error()})
}

// Devices.

// deviceRow is one other device on the devices view.
type deviceRow struct {
	localapi.DeviceStatus
	Path string // direct, relayed or not connected
}

func (s *Server) devicesPage(w http.ResponseWriter, r *http.Request) {
	st, err := s.c.Status(r.Context())
	if err != nil {
		s.errorPage(w, r, "devices", err)
		return
	}
	rows := make([]deviceRow, 0, len(st.Devices))
	for _, d := range st.Devices {
		p := "not connected"
		switch {
		case d.Connected && d.Relayed:
			p = "relayed"
		case d.Connected:
			p = "direct"
		}
		rows = append(rows, deviceRow{DeviceStatus: d, Path: p})
	}
	s.render(w, r, http.StatusOK, "devices", page{Title: "Devices", Nav: "devices", Live: true,
		Data: struct {
			Status localapi.Status
			Rows   []deviceRow
		}{st, rows}})
}

func (s *Server) syncNow(w http.ResponseWriter, r *http.Request) {
	if _, err := s.c.Sync(r.Context(), false, 0); err != nil {
		s.fail(w, r, "/", err)
		return
	}
	s.done(w, r, "/", "Syncing with every reachable device.")
}

// eventGap is the least time between two events sent to a page: a bulk sync changes
// thousands of records a second, and each event only tells the page to refresh.
const eventGap = 250 * time.Millisecond

// events streams the node's events as server-sent events; the page's script refreshes
// the live views on each. Events that come faster than eventGap are coalesced into the
// latest one.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		http.Error(w, "too many live pages open: close some tabs", http.StatusServiceUnavailable)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	latest := make(chan localapi.Event, 1)
	done := make(chan struct{})
	go func() { // follows the node; ends with ctx
		defer close(done)
		defer cancel()
		for ev, err := range s.c.Events(ctx, true) {
			if err != nil {
				return
			}
			select { // keep only the newest
			case <-latest:
			default:
			}
			latest <- ev
		}
	}()
	defer func() { cancel(); <-done }()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	gap := time.NewTimer(0)
	defer gap.Stop()
	for {
		var ev localapi.Event
		select {
		case <-ctx.Done():
			return
		case ev = <-latest:
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, b); err != nil {
			return
		}
		fl.Flush()
		gap.Reset(eventGap)
		select {
		case <-ctx.Done():
			return
		case <-gap.C:
		}
	}
}

// Pairing.

// inviteExpiries are the choices of the pairing form.
var inviteExpiries = []time.Duration{5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}

type pairData struct {
	Expiries []time.Duration
	Invite   *localapi.Invite
	Replica  bool
	Short    bool // a short code to read aloud
}

func (s *Server) pairPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "pair", page{Title: "Add a device", Nav: "pair", Data: pairData{Expiries: inviteExpiries}})
}

func (s *Server) pair(w http.ResponseWriter, r *http.Request) {
	exp, err := time.ParseDuration(r.PostFormValue("expires"))
	if err != nil || exp <= 0 || exp > node.MaxInviteExpiry {
		s.fail(w, r, "/pair", fmt.Errorf("invite expiry %q: pick one of the choices", r.PostFormValue("expires")))
		return
	}
	replica, short := r.PostFormValue("kind") == "replica", r.PostFormValue("kind") == "short"
	var inv localapi.Invite
	if short {
		// A short code lives ten minutes at most, whatever was picked.
		inv, err = s.c.InviteShort(r.Context(), min(exp, node.MaxShortInviteExpiry))
	} else {
		inv, err = s.c.Invite(r.Context(), exp, replica)
	}
	if err != nil {
		s.fail(w, r, "/pair", err)
		return
	}
	s.render(w, r, http.StatusOK, "pair", page{Title: "Add a device", Nav: "pair",
		Data: pairData{Expiries: inviteExpiries, Invite: &inv, Replica: replica, Short: short}})
}

// device finds a device of the mesh by id.
func (s *Server) device(r *http.Request, id string) (node.Device, error) {
	devs, err := s.c.Devices(r.Context())
	if err != nil {
		return node.Device{}, err
	}
	for _, d := range devs {
		if d.ID == id {
			return d, nil
		}
	}
	return node.Device{}, fmt.Errorf("device %q: %w", id, node.ErrUnknownDevice)
}

func (s *Server) removePage(w http.ResponseWriter, r *http.Request) {
	d, err := s.device(r, r.URL.Query().Get("id"))
	if err != nil {
		s.errorPage(w, r, "devices", err)
		return
	}
	s.render(w, r, http.StatusOK, "remove", page{Title: "Remove " + d.Name, Nav: "devices", Data: d})
}

func (s *Server) removeDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("id")
	d, err := s.device(r, id)
	if err != nil {
		s.fail(w, r, "/", err)
		return
	}
	if err := s.c.RemoveDevice(r.Context(), id, []byte(r.PostFormValue("passphrase"))); err != nil {
		if errors.Is(err, store.ErrWrongPassphrase) {
			err = errors.New("wrong passphrase: nothing was removed; type this device's passphrase to confirm")
		}
		s.fail(w, r, "/device/remove?id="+url.QueryEscape(id), err)
		return
	}
	s.done(w, r, "/", fmt.Sprintf("%s was removed from the mesh: no device syncs with it any more.", d.Name))
}

// Records.

type recordsData struct {
	Collection, Prefix string
	Collections        []string
	Records            []view.Record
	More               int // records past MaxRows, not shown
}

func (s *Server) recordsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := recordsData{Collection: q.Get("collection"), Prefix: q.Get("prefix")}
	recs, err := s.c.List(r.Context(), d.Collection, d.Prefix)
	if err != nil {
		s.errorPage(w, r, "records", err)
		return
	}
	if d.Collection == "" {
		seen := map[string]bool{}
		for _, rec := range recs {
			if !seen[rec.Collection] {
				seen[rec.Collection] = true
				d.Collections = append(d.Collections, rec.Collection)
			}
		}
		slices.Sort(d.Collections)
	}
	if len(recs) > MaxRows {
		d.More = len(recs) - MaxRows
		recs = recs[:MaxRows]
	}
	d.Records = recs
	s.render(w, r, http.StatusOK, "records", page{Title: "Records", Nav: "records", Live: true, Data: d})
}

func (s *Server) recordPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rec, err := s.c.Get(r.Context(), q.Get("collection"), q.Get("key"))
	if err != nil {
		s.errorPage(w, r, "records", err)
		return
	}
	s.render(w, r, http.StatusOK, "record", page{Title: rec.Collection + "/" + rec.Key, Nav: "records", Data: rec})
}

// recordURL is the view of one record.
func recordURL(collection, key string) string {
	return "/record?" + url.Values{"collection": {collection}, "key": {key}}.Encode()
}

func (s *Server) putRecord(w http.ResponseWriter, r *http.Request) {
	c, k, v := r.PostFormValue("collection"), r.PostFormValue("key"), strings.TrimSpace(r.PostFormValue("value"))
	back := "/records?" + url.Values{"collection": {c}}.Encode()
	if r.PostFormValue("from") == "record" {
		back = recordURL(c, k)
	}
	if c == "" || k == "" {
		s.fail(w, r, back, errors.New("a record needs a collection and a key"))
		return
	}
	if !json.Valid([]byte(v)) {
		s.fail(w, r, back, fmt.Errorf("the value is not JSON: write an object such as {\"milk\": 2}, a number, or text in double quotes"))
		return
	}
	if err := s.c.Put(r.Context(), c, k, []byte(v)); err != nil {
		s.fail(w, r, back, err)
		return
	}
	s.done(w, r, recordURL(c, k), "Saved "+c+"/"+k+".")
}

func (s *Server) deleteRecord(w http.ResponseWriter, r *http.Request) {
	c, k := r.PostFormValue("collection"), r.PostFormValue("key")
	if err := s.c.Delete(r.Context(), c, k); err != nil {
		s.fail(w, r, recordURL(c, k), err)
		return
	}
	s.done(w, r, "/records?"+url.Values{"collection": {c}}.Encode(), "Deleted "+c+"/"+k+".")
}

// Conflicts.

type conflictsData struct {
	Conflicts []view.Conflict
	History   []view.HistoryEntry
	Names     map[string]string
}

// names maps device ids to names, for versions and history.
func (s *Server) names(r *http.Request) map[string]string {
	out := map[string]string{}
	devs, err := s.c.Devices(r.Context())
	if err != nil {
		return out
	}
	for _, d := range devs {
		out[d.ID] = d.Name
	}
	return out
}

func (s *Server) conflictsPage(w http.ResponseWriter, r *http.Request) {
	cs, err := s.c.Conflicts(r.Context())
	if err != nil {
		s.errorPage(w, r, "conflicts", err)
		return
	}
	h, err := s.c.History(r.Context(), "", "")
	if err != nil {
		s.errorPage(w, r, "conflicts", err)
		return
	}
	slices.SortStableFunc(h, func(a, b view.HistoryEntry) int { return b.ResolvedAt.Compare(a.ResolvedAt) })
	if len(h) > MaxRows {
		h = h[:MaxRows]
	}
	s.render(w, r, http.StatusOK, "conflicts", page{Title: "Conflicts", Nav: "conflicts", Live: true,
		Data: conflictsData{Conflicts: cs, History: h, Names: s.names(r)}})
}

func (s *Server) conflictPage(w http.ResponseWriter, r *http.Request) {
	c, err := s.c.Conflict(r.Context(), r.URL.Query().Get("id"))
	if err != nil {
		s.errorPage(w, r, "conflicts", err)
		return
	}
	s.render(w, r, http.StatusOK, "conflict", page{Title: "Conflict " + c.Collection + "/" + c.Key, Nav: "conflicts",
		Data: struct {
			C     view.Conflict
			Names map[string]string
		}{c, s.names(r)}})
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("id")
	back := "/conflict?" + url.Values{"id": {id}}.Encode()
	pick, _ := strconv.Atoi(r.PostFormValue("pick"))
	expect, _ := strconv.Atoi(r.PostFormValue("expect"))
	var value []byte
	if pick == 0 {
		value = []byte(strings.TrimSpace(r.PostFormValue("value")))
		if !json.Valid(value) {
			s.fail(w, r, back, errors.New("the merged value is not JSON: fix it and save again"))
			return
		}
	}
	if err := s.c.ResolveConflict(r.Context(), id, pick, value, expect); err != nil {
		if errors.Is(err, store.ErrStale) {
			err = errors.New("the conflict changed while you looked at it (another version arrived): here it is again")
		}
		s.fail(w, r, back, err)
		return
	}
	s.done(w, r, "/conflicts", "Conflict resolved; every device will take the same value.")
}

// Policies.

// strategies are the conflict strategies a collection may use.
var strategies = []string{"timestamp", "priority", "merge", "user"}

type policyRow struct {
	Collection string
	P          view.Policy
	Deadline   string
}

func (s *Server) policiesPage(w http.ResponseWriter, r *http.Request) {
	all, err := s.c.Policies(r.Context())
	if err != nil {
		s.errorPage(w, r, "policies", err)
		return
	}
	rows := make([]policyRow, 0, len(all))
	for c, p := range all {
		d := ""
		if p.DeadlineSeconds > 0 {
			d = (time.Duration(p.DeadlineSeconds) * time.Second).String()
		}
		rows = append(rows, policyRow{c, p, d})
	}
	slices.SortFunc(rows, func(a, b policyRow) int { return cmp.Compare(a.Collection, b.Collection) })
	scope, err := s.c.Scope(r.Context())
	if err != nil {
		s.errorPage(w, r, "policies", err)
		return
	}
	s.render(w, r, http.StatusOK, "policies", page{Title: "Policies", Nav: "policies",
		Data: struct {
			Rows       []policyRow
			Strategies []string
			Scope      localapi.ScopeView
		}{rows, strategies, scope}})
}

// setScope changes the collections this device holds. Narrowing drops records here (the
// other devices keep them), so it needs the confirmation box ticked.
func (s *Server) setScope(w http.ResponseWriter, r *http.Request) {
	var cols []string
	for _, c := range strings.Split(r.PostFormValue("collections"), ",") {
		if c = strings.TrimSpace(c); c != "" {
			cols = append(cols, c)
		}
	}
	dry, err := s.c.SetScope(r.Context(), cols, true)
	if err != nil {
		s.fail(w, r, "/policies", err)
		return
	}
	force := r.PostFormValue("force") == "on"
	if dry.Unsent > 0 && !force {
		s.fail(w, r, "/policies", fmt.Errorf("%d of the %d records this drops hold writes made here that no other device has yet: sync first, or tick the box to lose them", dry.Unsent, dry.Dropped))
		return
	}
	if dry.Dropped > 0 && r.PostFormValue("confirm") != "on" {
		s.fail(w, r, "/policies", fmt.Errorf("this drops %d records of the collections left out from this device (the other devices keep them): tick the box to confirm", dry.Dropped))
		return
	}
	res, err := s.c.SetScopeWith(r.Context(), localapi.ScopeRequest{Collections: cols, Force: force})
	if err != nil {
		s.fail(w, r, "/policies", err)
		return
	}
	msg := "This device now holds every collection."
	if !res.All {
		msg = "This device now holds " + strings.Join(res.Collections, ", ") + " (and meshsync's own collections)."
	}
	if res.Dropped > 0 {
		msg += fmt.Sprintf(" Dropped %d records here; the other devices keep them.", res.Dropped)
	}
	if res.Widened {
		msg += " The other devices send what was added at the next sync."
	}
	s.done(w, r, "/policies", msg)
}

func (s *Server) setPolicy(w http.ResponseWriter, r *http.Request) {
	c := r.PostFormValue("collection")
	if c == "" {
		s.fail(w, r, "/policies", errors.New("name the collection the policy is for"))
		return
	}
	p, err := s.c.Policy(r.Context(), c) // keeps what the form does not show (device ranks, critical fields)
	if err != nil {
		s.fail(w, r, "/policies", err)
		return
	}
	p.Explicit = false
	p.Strategy = r.PostFormValue("strategy")
	p.Fallback = r.PostFormValue("fallback")
	p.PriorityField = strings.TrimSpace(r.PostFormValue("priority_field"))
	p.DeadlineSeconds = 0
	if d := strings.TrimSpace(r.PostFormValue("deadline")); d != "" {
		dd, err := time.ParseDuration(d)
		if err != nil || dd <= 0 {
			s.fail(w, r, "/policies", fmt.Errorf("deadline %q: want a duration such as 24h or 90m", d))
			return
		}
		p.DeadlineSeconds = int64(dd / time.Second)
	}
	if err := s.c.SetPolicy(r.Context(), c, p); err != nil {
		s.fail(w, r, "/policies", err)
		return
	}
	s.done(w, r, "/policies", fmt.Sprintf("Collection %s now resolves conflicts by %s, on every device.", c, p.Strategy))
}

// Consent.

type grantRow struct {
	consent.Grant
	Status string // active, expired or revoked
	Rules  []string
}

type consentData struct {
	Grants  []grantRow
	Pending []consent.Request
	Audit   []consent.AuditEntry
	Expires string // the default expiry of a new grant (a date)
}

func (s *Server) consentPage(w http.ResponseWriter, r *http.Request) {
	cc := s.c.Consent()
	gs, err := cc.Grants(r.Context())
	if err != nil {
		s.errorPage(w, r, "consent", err)
		return
	}
	pend, err := cc.Pending(r.Context())
	if err != nil {
		s.errorPage(w, r, "consent", err)
		return
	}
	audit, err := cc.Audit(r.Context())
	if err != nil {
		s.errorPage(w, r, "consent", err)
		return
	}
	slices.Reverse(audit) // newest first
	if len(audit) > MaxRows {
		audit = audit[:MaxRows]
	}
	now := time.Now()
	d := consentData{Pending: pend, Audit: audit, Expires: now.AddDate(0, 0, 30).Format(time.DateOnly)}
	for _, g := range gs {
		row := grantRow{Grant: g, Status: "active"}
		switch {
		case g.IsRevoked():
			row.Status = "revoked"
		case !g.Active(now):
			row.Status = "expired"
		}
		for _, f := range g.Fields {
			row.Rules = append(row.Rules, f.String())
		}
		d.Grants = append(d.Grants, row)
	}
	s.render(w, r, http.StatusOK, "consent", page{Title: "Consent", Nav: "consent", Live: true, Data: d})
}

func (s *Server) grant(w http.ResponseWriter, r *http.Request) {
	exp, err := time.ParseInLocation(time.DateOnly, r.PostFormValue("expires"), time.Local)
	if err != nil {
		s.fail(w, r, "/consent", fmt.Errorf("expiry %q: pick a date", r.PostFormValue("expires")))
		return
	}
	var lines []string
	for l := range strings.Lines(r.PostFormValue("fields")) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	rules, err := consent.ParseRules(lines)
	if err != nil {
		s.fail(w, r, "/consent", fmt.Errorf("field rules: %w (one per line, such as title=keep or n=generalize:10)", err))
		return
	}
	g, err := s.c.Consent().Grant(r.Context(), consent.GrantSpec{Collection: strings.TrimSpace(r.PostFormValue("collection")),
		Purpose: strings.TrimSpace(r.PostFormValue("purpose")), Destination: strings.TrimSpace(r.PostFormValue("destination")),
		Expires: exp.AddDate(0, 0, 1).Add(-time.Second), Fields: rules}) // to the end of that day
	if err != nil {
		s.fail(w, r, "/consent", err)
		return
	}
	s.done(w, r, "/consent", fmt.Sprintf("Granted %s for %q to %s until %s.", g.Collection, g.Purpose, short(g.Destination), when(g.Expires)))
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	g, err := s.c.Consent().Revoke(r.Context(), r.PostFormValue("id"))
	if err != nil {
		s.fail(w, r, "/consent", err)
		return
	}
	s.done(w, r, "/consent", fmt.Sprintf("Grant %s (%s for %q) revoked: nothing more is shared under it.", short(g.ID), g.Collection, g.Purpose))
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request) {
	g, err := s.c.Consent().Approve(r.Context(), r.PostFormValue("id"), nil, time.Time{})
	if err != nil {
		s.fail(w, r, "/consent", err)
		return
	}
	s.done(w, r, "/consent", fmt.Sprintf("Approved: grant %s for %s.", short(g.ID), g.Collection))
}

func (s *Server) deny(w http.ResponseWriter, r *http.Request) {
	q, err := s.c.Consent().Deny(r.Context(), r.PostFormValue("id"))
	if err != nil {
		s.fail(w, r, "/consent", err)
		return
	}
	s.done(w, r, "/consent", fmt.Sprintf("Denied the request of %s.", q.App))
}
