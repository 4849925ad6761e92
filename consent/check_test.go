package consent

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	base := testGrant(t, "a=keep")
	with := func(f func(*Grant)) Grant {
		g := base
		f(&g)
		return g
	}
	now := t0.Add(time.Hour)
	otherColl := with(func(g *Grant) { g.Collection = "photos" })
	otherDest := with(func(g *Grant) { g.Destination = peerB })
	otherPurpose := with(func(g *Grant) { g.Purpose = "ads" })
	revoked := with(func(g *Grant) { g.Revoked = t0.Add(30 * time.Minute) })
	expired := with(func(g *Grant) { g.Expires = now })

	tests := []struct {
		name   string
		grants []Grant
		want   error
		detail string
	}{
		{"no grants at all", nil, ErrNoGrant, ""},
		{"grant for another collection", []Grant{otherColl}, ErrNoGrant, ""},
		{"grant to another peer", []Grant{otherDest}, ErrWrongDestination, "1 other peer"},
		{"grant for another purpose", []Grant{otherPurpose}, ErrWrongPurpose, `"ads"`},
		{"revoked grant", []Grant{revoked}, ErrRevoked, "revoked 2026-03-04T12:30:00Z"},
		{"expired grant (expiry is exclusive)", []Grant{expired}, ErrExpired, "expired 2026-03-04T13:00:00Z"},
		{"revoked and expired: revoked wins", []Grant{with(func(g *Grant) { g.Revoked = t0; g.Expires = now })}, ErrRevoked, ""},
		{"valid grant", []Grant{base}, nil, ""},
		{"valid among refusals", []Grant{otherColl, otherDest, revoked, expired, base}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Check(tc.grants, "notes", "research", peerA, now)
			if tc.want == nil {
				if err != nil || g.ID != base.ID {
					t.Fatalf("Check = %v, %v; want the grant", g.ID, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if g.ID != "" {
				t.Errorf("a refusal returned grant %q", g.ID)
			}
			var de *DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("not a *DeniedError: %T", err)
			}
			msg := err.Error()
			for _, s := range []string{"notes", `"research"`, peerA, tc.detail} {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not name %q", msg, s)
				}
			}
			hint := de.Hint()
			if !strings.Contains(hint, "meshsync consent grant notes --purpose research --to "+peerA) {
				t.Errorf("hint %q", hint)
			}
		})
	}
}

func TestCheckPicksNewest(t *testing.T) {
	old := testGrant(t, "a=keep")
	old.ID = "1111111111111111"
	newer := old
	newer.ID, newer.Created = "2222222222222222", t0.Add(time.Minute)
	for _, order := range [][]Grant{{old, newer}, {newer, old}} {
		g, err := Check(order, "notes", "research", peerA, t0.Add(time.Hour))
		if err != nil || g.ID != newer.ID {
			t.Errorf("Check = %s, %v; want the newest grant", g.ID, err)
		}
	}
	// Revoking the newest falls back to the older one, still valid.
	newer.Revoked = t0.Add(2 * time.Minute)
	if g, err := Check([]Grant{old, newer}, "notes", "research", peerA, t0.Add(time.Hour)); err != nil || g.ID != old.ID {
		t.Errorf("after revoking the newest: %s, %v", g.ID, err)
	}
}

func TestHintQuotes(t *testing.T) {
	de := &DeniedError{Collection: "my notes", Purpose: "it's research", Destination: peerA, Reason: ErrNoGrant}
	if h := de.Hint(); !strings.Contains(h, `'my notes' --purpose 'it'\''s research'`) {
		t.Errorf("hint %q", h)
	}
}
