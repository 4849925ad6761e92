package consent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshsync/meshsync/store"
)

// RequestStatus is where a request for a grant stands.
type RequestStatus string

// Request statuses.
const (
	Pending  RequestStatus = "pending"
	Approved RequestStatus = "approved"
	Denied   RequestStatus = "denied"
)

// MaxNoteLen bounds the app name and note of a request, in bytes.
const MaxNoteLen = 1024

// Request is an app's request for a grant. Nothing is shared while it is pending; the
// person approves it (which creates a grant) or denies it.
type Request struct {
	ID          string      `json:"id"`
	App         string      `json:"app"`
	Collection  string      `json:"collection"`
	Purpose     string      `json:"purpose"`
	Destination string      `json:"destination"`
	Fields      []FieldRule `json:"fields"`
	// For is how long the app asks the grant to last (0: DefaultGrantDuration).
	For       time.Duration `json:"for,omitempty"`
	Note      string        `json:"note,omitempty"`
	Created   time.Time     `json:"created"`
	CreatedBy string        `json:"created_by"`

	Status    RequestStatus `json:"status"`
	Decided   time.Time     `json:"decided,omitzero"`
	DecidedBy string        `json:"decided_by,omitempty"`
	GrantID   string        `json:"grant,omitempty"`
}

// RequestSpec is what an app asks for.
type RequestSpec struct {
	App         string
	Collection  string
	Purpose     string
	Destination string
	Fields      []FieldRule
	For         time.Duration
	Note        string
}

// Validate checks that a request is complete and well formed.
func (q *Request) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: request: %s", ErrBadGrant, fmt.Sprintf(format, a...))
	}
	if err := checkID(q.ID); err != nil {
		return bad("id: %v", err)
	}
	if err := CheckCollection(q.Collection); err != nil {
		return bad("%v", err)
	}
	if err := CheckPurpose(q.Purpose); err != nil {
		return bad("%v", err)
	}
	if err := CheckPeerID(q.Destination); err != nil {
		return bad("%v", err)
	}
	if len(q.App) > MaxNoteLen || len(q.Note) > MaxNoteLen || len(q.CreatedBy) > MaxNameLen || len(q.DecidedBy) > MaxNameLen || len(q.GrantID) > MaxNameLen {
		return bad("app, note or an id too long")
	}
	if q.For < 0 {
		return bad("negative duration")
	}
	if q.Created.IsZero() {
		return bad("created must be set")
	}
	switch q.Status {
	case Pending, Approved, Denied:
	default:
		return bad("unknown status %q", q.Status)
	}
	if err := validateRules(q.Fields); err != nil {
		return fmt.Errorf("%w: request: %w", ErrBadGrant, err)
	}
	return nil
}

// Marshal encodes the request as canonical JSON.
func (q Request) Marshal() ([]byte, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	q.Created, q.Decided = q.Created.UTC().Round(0), q.Decided.UTC().Round(0)
	if q.Fields == nil {
		q.Fields = []FieldRule{}
	}
	return encodeJSON(q)
}

// ParseRequest decodes and validates a request encoded by Marshal.
func ParseRequest(b []byte) (Request, error) {
	var q Request
	if err := strictUnmarshal(b, &q); err != nil {
		return Request{}, fmt.Errorf("%w: request: %v", ErrBadGrant, err)
	}
	if err := q.Validate(); err != nil {
		return Request{}, err
	}
	q.Created, q.Decided = q.Created.UTC().Round(0), q.Decided.UTC().Round(0)
	if q.Fields == nil {
		q.Fields = []FieldRule{}
	}
	return q, nil
}

// Request records an app's request for a grant and returns it, pending. The app then waits
// (Wait) while the person sees it in Pending and approves or denies it.
func (r *Registry) Request(spec RequestSpec) (Request, error) {
	id, err := r.newID()
	if err != nil {
		return Request{}, err
	}
	q := Request{ID: id, App: spec.App, Collection: spec.Collection, Purpose: spec.Purpose, Destination: spec.Destination,
		Fields: slices.Clone(spec.Fields), For: spec.For, Note: spec.Note, Created: r.now().UTC().Round(0), CreatedBy: r.device(), Status: Pending}
	b, err := q.Marshal()
	if err != nil {
		return Request{}, err
	}
	isDev, err := r.dev(q.Destination)
	if err != nil {
		return Request{}, fmt.Errorf("request %s: check destination: %w", q.Collection, err)
	}
	if isDev {
		return Request{}, fmt.Errorf("request %s to %s: %w", q.Collection, q.Destination, ErrMeshDevice)
	}
	if err := r.st.Update(func(tx *store.Tx) error { return tx.PutReserved(RequestsCollection, q.ID, b) }); err != nil {
		return Request{}, fmt.Errorf("request %s: %w", q.Collection, err)
	}
	return q, nil
}

// Requests returns every request, oldest first. A request denied on any device reads as
// denied, even if a concurrent approval won the record.
func (r *Registry) Requests() ([]Request, error) {
	revs, err := r.revocations()
	if err != nil {
		return nil, err
	}
	recs, err := r.st.List(RequestsCollection, "")
	if err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	out := make([]Request, 0, len(recs))
	for _, rec := range recs {
		q, err := ParseRequest(rec.Value)
		if err != nil || q.ID != rec.Key {
			continue
		}
		if rv, ok := revs["request/"+q.ID]; ok && q.Status != Denied {
			q.Status, q.Decided, q.DecidedBy = Denied, rv.Time, rv.By
		}
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b Request) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Pending returns the requests still waiting for a decision, oldest first.
func (r *Registry) Pending() ([]Request, error) {
	all, err := r.Requests()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(q Request) bool { return q.Status != Pending }), nil
}

// FindRequest returns the request whose id is id, or the only one whose id starts with id
// (at least 4 characters).
func (r *Registry) FindRequest(id string) (Request, error) {
	all, err := r.Requests()
	if err != nil {
		return Request{}, err
	}
	return findByPrefix(all, id, "request", func(q Request) string { return q.ID })
}

// Approve grants a pending request. rules replace the fields the app asked for (nil: grant
// what it asked); a zero expires means now plus the duration asked (or
// DefaultGrantDuration). The grant and the decision are written in one transaction.
func (r *Registry) Approve(id string, rules []FieldRule, expires time.Time) (Grant, error) {
	q, err := r.FindRequest(id)
	if err != nil {
		return Grant{}, err
	}
	if q.Status != Pending {
		return Grant{}, fmt.Errorf("approve request %s: %w (%s)", q.ID, ErrDecided, q.Status)
	}
	if rules == nil {
		rules = q.Fields
	}
	if expires.IsZero() {
		d := q.For
		if d <= 0 {
			d = DefaultGrantDuration
		}
		expires = r.now().Add(d)
	}
	spec := GrantSpec{Collection: q.Collection, Purpose: q.Purpose, Destination: q.Destination, Expires: expires, Fields: rules}
	return r.grant(spec, q.ID, func(tx *store.Tx) error {
		q.Status, q.Decided, q.DecidedBy = Approved, r.now().UTC().Round(0), r.device()
		return r.putRequest(tx, q)
	})
}

// Deny refuses a pending request. The denial is also a revocation record, so it dominates
// an approval made concurrently on another device: the grant that approval created reads as
// revoked once both have synced.
func (r *Registry) Deny(id string) (Request, error) {
	q, err := r.FindRequest(id)
	if err != nil {
		return Request{}, err
	}
	if q.Status != Pending {
		return Request{}, fmt.Errorf("deny request %s: %w (%s)", q.ID, ErrDecided, q.Status)
	}
	rv := revocation{Time: r.now().UTC().Round(0), By: r.device()}
	b, err := json.Marshal(rv)
	if err != nil {
		return Request{}, err
	}
	q.Status, q.Decided, q.DecidedBy = Denied, rv.Time, rv.By
	err = r.st.Update(func(tx *store.Tx) error {
		if err := tx.PutReserved(RevocationsCollection, "request/"+q.ID, b); err != nil {
			return err
		}
		return r.putRequest(tx, q)
	})
	if err != nil {
		return Request{}, fmt.Errorf("deny request %s: %w", q.ID, err)
	}
	return q, nil
}

func (r *Registry) putRequest(tx *store.Tx, q Request) error {
	b, err := q.Marshal()
	if err != nil {
		return err
	}
	return tx.PutReserved(RequestsCollection, q.ID, b)
}

// Wait blocks until the request is decided (on this device or, after sync, on another) or
// ctx ends, and returns the request as it then stands.
func (r *Registry) Wait(ctx context.Context, id string) (Request, error) {
	sub := r.st.Subscribe(0)
	defer sub.Close()
	for {
		q, err := r.FindRequest(id)
		if err != nil {
			return Request{}, err
		}
		if q.Status != Pending {
			return q, nil
		}
		if err := waitRequestChange(ctx, sub); err != nil {
			return q, fmt.Errorf("wait for request %s: %w", q.ID, err)
		}
	}
}

// waitRequestChange returns when a request or revocation record changed (or changes were
// missed), or ctx ends.
func waitRequestChange(ctx context.Context, sub *store.Subscription) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c, ok := <-sub.C:
			if !ok {
				return store.ErrClosed
			}
			if c.Collection == RequestsCollection || c.Collection == RevocationsCollection || sub.Missed() > 0 {
				return nil
			}
		}
	}
}
