package consent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// Reserved collections where the registry keeps its records. Like every reserved
// collection they are encrypted and synced to all the person's devices.
const (
	// GrantsCollection holds one record per grant, key = grant id. Grant records are written
	// once and never changed.
	GrantsCollection = "_grants"
	// RevocationsCollection holds the person's "no" decisions: key "grant/ID" revokes a
	// grant, key "request/ID" denies a request. Records are written once and never deleted,
	// so a revocation, once synced, dominates every copy of the grant.
	RevocationsCollection = "_consent_revocations"
	// RequestsCollection holds one record per request for a grant, key = request id.
	RequestsCollection = "_consent_requests"
	// AuditCollection holds one record per share or refused attempt, keys in time order.
	AuditCollection = "_audit"
)

// DevicesCollection is the node's device list, read by the default IsMeshDevice (records
// with a "peer" field).
const DevicesCollection = store.DevicesCollection

// DefaultGrantDuration is how long an approved request's grant lasts when neither the
// request nor the approval names an expiry.
const DefaultGrantDuration = 30 * 24 * time.Hour

// Options configure a Registry. A nil *Options, and every zero field, means the default.
type Options struct {
	// Now is the wall clock. Default time.Now.
	Now func() time.Time
	// Rand is the source of ids. Default crypto/rand.
	Rand io.Reader
	// IsMeshDevice reports whether a peer id belongs to a device of the mesh, which may not
	// be a share destination. Default: look the peer id up in DevicesCollection (removed
	// devices included).
	IsMeshDevice func(peerID string) (bool, error)
}

// Registry keeps grants, requests and the audit log as records of a store. Its methods are
// safe for concurrent use (the store serializes writes).
type Registry struct {
	st  *store.Store
	key []byte
	now func() time.Time
	rnd io.Reader
	dev func(string) (bool, error)

	mu        sync.Mutex
	lastAudit time.Time // audit times strictly increase on one device, so keys sort in order
}

// New returns a registry over st. consentKey is the key of pseudonyms (see PseudonymKey):
// at least MinKeySize bytes, the same on every device of the mesh and stable across key
// epochs, or pseudonyms change and stop being joinable for the destination.
func New(st *store.Store, consentKey []byte, opts *Options) (*Registry, error) {
	if len(consentKey) < MinKeySize {
		return nil, ErrNoKey
	}
	r := &Registry{st: st, key: append([]byte(nil), consentKey...), now: time.Now, rnd: rand.Reader}
	if opts != nil {
		if opts.Now != nil {
			r.now = opts.Now
		}
		if opts.Rand != nil {
			r.rnd = opts.Rand
		}
		r.dev = opts.IsMeshDevice
	}
	if r.dev == nil {
		r.dev = r.deviceListed
	}
	return r, nil
}

func (r *Registry) deviceListed(peerID string) (bool, error) {
	recs, err := r.st.List(DevicesCollection, "")
	if err != nil {
		return false, err
	}
	for _, rec := range recs {
		var d struct {
			Peer string `json:"peer"`
		}
		if json.Unmarshal(rec.Value, &d) == nil && d.Peer == peerID {
			return true, nil
		}
	}
	return false, nil
}

func (r *Registry) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r.rnd, b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func (r *Registry) device() string { return string(r.st.Device().ID) }

// GrantSpec is what the person grants (see Grant for the fields).
type GrantSpec struct {
	Collection  string
	Purpose     string
	Destination string
	Expires     time.Time
	Fields      []FieldRule
}

// Grant records a new grant and returns it. It refuses a destination that is a device of
// the mesh, an expiry not in the future, a reserved collection and invalid rules. A grant
// without rules is valid and sends empty documents.
func (r *Registry) Grant(spec GrantSpec) (Grant, error) {
	return r.grant(spec, "", nil)
}

func (r *Registry) grant(spec GrantSpec, request string, inTx func(*store.Tx) error) (Grant, error) {
	id, err := r.newID()
	if err != nil {
		return Grant{}, err
	}
	now := r.now().UTC().Round(0)
	g := Grant{ID: id, Collection: spec.Collection, Purpose: spec.Purpose, Destination: spec.Destination,
		Expires: spec.Expires.UTC().Round(0), Fields: slices.Clone(spec.Fields), Created: now, CreatedBy: r.device(), Request: request}
	if !g.Expires.After(now) {
		return Grant{}, fmt.Errorf("grant %s: %w: expiry %s is not in the future", g.Collection, ErrBadGrant, g.Expires.Format(time.RFC3339))
	}
	b, err := g.Marshal()
	if err != nil {
		return Grant{}, fmt.Errorf("grant %s: %w", g.Collection, err)
	}
	isDev, err := r.dev(g.Destination)
	if err != nil {
		return Grant{}, fmt.Errorf("grant %s: check destination: %w", g.Collection, err)
	}
	if isDev {
		return Grant{}, fmt.Errorf("grant %s to %s: %w: devices of the mesh sync, they are not share destinations", g.Collection, g.Destination, ErrMeshDevice)
	}
	err = r.st.Update(func(tx *store.Tx) error {
		if inTx != nil {
			if err := inTx(tx); err != nil {
				return err
			}
		}
		return tx.PutReserved(GrantsCollection, g.ID, b)
	})
	if err != nil {
		return Grant{}, fmt.Errorf("grant %s: %w", g.Collection, err)
	}
	return g, nil
}

// revocation is the value of a RevocationsCollection record.
type revocation struct {
	Time time.Time `json:"time"`
	By   string    `json:"by"`
}

// Revoke revokes the grant whose id is id or starts with id (at least 4 characters). Every
// later Check on a device that has seen the revocation refuses the grant. Revoking a
// revoked grant changes nothing and is not an error.
func (r *Registry) Revoke(id string) (Grant, error) {
	g, err := r.FindGrant(id)
	if err != nil {
		return Grant{}, err
	}
	if g.IsRevoked() {
		return g, nil
	}
	rv := revocation{Time: r.now().UTC().Round(0), By: r.device()}
	b, err := json.Marshal(rv)
	if err != nil {
		return Grant{}, err
	}
	if err := r.st.Update(func(tx *store.Tx) error {
		return tx.PutReserved(RevocationsCollection, "grant/"+g.ID, b)
	}); err != nil {
		return Grant{}, fmt.Errorf("revoke %s: %w", g.ID, err)
	}
	g.Revoked, g.RevokedBy = rv.Time, rv.By
	return g, nil
}

// revocations reads every revocation record, by key.
func (r *Registry) revocations() (map[string]revocation, error) {
	recs, err := r.st.List(RevocationsCollection, "")
	if err != nil {
		return nil, fmt.Errorf("read revocations: %w", err)
	}
	out := make(map[string]revocation, len(recs))
	for _, rec := range recs {
		var rv revocation
		if err := json.Unmarshal(rec.Value, &rv); err != nil || rv.Time.IsZero() {
			// An unreadable revocation still revokes: deny by default.
			rv = revocation{Time: time.Unix(0, 0).UTC(), By: "unknown"}
		}
		out[rec.Key] = rv
	}
	return out, nil
}

// Grants returns every grant, revoked and expired ones included, oldest first, with Revoked
// filled in. A grant revoked, or whose request was denied, on any device that has synced
// here reads as revoked. Records that do not decode are skipped.
func (r *Registry) Grants() ([]Grant, error) {
	revs, err := r.revocations()
	if err != nil {
		return nil, err
	}
	recs, err := r.st.List(GrantsCollection, "")
	if err != nil {
		return nil, fmt.Errorf("read grants: %w", err)
	}
	out := make([]Grant, 0, len(recs))
	for _, rec := range recs {
		g, err := ParseGrant(rec.Value)
		if err != nil || g.ID != rec.Key {
			continue // a grant this version cannot read grants nothing
		}
		rv, ok := revs["grant/"+g.ID]
		if !ok && g.Request != "" {
			rv, ok = revs["request/"+g.Request]
		}
		if ok && (g.Revoked.IsZero() || rv.Time.Before(g.Revoked)) {
			g.Revoked, g.RevokedBy = rv.Time, rv.By
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Grant) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// FindGrant returns the grant whose id is id, or the only one whose id starts with id (at
// least 4 characters).
func (r *Registry) FindGrant(id string) (Grant, error) {
	all, err := r.Grants()
	if err != nil {
		return Grant{}, err
	}
	return findByPrefix(all, id, "grant", func(g Grant) string { return g.ID })
}

func findByPrefix[T any](all []T, id, what string, key func(T) string) (T, error) {
	var zero T
	var found []T
	for _, x := range all {
		k := key(x)
		if k == id {
			return x, nil
		}
		if len(id) >= 4 && strings.HasPrefix(k, strings.ToLower(id)) {
			found = append(found, x)
		}
	}
	switch len(found) {
	case 0:
		return zero, fmt.Errorf("%s %s: %w", what, id, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return zero, fmt.Errorf("%s %s: %w: give more characters", what, id, ErrAmbiguous)
}

// Check is the package function Check over this registry's grants at the registry's clock.
// It does not audit; Authorize does.
func (r *Registry) Check(collection, purpose, destination string) (Grant, error) {
	gs, err := r.Grants()
	if err != nil {
		return Grant{}, err
	}
	return Check(gs, collection, purpose, destination, r.now())
}

// Authorize is what the share protocol calls before it sends anything: it returns the grant
// that covers the share, or writes a refusal to the audit log and returns the *DeniedError
// (or ErrMeshDevice, also audited). Call it again at the start of every session: a
// revocation synced in between takes effect there.
func (r *Registry) Authorize(collection, purpose, destination string) (Grant, error) {
	g, err := r.Check(collection, purpose, destination)
	if err == nil {
		var isDev bool
		isDev, err = r.dev(destination)
		if err == nil && isDev {
			err = fmt.Errorf("share %s to %s: %w", collection, destination, ErrMeshDevice)
		}
	}
	if err != nil {
		var de *DeniedError
		if !errors.As(err, &de) && !errors.Is(err, ErrMeshDevice) {
			return Grant{}, err // the store failed: nothing to audit
		}
		if _, aerr := r.RecordRefusal(collection, purpose, destination, err); aerr != nil {
			return Grant{}, errors.Join(err, aerr)
		}
		return Grant{}, err
	}
	return g, nil
}

// Documents reads the grant's collection and returns every live JSON record anonymized by
// the grant's rules, in key order, without record keys. Raw (non-JSON) records and documents
// that are not objects are never sent and are counted in skipped.
func (r *Registry) Documents(g Grant) (docs [][]byte, skipped int, err error) {
	a, err := NewAnonymizer(g, r.key)
	if err != nil {
		return nil, 0, err
	}
	recs, err := r.st.List(g.Collection, "")
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", g.Collection, err)
	}
	for _, rec := range recs {
		if rec.Kind != resolve.KindJSON {
			skipped++
			continue
		}
		d, err := a.Apply(rec.Value)
		if err != nil {
			skipped++
			continue
		}
		docs = append(docs, d)
	}
	return docs, skipped, nil
}
