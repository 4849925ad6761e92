package consent

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Action is what a field rule does with a field's value.
type Action string

// The actions of a field rule.
const (
	// Keep sends the value as it is (for an object or array, the whole subtree).
	Keep Action = "keep"
	// Drop removes the field. A field without a rule is dropped too.
	Drop Action = "drop"
	// Redact replaces the whole value (objects and arrays included) by RedactedMarker, so
	// the destination learns that the field exists, nothing else.
	Redact Action = "redact"
	// Pseudonymize replaces each value (each element of an array) by a keyed hash that is
	// stable for one destination and unlinkable across destinations.
	Pseudonymize Action = "pseudonymize"
	// Generalize coarsens each scalar value: see FieldRule for the arguments.
	Generalize Action = "generalize"
)

// RedactedMarker is the value that replaces a redacted field.
const RedactedMarker = "[redacted]"

// Limits of field rules, checked before anything is allocated.
const (
	// MaxPathLen is the longest field path, in bytes.
	MaxPathLen = 256
	// MaxPathDepth is the largest number of segments in a field path.
	MaxPathDepth = 32
	// MaxRules is the largest number of field rules in one grant.
	MaxRules = 256
	// MaxRuleLen is the longest rule in its text form, in bytes.
	MaxRuleLen = MaxPathLen + 64
	// MaxPrefix is the largest N of generalize:prefixN.
	MaxPrefix = 1024
	// MaxDecimals is the largest N of generalize:Ndp and the most decimals of a step.
	MaxDecimals = 15
)

// FieldRule says what happens to one field of a shared document.
//
// Path is dotted and reaches into nested objects ("address.city"). Arrays are transparent:
// a rule applies to each element, so "items.price" covers the price of every item. The most
// specific rule wins: with "address=keep" and "address.street=drop" the street is dropped
// and the rest of the address kept. A field that no rule (and no ancestor's rule) covers is
// dropped. Field names that contain a dot cannot be named by a path; only an ancestor's rule
// covers them.
//
// Arg is set for Generalize only:
//   - a positive decimal step ("10", "0.5"): numbers are floored to a multiple of the step
//     (37 → 30 with step 10), with as many decimals as the step has;
//   - "Ndp", N in 0..15: numbers (coordinates) are floored to N decimals ("2dp": 48.8566 →
//     48.85), a grid cell of about 1 km at N=2;
//   - "minute", "hour", "day", "month", "year": RFC 3339 times are converted to UTC (the
//     offset is location data) and truncated ("day": 2026-03-04T17:20:00+01:00 →
//     2026-03-04T00:00:00Z); dates "2006-01-02" are truncated to month and year;
//   - "prefixN", N in 1..1024: strings keep their first N characters.
//
// A value the generalizer cannot handle (a string under a step, a number under a time unit,
// a bool) is dropped, never sent as it is.
//
// Generalize treats an object's keys like its values: it never sends one as it is. Inside a
// generalized field, a key that no rule path names is dropped with its value, because a key
// can be the sensitive datum itself ({"alice@example.com": 3}); an object whose keys are
// all dropped is sent as {}. To send some fields of a generalized object, name them:
// "geo.lat=generalize:2dp" and "geo.lon=generalize:2dp" send {"geo":{"lat":48.85,"lon":2.35}}.
type FieldRule struct {
	Path   string
	Action Action
	Arg    string
}

// String returns the rule in the CLI syntax, NAME=ACTION or NAME=generalize:ARG.
func (r FieldRule) String() string {
	if r.Arg != "" {
		return r.Path + "=" + string(r.Action) + ":" + r.Arg
	}
	return r.Path + "=" + string(r.Action)
}

// MarshalText encodes the rule in its CLI syntax; grants store their rules this way.
func (r FieldRule) MarshalText() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return []byte(r.String()), nil
}

// UnmarshalText parses the CLI syntax (see ParseRule).
func (r *FieldRule) UnmarshalText(b []byte) error {
	p, err := ParseRule(string(b))
	if err != nil {
		return err
	}
	*r = p
	return nil
}

// ParseRule parses one rule in the CLI syntax of `meshsync consent grant --field`:
// NAME=keep, NAME=drop, NAME=redact, NAME=pseudonymize or NAME=generalize:ARG.
func ParseRule(s string) (FieldRule, error) {
	if len(s) > MaxRuleLen {
		return FieldRule{}, fmt.Errorf("field rule of %d bytes: %w (max %d)", len(s), ErrBadRule, MaxRuleLen)
	}
	path, act, ok := strings.Cut(s, "=")
	if !ok {
		return FieldRule{}, fmt.Errorf("field rule %q: %w: want NAME=keep|drop|redact|pseudonymize|generalize:ARG", s, ErrBadRule)
	}
	r := FieldRule{Path: path, Action: Action(act)}
	if a, arg, ok := strings.Cut(act, ":"); ok {
		r.Action, r.Arg = Action(a), arg
		if r.Arg == "" {
			return FieldRule{}, fmt.Errorf("field rule %q: %w: empty argument after %q", s, ErrBadRule, a+":")
		}
	}
	if err := r.Validate(); err != nil {
		return FieldRule{}, err
	}
	return r, nil
}

// ParseRules parses several rules and checks that no path has two rules.
func ParseRules(ss []string) ([]FieldRule, error) {
	if len(ss) > MaxRules {
		return nil, fmt.Errorf("%d field rules: %w (max %d)", len(ss), ErrBadRule, MaxRules)
	}
	out := make([]FieldRule, 0, len(ss))
	for _, s := range ss {
		r, err := ParseRule(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := validateRules(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Validate checks the path, the action and its argument.
func (r FieldRule) Validate() error {
	if err := validatePath(r.Path); err != nil {
		return fmt.Errorf("field rule %q: %w", r.String(), err)
	}
	switch r.Action {
	case Keep, Drop, Redact, Pseudonymize:
		if r.Arg != "" {
			return fmt.Errorf("field rule %q: %w: %s takes no argument", r.String(), ErrBadRule, r.Action)
		}
	case Generalize:
		if _, err := parseGeneralizer(r.Arg); err != nil {
			return fmt.Errorf("field rule %q: %w", r.String(), err)
		}
	case "":
		return fmt.Errorf("field rule %q: %w: missing action (keep, drop, redact, pseudonymize or generalize:ARG)", r.String(), ErrBadRule)
	default:
		return fmt.Errorf("field rule %q: %w: unknown action %q (want keep, drop, redact, pseudonymize or generalize:ARG)", r.String(), ErrBadRule, r.Action)
	}
	return nil
}

func validatePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty field name", ErrBadRule)
	case len(p) > MaxPathLen:
		return fmt.Errorf("%w: field path of %d bytes (max %d)", ErrBadRule, len(p), MaxPathLen)
	case !utf8.ValidString(p):
		return fmt.Errorf("%w: field path is not valid UTF-8", ErrBadRule)
	case strings.ContainsAny(p, "=:"):
		return fmt.Errorf("%w: field path may not contain '=' or ':'", ErrBadRule)
	case strings.ContainsFunc(p, unicode.IsControl):
		return fmt.Errorf("%w: field path holds a control character", ErrBadRule)
	}
	segs := strings.Split(p, ".")
	if len(segs) > MaxPathDepth {
		return fmt.Errorf("%w: field path of %d segments (max %d)", ErrBadRule, len(segs), MaxPathDepth)
	}
	for _, s := range segs {
		if s == "" {
			return fmt.Errorf("%w: empty segment in field path %q", ErrBadRule, p)
		}
	}
	return nil
}

func validateRules(rules []FieldRule) error {
	if len(rules) > MaxRules {
		return fmt.Errorf("%d field rules: %w (max %d)", len(rules), ErrBadRule, MaxRules)
	}
	seen := make(map[string]bool, len(rules))
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			return err
		}
		if seen[r.Path] {
			return fmt.Errorf("field %q: %w: two rules for one field", r.Path, ErrBadRule)
		}
		seen[r.Path] = true
	}
	return nil
}

// generalizer is a parsed generalize argument.
type generalizer struct {
	kind     genKind
	step     *big.Rat // genStep
	decimals int      // genStep: decimals of the output
	unit     string   // genTime
	prefix   int      // genPrefix
}

type genKind int

const (
	genStep genKind = iota + 1
	genTime
	genPrefix
)

const genArgs = "a step (10, 0.5), Ndp, minute, hour, day, month, year or prefixN"

func parseGeneralizer(arg string) (*generalizer, error) {
	switch arg {
	case "minute", "hour", "day", "month", "year":
		return &generalizer{kind: genTime, unit: arg}, nil
	case "":
		return nil, fmt.Errorf("%w: generalize needs an argument: %s", ErrBadRule, genArgs)
	}
	if n, ok := strings.CutPrefix(arg, "prefix"); ok {
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 || v > MaxPrefix || strconv.Itoa(v) != n {
			return nil, fmt.Errorf("%w: generalize:%s: want prefixN with N in 1..%d", ErrBadRule, arg, MaxPrefix)
		}
		return &generalizer{kind: genPrefix, prefix: v}, nil
	}
	if n, ok := strings.CutSuffix(arg, "dp"); ok {
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 || v > MaxDecimals || strconv.Itoa(v) != n {
			return nil, fmt.Errorf("%w: generalize:%s: want Ndp with N in 0..%d", ErrBadRule, arg, MaxDecimals)
		}
		step := new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(v)), nil))
		return &generalizer{kind: genStep, step: step, decimals: v}, nil
	}
	// A plain positive decimal: digits, optionally a point and more digits.
	intPart, frac, hasPoint := strings.Cut(arg, ".")
	if intPart == "" || !allDigits(intPart) || (hasPoint && (frac == "" || !allDigits(frac))) || len(intPart) > 15 || len(frac) > MaxDecimals {
		return nil, fmt.Errorf("%w: generalize:%s: want %s", ErrBadRule, arg, genArgs)
	}
	step, ok := new(big.Rat).SetString(arg)
	if !ok || step.Sign() <= 0 {
		return nil, fmt.Errorf("%w: generalize:%s: the step must be positive", ErrBadRule, arg)
	}
	return &generalizer{kind: genStep, step: step, decimals: len(frac)}, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
