package view

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/meshsync/meshsync/store"
)

// TestStoreCopies: the copies of the store's types encode as the store's own did, so the
// JSON that `meshsync ... --json` printed from them does not change.
func TestStoreCopies(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"history", FromHistory(store.HistoryEntry{Collection: "c", Key: "k", Device: "d", Time: now, Value: json.RawMessage(`{"a":1}`), ResolvedAt: now, ResolvedBy: "user"}),
			store.HistoryEntry{Collection: "c", Key: "k", Device: "d", Time: now, Value: json.RawMessage(`{"a":1}`), ResolvedAt: now, ResolvedBy: "user"}},
		{"history raw deleted", FromHistory(store.HistoryEntry{Deleted: true, Raw: []byte{1}}), store.HistoryEntry{Deleted: true, Raw: []byte{1}}},
		{"report", FromReport(&store.Report{Envelopes: 2, Records: 1, Problems: []string{"p"}}), store.Report{Envelopes: 2, Records: 1, Problems: []string{"p"}}},
		{"empty report", FromReport(&store.Report{}), store.Report{}},
		{"backup", FromBackupInfo(store.BackupInfo{Envelopes: 3, Records: 2, Created: now}), store.BackupInfo{Envelopes: 3, Records: 2, Created: now}},
		{"import", FromImportStats(store.ImportStats{Envelopes: 1, New: 2, Newer: 3, Conflicting: 4, Unchanged: 5, Rejected: 6}),
			store.ImportStats{Envelopes: 1, New: 2, Newer: 3, Conflicting: 4, Unchanged: 5, Rejected: 6}},
	} {
		got, _ := json.Marshal(tc.got)
		want, _ := json.Marshal(tc.want)
		if string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, want)
		}
	}
}
