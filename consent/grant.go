package consent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of grant fields, in bytes.
const (
	// MaxNameLen bounds collection names (the store's limit) and ids.
	MaxNameLen = 1024
	// MaxPurposeLen bounds a purpose.
	MaxPurposeLen = 128
	// MaxPeerIDLen bounds a destination peer id.
	MaxPeerIDLen = 128
	// MaxGrantSize bounds an encoded grant, request or audit entry.
	MaxGrantSize = 128 << 10
)

// Grant is a person's permission to send one collection, for one purpose, to one
// destination, until Expires, in the anonymized form its field rules describe.
//
// A grant is never edited once written: changing the rules or the expiry means revoking it
// and granting anew. Revoked and RevokedBy are filled in from the revocation records when a
// Registry reads grants.
type Grant struct {
	ID         string `json:"id"`
	Collection string `json:"collection"`
	Purpose    string `json:"purpose"`
	// Destination is the libp2p peer id of the receiver; never a device of the mesh.
	Destination string      `json:"destination"`
	Expires     time.Time   `json:"expires"`
	Fields      []FieldRule `json:"fields"`
	Created     time.Time   `json:"created"`
	// CreatedBy is the device id of the device where the person granted it.
	CreatedBy string `json:"created_by"`
	// Request is the id of the request this grant approved, if any.
	Request string `json:"request,omitempty"`

	Revoked   time.Time `json:"revoked,omitzero"`
	RevokedBy string    `json:"revoked_by,omitempty"`
}

// IsRevoked reports whether the grant was revoked.
func (g *Grant) IsRevoked() bool { return !g.Revoked.IsZero() }

// Active reports whether the grant covers shares at now: not revoked and not expired.
func (g *Grant) Active(now time.Time) bool { return !g.IsRevoked() && now.Before(g.Expires) }

// Validate checks that a grant is complete and well formed.
func (g *Grant) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadGrant, fmt.Sprintf(format, a...))
	}
	if err := checkID(g.ID); err != nil {
		return bad("id: %v", err)
	}
	if err := CheckCollection(g.Collection); err != nil {
		return bad("%v", err)
	}
	if err := CheckPurpose(g.Purpose); err != nil {
		return bad("%v", err)
	}
	if err := CheckPeerID(g.Destination); err != nil {
		return bad("%v", err)
	}
	if g.Created.IsZero() || g.Expires.IsZero() {
		return bad("created and expires must be set")
	}
	if !g.Expires.After(g.Created) {
		return bad("expires (%s) is not after created (%s)", g.Expires.Format(time.RFC3339), g.Created.Format(time.RFC3339))
	}
	if len(g.CreatedBy) > MaxNameLen || len(g.RevokedBy) > MaxNameLen || len(g.Request) > MaxNameLen {
		return bad("created_by, revoked_by or request too long")
	}
	if err := validateRules(g.Fields); err != nil {
		return fmt.Errorf("%w: %w", ErrBadGrant, err)
	}
	return nil
}

// CheckCollection checks a collection name for a grant: not empty, at most MaxNameLen bytes,
// valid UTF-8, and not a reserved collection ("_…": meshsync's own state never leaves).
func CheckCollection(c string) error {
	switch {
	case c == "":
		return fmt.Errorf("empty collection name")
	case len(c) > MaxNameLen || !utf8.ValidString(c):
		return fmt.Errorf("collection name is too long or not UTF-8")
	case strings.HasPrefix(c, "_"):
		return fmt.Errorf("collection %q is reserved to meshsync and cannot be shared", c)
	}
	return nil
}

// CheckPurpose checks a purpose: 1 to MaxPurposeLen bytes of printable UTF-8.
func CheckPurpose(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty purpose")
	case len(p) > MaxPurposeLen || !utf8.ValidString(p):
		return fmt.Errorf("purpose is longer than %d bytes or not UTF-8", MaxPurposeLen)
	case strings.ContainsFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }):
		return fmt.Errorf("purpose %q holds a non-printable character", p)
	}
	return nil
}

// CheckPeerID checks the shape of a libp2p peer id (base58btc or a base32 CID: letters and
// digits, 32 to MaxPeerIDLen of them). The node decodes it properly; this keeps garbage
// out of grants.
func CheckPeerID(p string) error {
	if len(p) < 32 || len(p) > MaxPeerIDLen {
		return fmt.Errorf("destination %q is not a peer id (want 32 to %d characters)", p, MaxPeerIDLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return fmt.Errorf("destination %q is not a peer id (letters and digits only)", p)
		}
	}
	return nil
}

func checkID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("want 1 to 64 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '-') {
			return fmt.Errorf("%q: want lower-case letters, digits and '-'", id)
		}
	}
	return nil
}

// Marshal encodes the grant as canonical JSON (times in UTC).
func (g Grant) Marshal() ([]byte, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	g.normalize()
	return encodeJSON(g)
}

func (g *Grant) normalize() {
	g.Expires = g.Expires.UTC().Round(0)
	g.Created = g.Created.UTC().Round(0)
	g.Revoked = g.Revoked.UTC().Round(0)
	if g.Fields == nil {
		g.Fields = []FieldRule{}
	}
}

// ParseGrant decodes and validates a grant encoded by Marshal. Unknown fields are refused.
func ParseGrant(b []byte) (Grant, error) {
	var g Grant
	if err := strictUnmarshal(b, &g); err != nil {
		return Grant{}, fmt.Errorf("%w: %v", ErrBadGrant, err)
	}
	if err := g.Validate(); err != nil {
		return Grant{}, err
	}
	g.normalize()
	return g, nil
}

// strictUnmarshal decodes one JSON value into v, refusing unknown fields, trailing data and
// inputs over MaxGrantSize.
func strictUnmarshal(b []byte, v any) error {
	if len(b) > MaxGrantSize {
		return fmt.Errorf("%d bytes: %w (max %d)", len(b), ErrTooLarge, MaxGrantSize)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data")
	}
	if _, err := d.Token(); err == nil {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// FieldsSent returns the rules that send something (all but drop) in the CLI syntax,
// sorted: what receipts and the audit log list as the fields sent.
func FieldsSent(rules []FieldRule) []string {
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		if r.Action != Drop {
			out = append(out, r.String())
		}
	}
	slices.Sort(out)
	return out
}
