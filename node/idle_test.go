package node

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleWakeups measures two paired, connected, idle nodes in this process: the
// process's context switches (each wake-up of a thread is at least one) and its memory.
// It takes a minute, so it runs only with MESHSYNC_IDLE=1 (MESHSYNC_IDLE_TRACE=FILE also
// writes a runtime trace of the window, to see which goroutines wake).
func TestIdleWakeups(t *testing.T) {
	if os.Getenv("MESHSYNC_IDLE") == "" {
		t.Skip("set MESHSYNC_IDLE=1 to measure an idle node for a minute")
	}
	window := time.Minute
	if d, err := time.ParseDuration(os.Getenv("MESHSYNC_IDLE_WINDOW")); err == nil {
		window = d
	}
	nodes := newMeshWith(t, 2, func(c *Config) { c.RetryMin = time.Second; c.RetryMax = 5 * time.Minute })
	a, b := nodes[0], nodes[1]
	a.Put("notes", "x", []byte(`1`))
	eventually(t, "synced", func() error { return hasValue(b, "notes", "x", `1`) })
	waitSynced(t, a)
	waitSynced(t, b)
	time.Sleep(5 * time.Second) // let start-up work (identify, first anti-entropy) finish
	runtime.GC()
	if f := os.Getenv("MESHSYNC_IDLE_TRACE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		trace.Start(out)
		defer trace.Stop()
	}
	cs0 := ctxSwitches(t)
	time.Sleep(window)
	cs := ctxSwitches(t) - cs0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	perMin := float64(cs) / window.Minutes()
	t.Logf("two idle nodes: %.0f context switches per minute (%.0f per node), process RSS %s, heap in use %.1f MiB, %d goroutines",
		perMin, perMin/2, procStatus(t, "VmRSS"), float64(ms.HeapInuse)/(1<<20), runtime.NumGoroutine())
}

// ctxSwitches sums the voluntary and involuntary context switches of every thread of
// this process.
func ctxSwitches(t *testing.T) int64 {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		t.Skip("no /proc: cannot count context switches")
	}
	var sum int64
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				sum += n
			}
		}
	}
	return sum
}

func procStatus(t *testing.T, key string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
