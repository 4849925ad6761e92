package consent

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshsync/meshsync/store"
)

// Audit outcomes.
const (
	OutcomeShared  = "shared"
	OutcomeRefused = "refused"
)

// AuditEntry is one share or one refused attempt, as kept in AuditCollection.
type AuditEntry struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Outcome string    `json:"outcome"`
	// Device is the device of the mesh that shared or refused.
	Device      string   `json:"device"`
	GrantID     string   `json:"grant,omitempty"`
	Collection  string   `json:"collection"`
	Purpose     string   `json:"purpose"`
	Destination string   `json:"destination"`
	Count       int      `json:"count"`
	Fields      []string `json:"fields,omitempty"`
	DocsDigest  Digest   `json:"docs_digest,omitzero"`
	// Receipt is the destination's signed receipt, as received (nil: none came back).
	Receipt *SignedReceipt `json:"receipt,omitempty"`
	// Verified says the receipt's signature verified and it acknowledges what was sent.
	Verified bool `json:"verified"`
	// ReceiptError says why the receipt did not verify, or that none came.
	ReceiptError string `json:"receipt_error,omitempty"`
	// Reason says why a share was refused.
	Reason string `json:"reason,omitempty"`
}

// Validate checks an audit entry's shape.
func (e *AuditEntry) Validate() error {
	switch {
	case len(e.ID) < 17 || len(e.ID) > 64:
		return fmt.Errorf("audit entry: bad id %q", e.ID)
	case e.Time.IsZero():
		return fmt.Errorf("audit entry: time missing")
	case e.Outcome != OutcomeShared && e.Outcome != OutcomeRefused:
		return fmt.Errorf("audit entry: unknown outcome %q", e.Outcome)
	case e.Count < 0:
		return fmt.Errorf("audit entry: negative count")
	case len(e.Fields) > MaxRules:
		return fmt.Errorf("audit entry: %d fields", len(e.Fields))
	case len(e.Reason) > 4096 || len(e.ReceiptError) > 4096:
		return fmt.Errorf("audit entry: reason too long")
	case len(e.Collection) > MaxNameLen || len(e.Purpose) > MaxNameLen || len(e.Destination) > MaxNameLen ||
		len(e.Device) > MaxNameLen || len(e.GrantID) > MaxNameLen:
		return fmt.Errorf("audit entry: a name is too long")
	}
	if e.Receipt != nil {
		if _, err := e.Receipt.Marshal(); err != nil {
			return fmt.Errorf("audit entry: %w", err)
		}
	}
	return nil
}

// Marshal encodes the entry as canonical JSON.
func (e AuditEntry) Marshal() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	e.Time = e.Time.UTC().Round(0)
	return encodeJSON(e)
}

// ParseAuditEntry decodes and validates an entry encoded by Marshal.
func ParseAuditEntry(b []byte) (AuditEntry, error) {
	var e AuditEntry
	if err := strictUnmarshal(b, &e); err != nil {
		return AuditEntry{}, fmt.Errorf("audit entry: %v", err)
	}
	if err := e.Validate(); err != nil {
		return AuditEntry{}, err
	}
	e.Time = e.Time.UTC().Round(0)
	return e, nil
}

// auditID is the record key of an entry: the time in nanoseconds (16 hex digits, so keys
// sort in time order) and a random suffix (two devices never collide).
func (r *Registry) auditID(t time.Time) (string, error) {
	suffix, err := r.newID()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%016x-%s", uint64(t.UnixNano()), suffix[:16]), nil
}

func (r *Registry) writeAudit(e AuditEntry) (AuditEntry, error) {
	now := r.now().UTC().Round(0)
	r.mu.Lock()
	if !now.After(r.lastAudit) {
		now = r.lastAudit.Add(time.Nanosecond)
	}
	r.lastAudit = now
	r.mu.Unlock()
	id, err := r.auditID(now)
	if err != nil {
		return AuditEntry{}, err
	}
	e.ID, e.Time, e.Device = id, now, r.device()
	b, err := e.Marshal()
	if err != nil {
		return AuditEntry{}, err
	}
	if err := r.st.Update(func(tx *store.Tx) error { return tx.PutReserved(AuditCollection, e.ID, b) }); err != nil {
		return AuditEntry{}, fmt.Errorf("write audit entry: %w", err)
	}
	return e, nil
}

// Sent describes a share that left: the grant, the peer id of this device, and the
// documents exactly as sent.
type Sent struct {
	Grant  Grant
	Sender string
	Docs   [][]byte
}

// RecordShare writes the audit entry of a share. It verifies the destination's receipt
// against what was sent (rcpt nil: no receipt came back); when the receipt is missing or
// does not verify, the entry says Verified=false with the reason, and RecordShare returns
// an error wrapping ErrBadReceipt after writing it.
func (r *Registry) RecordShare(sent Sent, rcpt *SignedReceipt, verify Verifier) (AuditEntry, error) {
	want := NewReceipt(sent.Grant, sent.Sender, sent.Docs, r.now())
	e := AuditEntry{Outcome: OutcomeShared, GrantID: sent.Grant.ID, Collection: sent.Grant.Collection,
		Purpose: sent.Grant.Purpose, Destination: sent.Grant.Destination, Count: len(sent.Docs),
		Fields: want.Fields, DocsDigest: want.DocsDigest, Receipt: rcpt}
	var verr error
	if rcpt == nil {
		verr = fmt.Errorf("%w: no receipt came back", ErrBadReceipt)
	} else if _, err := rcpt.Marshal(); err != nil {
		verr = err
		e.Receipt = nil // malformed: keep the entry itself valid
	} else {
		verr = VerifyReceipt(*rcpt, want, verify)
	}
	e.Verified = verr == nil
	if verr != nil {
		e.ReceiptError = truncate(verr.Error(), 4096)
	}
	e, err := r.writeAudit(e)
	if err != nil {
		return AuditEntry{}, errors.Join(verr, err)
	}
	if verr != nil {
		return e, fmt.Errorf("share %s to %s: %w", sent.Grant.Collection, sent.Grant.Destination, verr)
	}
	return e, nil
}

// RecordRefusal writes the audit entry of a refused share; reason is why (a *DeniedError
// names the grant that came closest). Authorize calls it for every refusal.
func (r *Registry) RecordRefusal(collection, purpose, destination string, reason error) (AuditEntry, error) {
	e := AuditEntry{Outcome: OutcomeRefused, Collection: truncate(collection, MaxNameLen), Purpose: truncate(purpose, MaxNameLen),
		Destination: truncate(destination, MaxNameLen), Reason: "refused"}
	if reason != nil {
		e.Reason = truncate(reason.Error(), 4096)
	}
	var de *DeniedError
	if errors.As(reason, &de) {
		e.GrantID = de.GrantID
	}
	return r.writeAudit(e)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// Audit returns the audit log, oldest first. Entries that do not decode are skipped.
func (r *Registry) Audit() ([]AuditEntry, error) {
	recs, err := r.st.List(AuditCollection, "")
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	out := make([]AuditEntry, 0, len(recs))
	for _, rec := range recs {
		e, err := ParseAuditEntry(rec.Value)
		if err != nil || e.ID != rec.Key {
			continue
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b AuditEntry) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
