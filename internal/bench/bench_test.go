package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshsync/meshsync/internal/testmode"
)

func init() { testmode.Enable() }

// TestRun: a tiny run returns every row, in order, with the counts it was given; the
// CLI's bench_sync.txtar checks the figures themselves.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	rows, err := Run(context.Background(), Options{Records: 40, Size: 64, Changes: 3, Writes: 3, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if warm, _ := filepath.Glob(filepath.Join(dir, "warm-*")); len(warm) > 0 {
		t.Errorf("the memory warm-up left %v behind", warm)
	}
	var kinds []string
	for _, r := range rows {
		kinds = append(kinds, fmt.Sprintf("%T", r))
	}
	want := "bench.MachineRow bench.InitialSyncRow bench.SignaturesRow bench.ScopedSyncRow bench.ReconnectRow bench.UnlockRow bench.IncrementalRow bench.IncrementalRow bench.PushRow bench.RestRow bench.FootprintRow"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("rows %s\nwant %s", got, want)
	}
	if r := rows[1].(InitialSyncRow); r.Records != 40 || r.BoltPerS <= 0 || r.WarmBytes <= 0 || r.WarmMBPerS <= 0 {
		t.Errorf("initial sync row %+v", r)
	}
	if r := rows[3].(ScopedSyncRow); r.Records != 100 || r.Held != 100 || r.OutOfScope != 40 || r.FullRecords != 40 {
		t.Errorf("scoped sync row %+v: the scoped device takes its 100 records and nothing else", r)
	}
	if r := rows[5].(UnlockRow); !r.TestKDF {
		t.Errorf("unlock row %+v: test mode uses the test KDF", r)
	}
	if r := rows[7].(IncrementalRow); r.Row != "incremental_fast" || r.Found != 3 {
		t.Errorf("fast row %+v", r)
	}
	if r := rows[10].(FootprintRow); r.CompactedPerRecord <= 0 || r.CompactedPerRecord > r.PerRecord || r.CompactedFree > r.Free || r.PageSize <= 0 || r.CompactedPageSize != 16384 {
		t.Errorf("footprint row %+v: the compacted store is measured, no larger, in 16 KiB pages", r)
	}
	var b bytes.Buffer
	WriteTable(&b, rows, 64)
	if !strings.Contains(b.String(), "initial sync") || !strings.Contains(b.String(), "RATIO") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestOptions(t *testing.T) {
	o, err := Options{Dir: "x"}.withDefaults()
	if err != nil || o.Records != 100000 || o.Size != 1024 || o.Changes != 10 || o.Writes != 1000 {
		t.Errorf("defaults %+v, %v", o, err)
	}
	for _, bad := range []Options{{Dir: "x", Records: 5, Changes: 6}, {Dir: "x", Size: -1}, {Records: 1}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// The warm-up writes what it is asked to in a scratch file of its own and leaves nothing.
func TestWarmMemory(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	rate, err := warmMemory(dir, 3*warmChunk+5)
	if err != nil || rate <= 0 {
		t.Fatalf("warmMemory: %v MiB/s, %v", rate, err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 || left[0].Name() != "keep" {
		t.Errorf("left in dir: %v", left)
	}
	if _, err := warmMemory(filepath.Join(dir, "missing"), 10); err == nil || !strings.Contains(err.Error(), "warm memory") {
		t.Errorf("warmMemory into a missing directory: %v", err)
	}
}
