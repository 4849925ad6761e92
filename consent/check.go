package consent

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// DeniedError says why no grant covers a share. Unwrap gives the sentinel (ErrNoGrant,
// ErrWrongDestination, ErrWrongPurpose, ErrRevoked, ErrExpired) for errors.Is.
type DeniedError struct {
	Collection  string
	Purpose     string
	Destination string
	// Reason is one of the sentinel errors.
	Reason error
	// GrantID names the revoked or expired grant that came closest, if any.
	GrantID string
	// Detail adds what the person has granted instead (other purposes, a date), if anything.
	Detail string
}

// Error says what is missing, e.g. `no grant covers notes for purpose "research" to peer
// 12D3…: grant revoked (grant 3f2a…, revoked 2026-03-04T10:00:00Z)`.
func (e *DeniedError) Error() string {
	s := fmt.Sprintf("no grant covers %s for purpose %q to peer %s: %v", e.Collection, e.Purpose, e.Destination, e.Reason)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Unwrap returns the sentinel reason.
func (e *DeniedError) Unwrap() error { return e.Reason }

// Hint returns the command that would grant the share, for the CLI to print after the error.
func (e *DeniedError) Hint() string {
	return fmt.Sprintf("grant one with `meshsync consent grant %s --purpose %s --to %s --expires 30d --field NAME=keep|drop|redact|pseudonymize|generalize:ARG ...`",
		shellQuote(e.Collection), shellQuote(e.Purpose), e.Destination)
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Check returns the grant that covers sending collection to destination for purpose at now,
// or a *DeniedError. Deny by default: a share needs a grant that names exactly this
// collection, destination and purpose, is not revoked and has not expired (now is before
// Expires). When several grants cover it, the most recently created wins (ties: the
// smallest id), as the person's latest decision.
//
// The reason names the first thing missing, in this order: collection, destination,
// purpose, revocation, expiry.
func Check(grants []Grant, collection, purpose, destination string, now time.Time) (Grant, error) {
	deny := func(reason error, id, detail string) (Grant, error) {
		return Grant{}, &DeniedError{Collection: collection, Purpose: purpose, Destination: destination, Reason: reason, GrantID: id, Detail: detail}
	}
	var sameColl, sameDest, samePurpose, live []Grant
	for _, g := range grants {
		if g.Collection != collection {
			continue
		}
		sameColl = append(sameColl, g)
		if g.Destination != destination {
			continue
		}
		sameDest = append(sameDest, g)
		if g.Purpose != purpose {
			continue
		}
		samePurpose = append(samePurpose, g)
		if g.IsRevoked() {
			continue
		}
		live = append(live, g)
	}
	switch {
	case len(sameColl) == 0:
		return deny(ErrNoGrant, "", "")
	case len(sameDest) == 0:
		return deny(ErrWrongDestination, "", fmt.Sprintf("granted to %d other peer(s)", countDistinct(sameColl, func(g Grant) string { return g.Destination })))
	case len(samePurpose) == 0:
		return deny(ErrWrongPurpose, "", "granted to this peer for: "+strings.Join(distinct(sameDest, func(g Grant) string { return g.Purpose }), ", "))
	case len(live) == 0:
		g := newest(samePurpose, func(g Grant) time.Time { return g.Revoked })
		return deny(ErrRevoked, g.ID, fmt.Sprintf("grant %s, revoked %s", g.ID, g.Revoked.UTC().Format(time.RFC3339)))
	}
	var valid []Grant
	for _, g := range live {
		if now.Before(g.Expires) {
			valid = append(valid, g)
		}
	}
	if len(valid) == 0 {
		g := newest(live, func(g Grant) time.Time { return g.Expires })
		return deny(ErrExpired, g.ID, fmt.Sprintf("grant %s, expired %s", g.ID, g.Expires.UTC().Format(time.RFC3339)))
	}
	return newest(valid, func(g Grant) time.Time { return g.Created }), nil
}

// newest returns the grant with the latest time by key, ties broken by the smallest id.
func newest(gs []Grant, key func(Grant) time.Time) Grant {
	best := gs[0]
	for _, g := range gs[1:] {
		if c := key(g).Compare(key(best)); c > 0 || c == 0 && g.ID < best.ID {
			best = g
		}
	}
	return best
}

func distinct(gs []Grant, f func(Grant) string) []string {
	var out []string
	for _, g := range gs {
		out = append(out, fmt.Sprintf("%q", f(g)))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func countDistinct(gs []Grant, f func(Grant) string) int { return len(distinct(gs, f)) }
