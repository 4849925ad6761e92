package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node/localapi"
)

type consentCmd struct {
	Ls      consentLsCmd      `cmd:"" default:"1" help:"List grants, with their status (the default)."`
	Grant   consentGrantCmd   `cmd:"" help:"Allow one collection to go to one peer, for one purpose, until a date, in anonymized form."`
	Revoke  consentRevokeCmd  `cmd:"" help:"Revoke a grant: every later share under it is refused."`
	Pending consentPendingCmd `cmd:"" help:"List apps' requests for a grant that wait for your decision."`
	Approve consentApproveCmd `cmd:"" help:"Grant a pending request."`
	Deny    consentDenyCmd    `cmd:"" help:"Refuse a pending request."`
}

// openConsent returns the consent half of the data directory's local API; close the
// returned client when done.
func (g *globals) openConsent(ctx context.Context) (localapi.ConsentClient, *localapi.Client, error) {
	c, err := g.client(ctx, nil)
	if err != nil {
		return localapi.ConsentClient{}, nil, err
	}
	return c.Consent(), c, nil
}

// parsePeer reads a destination: a peer id, or a multiaddr that ends in /p2p/ID (its
// address is then where to reach it).
func parsePeer(s string) (peer.AddrInfo, error) {
	if strings.HasPrefix(s, "/") {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return peer.AddrInfo{}, usagef("--to %q: not a multiaddr: %v", s, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return peer.AddrInfo{}, usagef("--to %q: want a peer id or an address ending in /p2p/PEER", s)
		}
		return *info, nil
	}
	id, err := peer.Decode(s)
	if err != nil {
		return peer.AddrInfo{}, usagef("--to %q: not a peer id (`meshsync receive` prints its own): %v", s, err)
	}
	return peer.AddrInfo{ID: id}, nil
}

// parseExpiry reads an expiry: a duration from now (30d, 2w, 12h, 90m) or a date
// (2026-12-31, midnight UTC) or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if n, unit := strings.TrimRight(s, "dw"), strings.TrimLeft(s, "0123456789"); n != s && (unit == "d" || unit == "w") {
		k, err := strconv.Atoi(n)
		if err == nil && k > 0 && k <= 36500 {
			days := k
			if unit == "w" {
				days = 7 * k
			}
			return now.AddDate(0, 0, days), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	return time.Time{}, usagef("--expires %q: want a duration such as 30d, 2w or 12h, or a date such as 2026-12-31", s)
}

type grantJSON struct {
	ID          string    `json:"id"`
	Collection  string    `json:"collection"`
	Purpose     string    `json:"purpose"`
	Destination string    `json:"destination"`
	Fields      []string  `json:"fields"`
	Expires     time.Time `json:"expires"`
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"created_by"`
	Status      string    `json:"status"`
	Revoked     time.Time `json:"revoked,omitzero"`
	Request     string    `json:"request,omitempty"`
}

func toGrantJSON(g consent.Grant, now time.Time) grantJSON {
	out := grantJSON{ID: g.ID, Collection: g.Collection, Purpose: g.Purpose, Destination: g.Destination,
		Fields: make([]string, 0, len(g.Fields)), Expires: g.Expires, Created: g.Created, CreatedBy: g.CreatedBy,
		Revoked: g.Revoked, Request: g.Request, Status: "active"}
	for _, f := range g.Fields {
		out.Fields = append(out.Fields, f.String())
	}
	switch {
	case g.IsRevoked():
		out.Status = "revoked"
	case !g.Active(now):
		out.Status = "expired"
	}
	return out
}

func printGrant(w io.Writer, g grantJSON) {
	fmt.Fprintf(w, "Grant %s (%s): %s for %q to %s, until %s\n", shown(g.ID), g.Status, shown(g.Collection), g.Purpose, shown(g.Destination), g.Expires.Local().Format(time.DateTime))
	if len(g.Fields) == 0 {
		fmt.Fprintln(w, "  fields: none (documents are sent empty)")
	} else {
		fmt.Fprintf(w, "  fields: %s (every other field is dropped)\n", shown(strings.Join(g.Fields, ", ")))
	}
}

type consentGrantCmd struct {
	Collection string   `arg:"" help:"Collection to share."`
	Purpose    string   `required:"" help:"What the destination may use the data for." placeholder:"P"`
	To         string   `required:"" help:"Destination peer id (or an address ending in /p2p/PEER)." placeholder:"PEER"`
	Expires    string   `default:"30d" help:"Until when: a duration (30d, 2w, 12h) or a date (2026-12-31)."`
	Field      []string `sep:"none" help:"NAME=keep|drop|redact|pseudonymize|generalize:ARG (repeatable); a field without a rule is dropped." placeholder:"RULE"`
}

func (c *consentGrantCmd) Run(ctx context.Context, g *globals) error {
	dest, err := parsePeer(c.To)
	if err != nil {
		return err
	}
	exp, err := parseExpiry(c.Expires, time.Now())
	if err != nil {
		return err
	}
	rules, err := consent.ParseRules(c.Field)
	if err != nil {
		return usageError{err}
	}
	reg, st, err := g.openConsent(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	gr, err := reg.Grant(ctx, consent.GrantSpec{Collection: c.Collection, Purpose: c.Purpose, Destination: dest.ID.String(), Expires: exp, Fields: rules})
	if err != nil {
		return err
	}
	out := toGrantJSON(gr, time.Now())
	return g.print(out, func(w io.Writer) {
		printGrant(w, out)
		fmt.Fprintf(w, "Share it with: meshsync share %s --purpose %s --to %s\n", out.Collection, shellWord(out.Purpose), out.Destination)
		fmt.Fprintf(w, "Revoke it with: meshsync consent revoke %s\n", idPrefix(out.ID))
	})
}

// shellWord quotes s for a shell when it needs it.
func shellWord(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

type consentLsCmd struct {
	Active bool `help:"Only grants that are neither revoked nor expired."`
}

func (c *consentLsCmd) Run(ctx context.Context, g *globals) error {
	reg, st, err := g.openConsent(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	all, err := reg.Grants(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	out := struct {
		Grants []grantJSON `json:"grants"`
	}{Grants: []grantJSON{}}
	for _, gr := range all {
		j := toGrantJSON(gr, now)
		if c.Active && j.Status != "active" {
			continue
		}
		out.Grants = append(out.Grants, j)
	}
	return g.print(out, func(w io.Writer) {
		if len(out.Grants) == 0 {
			fmt.Fprintln(w, "No grants: nothing leaves this mesh. Allow a share with `meshsync consent grant`.")
			return
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tCOLLECTION\tPURPOSE\tTO\tUNTIL\tFIELDS")
		for _, j := range out.Grants {
			fields := shown(strings.Join(j.Fields, ","))
			if fields == "" {
				fields = "(none)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shown(idPrefix(j.ID)), j.Status, shown(j.Collection), shown(j.Purpose), shown(shortPeer(j.Destination)),
				j.Expires.Local().Format(time.DateOnly), fields)
		}
		tw.Flush()
	})
}

type consentRevokeCmd struct {
	ID string `arg:"" help:"Grant id, or a unique prefix of at least 4 characters."`
}

func (c *consentRevokeCmd) Run(ctx context.Context, g *globals) error {
	reg, st, err := g.openConsent(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	gr, err := reg.Revoke(ctx, c.ID)
	if err != nil {
		return err
	}
	out := toGrantJSON(gr, time.Now())
	return g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "Grant %s revoked: %s for %q to %s is refused from now on (on other devices after they sync).\n",
			shown(idPrefix(out.ID)), shown(out.Collection), out.Purpose, shown(out.Destination))
	})
}

type requestJSON struct {
	ID          string    `json:"id"`
	App         string    `json:"app"`
	Collection  string    `json:"collection"`
	Purpose     string    `json:"purpose"`
	Destination string    `json:"destination"`
	Fields      []string  `json:"fields"`
	ForSeconds  int64     `json:"for_seconds,omitempty"`
	Note        string    `json:"note,omitempty"`
	Created     time.Time `json:"created"`
	Status      string    `json:"status"`
	Grant       string    `json:"grant,omitempty"`
}

func toRequestJSON(q consent.Request) requestJSON {
	out := requestJSON{ID: q.ID, App: q.App, Collection: q.Collection, Purpose: q.Purpose, Destination: q.Destination,
		Fields: make([]string, 0, len(q.Fields)), ForSeconds: int64(q.For / time.Second), Note: q.Note, Created: q.Created,
		Status: string(q.Status), Grant: q.GrantID}
	for _, f := range q.Fields {
		out.Fields = append(out.Fields, f.String())
	}
	return out
}

type consentPendingCmd struct{}

func (c *consentPendingCmd) Run(ctx context.Context, g *globals) error {
	reg, st, err := g.openConsent(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	qs, err := reg.Pending(ctx)
	if err != nil {
		return err
	}
	out := struct {
		Requests []requestJSON `json:"requests"`
	}{Requests: []requestJSON{}}
	for _, q := range qs {
		out.Requests = append(out.Requests, toRequestJSON(q))
	}
	return g.print(out, func(w io.Writer) {
		if len(out.Requests) == 0 {
			fmt.Fprintln(w, "No requests wait for a decision.")
			return
		}
		for _, q := range out.Requests {
			fmt.Fprintf(w, "Request %s from %s: %s for %q to %s, fields %s\n", shown(idPrefix(q.ID)), shown(q.App), shown(q.Collection), q.Purpose,
				shown(q.Destination), shown(strings.Join(q.Fields, ", ")))
			if q.Note != "" {
				fmt.Fprintf(w, "  note: %s\n", shown(q.Note))
			}
			fmt.Fprintf(w, "  meshsync consent approve %s   or   meshsync consent deny %s\n", idPrefix(q.ID), idPrefix(q.ID))
		}
	})
}

type consentApproveCmd struct {
	ID      string   `arg:"" help:"Request id, or a unique prefix of at least 4 characters."`
	Expires string   `help:"Until when (default: what the app asked, else 30d)."`
	Field   []string `sep:"none" help:"Grant these field rules instead of what the app asked (repeatable)." placeholder:"RULE"`
}

func (c *consentApproveCmd) Run(ctx context.Context, g *globals) error {
	var exp time.Time
	if c.Expires != "" {
		var err error
		if exp, err = parseExpiry(c.Expires, time.Now()); err != nil {
			return err
		}
	}
	var rules []consent.FieldRule
	if len(c.Field) > 0 {
		var err error
		if rules, err = consent.ParseRules(c.Field); err != nil {
			return usageError{err}
		}
	}
	reg, st, err := g.openConsent(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	gr, err := reg.Approve(ctx, c.ID, rules, exp)
	if err != nil {
		return err
	}
	out := toGrantJSON(gr, time.Now())
	return g.print(out, func(w io.Writer) { printGrant(w, out) })
}

type consentDenyCmd struct {
	ID string `arg:"" help:"Request id, or a unique prefix of at least 4 characters."`
}

func (c *consentDenyCmd) Run(ctx context.Context, g *globals) error {
	reg, st, err := g.openConsent(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	q, err := reg.Deny(ctx, c.ID)
	if err != nil {
		return err
	}
	out := toRequestJSON(q)
	return g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "Request %s from %s denied: nothing of %s goes to %s.\n", shown(idPrefix(out.ID)), shown(out.App), shown(out.Collection), shown(out.Destination))
	})
}

// idPrefix is the first 8 characters of an id, enough to name it in a command.
func idPrefix(id string) string { return id[:min(len(id), 8)] }
