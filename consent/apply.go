package consent

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// MaxDocSize is the largest document Apply accepts (the store's value limit).
const MaxDocSize = 1 << 20

// MinKeySize is the shortest consent key accepted for pseudonyms.
const MinKeySize = 32

// pseudonymLabel prefixes the HKDF info of a destination's pseudonym key.
const pseudonymLabel = "meshsync/v1/consent/pseudonym/"

// pseudonymEncoding writes pseudonyms as lower-case base32 without padding.
var pseudonymEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// pseudonymBytes is how much of the HMAC a pseudonym keeps: 120 bits, 24 characters.
const pseudonymBytes = 15

// Apply returns the anonymized form of doc under the grant's field rules, as canonical JSON
// (sorted keys, no spaces). doc must be a JSON object; the record's key and collection are
// not part of it and never appear in the result. consentKey (at least MinKeySize bytes,
// the same on every device of the mesh) is needed only when a rule pseudonymizes.
//
// Apply is a pure function; to anonymize many documents under one grant, NewAnonymizer
// once and call its Apply.
func Apply(g Grant, doc []byte, consentKey []byte) ([]byte, error) {
	a, err := NewAnonymizer(g, consentKey)
	if err != nil {
		return nil, err
	}
	return a.Apply(doc)
}

// Anonymizer applies one grant's field rules. It is immutable and safe for concurrent use.
type Anonymizer struct {
	root   *ruleNode
	key    []byte // the destination's pseudonym key; nil when no rule pseudonymizes
	fields []string
}

// ruleNode is one segment of the rule paths.
type ruleNode struct {
	rule     *FieldRule
	gen      *generalizer
	children map[string]*ruleNode
}

// NewAnonymizer compiles the grant's rules and derives the destination's pseudonym key.
func NewAnonymizer(g Grant, consentKey []byte) (*Anonymizer, error) {
	if err := validateRules(g.Fields); err != nil {
		return nil, err
	}
	a := &Anonymizer{root: &ruleNode{}, fields: FieldsSent(g.Fields)}
	for i := range g.Fields {
		r := g.Fields[i]
		n := a.root
		for _, seg := range strings.Split(r.Path, ".") {
			if n.children == nil {
				n.children = map[string]*ruleNode{}
			}
			c := n.children[seg]
			if c == nil {
				c = &ruleNode{}
				n.children[seg] = c
			}
			n = c
		}
		n.rule = &r
		if r.Action == Generalize {
			n.gen, _ = parseGeneralizer(r.Arg) // validated above
		}
		if r.Action == Pseudonymize && a.key == nil {
			k, err := PseudonymKey(consentKey, g.Destination)
			if err != nil {
				return nil, err
			}
			a.key = k
		}
	}
	return a, nil
}

// PseudonymKey derives the key of one destination's pseudonyms from the consent key:
// HKDF-SHA256 with the destination peer id in the info. Two destinations get unrelated keys,
// so they cannot join their data on pseudonyms.
func PseudonymKey(consentKey []byte, destination string) ([]byte, error) {
	if len(consentKey) < MinKeySize {
		return nil, ErrNoKey
	}
	k, err := hkdf.Key(sha256.New, consentKey, nil, pseudonymLabel+destination, 32)
	if err != nil {
		return nil, fmt.Errorf("derive pseudonym key: %w", err)
	}
	return k, nil
}

// Pseudonym returns the pseudonym of a JSON value (given in canonical form) under a key from
// PseudonymKey: 24 lower-case base32 characters (120 bits of HMAC-SHA256).
func Pseudonym(key, canonicalValue []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(canonicalValue)
	return pseudonymEncoding.EncodeToString(m.Sum(nil)[:pseudonymBytes])
}

// Fields returns the rules that send something (all but drop), in the CLI syntax, sorted:
// what receipts and the audit log call "fields sent".
func (a *Anonymizer) Fields() []string { return append([]string(nil), a.fields...) }

// Apply anonymizes one document; see the package function Apply.
func (a *Anonymizer) Apply(doc []byte) ([]byte, error) {
	if len(doc) > MaxDocSize {
		return nil, fmt.Errorf("apply grant: document of %d bytes: %w (max %d)", len(doc), ErrTooLarge, MaxDocSize)
	}
	v, err := decodeJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("apply grant: %w: %v", ErrNotObject, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("apply grant: %w", ErrNotObject)
	}
	return encodeJSON(a.object(m, a.root, nil, nil))
}

// object applies the children of n to the fields of m; inherited is the rule of the nearest
// ancestor that has one (nil: none).
func (a *Anonymizer) object(m map[string]any, n *ruleNode, inherited *FieldRule, igen *generalizer) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		var child *ruleNode
		if n != nil {
			child = n.children[k]
		}
		r, gen := inherited, igen
		if child != nil && child.rule != nil {
			r, gen = child.rule, child.gen
		}
		if child == nil && r != nil && r.Action == Generalize {
			continue // a name no rule gives is not sent under generalize (see FieldRule)
		}
		if val, ok := a.value(v, child, r, gen); ok {
			out[k] = val
		}
	}
	return out
}

// value applies rule r (nil: no rule covers it) to v, whose own rule node is n (nil: no
// rule names it or anything below it). It reports false when the value must be left out.
func (a *Anonymizer) value(v any, n *ruleNode, r *FieldRule, gen *generalizer) (any, bool) {
	deeper := n != nil && len(n.children) > 0
	if arr, ok := v.([]any); ok {
		if !deeper && r != nil && r.Action == Redact {
			return RedactedMarker, true
		}
		if !deeper && (r == nil || r.Action == Drop) {
			return nil, false
		}
		if !deeper && r.Action == Keep {
			return v, true
		}
		out := make([]any, 0, len(arr))
		for _, e := range arr {
			if ev, ok := a.value(e, n, r, gen); ok {
				out = append(out, ev)
			}
		}
		if r == nil && len(out) == 0 {
			return nil, false
		}
		return out, true
	}
	if obj, ok := v.(map[string]any); ok && deeper {
		res := a.object(obj, n, r, gen)
		if r == nil && len(res) == 0 {
			return nil, false
		}
		return res, true
	}
	if r == nil {
		return nil, false
	}
	switch r.Action {
	case Keep:
		return v, true
	case Redact:
		return RedactedMarker, true
	case Pseudonymize:
		if v == nil {
			return nil, true
		}
		b, err := encodeJSON(v)
		if err != nil {
			return nil, false
		}
		return Pseudonym(a.key, b), true
	case Generalize:
		return generalize(gen, v)
	}
	return nil, false // Drop, and anything unknown
}

// generalize coarsens v; arrays are generalized element by element. An object here has no
// key that a rule names, so it is sent empty: its keys may be the data (see FieldRule).
func generalize(g *generalizer, v any) (any, bool) {
	switch v := v.(type) {
	case nil:
		return nil, true
	case map[string]any:
		return map[string]any{}, true
	case []any:
		out := make([]any, 0, len(v))
		for _, e := range v {
			if ge, ok := generalize(g, e); ok {
				out = append(out, ge)
			}
		}
		return out, true
	case json.Number:
		if g.kind != genStep {
			return nil, false
		}
		return floorToStep(string(v), g.step, g.decimals)
	case string:
		switch g.kind {
		case genTime:
			return truncateTime(v, g.unit)
		case genPrefix:
			return runePrefix(v, g.prefix), true
		}
	}
	return nil, false
}

// maxNumberLen and maxExponent bound the numbers generalize does arithmetic on; others are
// dropped rather than risk a huge computation.
const (
	maxNumberLen = 64
	maxExponent  = 400
)

func floorToStep(num string, step *big.Rat, decimals int) (any, bool) {
	if len(num) > maxNumberLen {
		return nil, false
	}
	if i := strings.IndexAny(num, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(num[i+1:], "+"))
		if err != nil || e > maxExponent || e < -maxExponent {
			return nil, false
		}
	}
	x, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil, false
	}
	q := new(big.Rat).Quo(x, step)
	fl := new(big.Int).Div(q.Num(), q.Denom()) // Euclidean division: floor, as Denom > 0
	res := new(big.Rat).Mul(new(big.Rat).SetInt(fl), step)
	return json.Number(res.FloatString(decimals)), true
}

func truncateTime(s, unit string) (any, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		t = t.UTC()
		switch unit {
		case "minute":
			t = t.Truncate(time.Minute)
		case "hour":
			t = t.Truncate(time.Hour)
		case "day":
			t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		case "month":
			t = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		case "year":
			t = time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
		}
		if t.Year() < 0 || t.Year() > 9999 {
			return nil, false
		}
		return t.Format(time.RFC3339), true
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		switch unit {
		case "month":
			t = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		case "year":
			t = time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
		}
		return t.Format(time.DateOnly), true
	}
	return nil, false
}

func runePrefix(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// decodeJSON parses one JSON value, numbers kept as json.Number.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the value")
	}
	return v, nil
}

// encodeJSON writes v with sorted keys, no spaces and no HTML escaping.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
