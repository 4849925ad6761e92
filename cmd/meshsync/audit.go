package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/meshsync/meshsync/consent"
)

type auditCmd struct {
	Last int `help:"Show only the last N entries (0: all)." placeholder:"N"`
}

// auditJSON is one audit entry in `meshsync audit --json`.
type auditJSON struct {
	ID           string                 `json:"id"`
	Time         time.Time              `json:"time"`
	Outcome      string                 `json:"outcome"`
	Device       string                 `json:"device"`
	Grant        string                 `json:"grant,omitempty"`
	Collection   string                 `json:"collection"`
	Purpose      string                 `json:"purpose"`
	Destination  string                 `json:"destination"`
	Count        int                    `json:"count"`
	Fields       []string               `json:"fields"`
	DocsDigest   string                 `json:"docs_digest,omitempty"`
	Verified     bool                   `json:"verified"`
	ReceiptError string                 `json:"receipt_error,omitempty"`
	Reason       string                 `json:"reason,omitempty"`
	Receipt      *consent.SignedReceipt `json:"receipt,omitempty"`
}

func toAuditJSON(e consent.AuditEntry) auditJSON {
	out := auditJSON{ID: e.ID, Time: e.Time, Outcome: e.Outcome, Device: e.Device, Grant: e.GrantID, Collection: e.Collection,
		Purpose: e.Purpose, Destination: e.Destination, Count: e.Count, Fields: e.Fields, Verified: e.Verified,
		ReceiptError: e.ReceiptError, Reason: e.Reason, Receipt: e.Receipt}
	if out.Fields == nil {
		out.Fields = []string{}
	}
	if !e.DocsDigest.IsZero() {
		d, _ := e.DocsDigest.MarshalText()
		out.DocsDigest = string(d)
	}
	return out
}

func (c *auditCmd) Run(ctx context.Context, g *globals) error {
	if c.Last < 0 {
		return usagef("--last %d: want 0 or more", c.Last)
	}
	reg, st, err := g.openConsent(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	log, err := reg.Audit(ctx)
	if err != nil {
		return err
	}
	if c.Last > 0 && len(log) > c.Last {
		log = log[len(log)-c.Last:]
	}
	out := struct {
		Entries []auditJSON `json:"entries"`
	}{Entries: make([]auditJSON, 0, len(log))}
	for _, e := range log {
		out.Entries = append(out.Entries, toAuditJSON(e))
	}
	return g.print(out, func(w io.Writer) {
		if len(out.Entries) == 0 {
			fmt.Fprintln(w, "The audit log is empty: nothing was shared or refused.")
			return
		}
		for _, e := range out.Entries {
			ts := e.Time.Local().Format(time.DateTime)
			switch e.Outcome {
			case consent.OutcomeShared:
				rcpt := "receipt verified"
				if !e.Verified {
					rcpt = "receipt NOT verified: " + e.ReceiptError
				}
				fmt.Fprintf(w, "%s  shared   %s for %q to %s: %d documents, fields %s, grant %s; %s\n", ts, shown(e.Collection), e.Purpose,
					shown(e.Destination), e.Count, shown(strings.Join(e.Fields, ",")), shown(idPrefix(e.Grant)), shown(rcpt))
			default:
				fmt.Fprintf(w, "%s  refused  %s for %q to %s: %s\n", ts, shown(e.Collection), e.Purpose, shown(e.Destination), shown(e.Reason))
			}
		}
	})
}
