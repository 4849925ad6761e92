package view

import (
	"encoding/json"
	"time"

	"github.com/meshsync/meshsync/store"
)

// HistoryEntry is a losing value of a resolved conflict, kept for a while.
type HistoryEntry struct {
	Collection string          `json:"collection"`
	Key        string          `json:"key"`
	Device     string          `json:"device"`
	Time       time.Time       `json:"time"`
	Deleted    bool            `json:"deleted,omitempty"`
	Value      json.RawMessage `json:"value,omitempty"`
	Raw        []byte          `json:"raw,omitempty"`
	ResolvedAt time.Time       `json:"resolved_at"`
	ResolvedBy string          `json:"resolved_by"`
}

// FromHistory is the JSON form of h.
func FromHistory(h store.HistoryEntry) HistoryEntry {
	return HistoryEntry{Collection: h.Collection, Key: h.Key, Device: h.Device, Time: h.Time, Deleted: h.Deleted,
		Value: h.Value, Raw: h.Raw, ResolvedAt: h.ResolvedAt, ResolvedBy: h.ResolvedBy}
}

// Report is what a check of the whole store found.
type Report struct {
	Envelopes int      `json:"envelopes"`
	Records   int      `json:"records"`
	Problems  []string `json:"problems"`
}

// FromReport is the JSON form of r.
func FromReport(r *store.Report) Report {
	return Report{Envelopes: r.Envelopes, Records: r.Records, Problems: r.Problems}
}

// OK reports whether the check found no problem.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// BackupInfo says what a backup holds.
type BackupInfo struct {
	Envelopes int       `json:"envelopes"`
	Records   int       `json:"records"`
	Created   time.Time `json:"created"`
}

// FromBackupInfo is the JSON form of b.
func FromBackupInfo(b store.BackupInfo) BackupInfo {
	return BackupInfo{Envelopes: b.Envelopes, Records: b.Records, Created: b.Created}
}

// ImportStats says what an import did, or with a dry run what it would do, envelope by
// envelope.
type ImportStats struct {
	Envelopes   int `json:"envelopes"`   // envelopes in the backup
	New         int `json:"new"`         // records this store did not have
	Newer       int `json:"newer"`       // versions that supersede what the store holds
	Conflicting int `json:"conflicting"` // versions concurrent with what the store holds
	Unchanged   int `json:"unchanged"`   // versions already held or superseded here
	Rejected    int `json:"rejected"`    // envelopes that failed authentication
}

// FromImportStats is the JSON form of s.
func FromImportStats(s store.ImportStats) ImportStats { return ImportStats(s) }
