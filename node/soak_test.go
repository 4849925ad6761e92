//go:build soak

package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestSoak is test-plan row 25: five devices with real libp2p hosts and bbolt files run a
// random workload (writes, deletes, concurrent writes to shared keys) while devices go
// offline and come back (the store closed and reopened), for MESHSYNC_SOAK (default 2m;
// 24h nightly, 72h before a release). Every MESHSYNC_SOAK_EVERY (default 30s) it prints
// the RSS, heap, goroutines and operations per second. At the end every device comes back,
// and all must hold byte-identical record sets and Merkle roots, with every device's own
// last write (or delete) of its own keys in place.
//
//	go test -tags soak -run TestSoak -v -timeout 0 ./node/                 # 2 minutes
//	MESHSYNC_SOAK=24h MESHSYNC_SEED=7 go test -tags soak -run TestSoak -v -timeout 0 ./node/
func TestSoak(t *testing.T) {
	dur := envDuration(t, "MESHSYNC_SOAK", 2*time.Minute)
	every := envDuration(t, "MESHSYNC_SOAK_EVERY", 30*time.Second)
	devices := 5
	if v := os.Getenv("MESHSYNC_SOAK_DEVICES"); v != "" {
		devices, _ = strconv.Atoi(v)
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("MESHSYNC_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("soak: %d devices for %v, seed %d (MESHSYNC_SEED=%d replays the workload, not the timing)", devices, dur, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	nodes := newMesh(t, devices)
	cfgs := make([]Config, devices)
	for i, n := range nodes {
		cfgs[i] = n.cfg
		waitSynced(t, n)
	}
	online := make([]bool, devices)
	for i := range online {
		online[i] = true
	}
	backAt := make([]time.Time, devices)
	// last[i][key] is device i's last write to its own key: the value, or "" for a delete.
	last := make([]map[string]string, devices)
	for i := range last {
		last[i] = map[string]string{}
	}

	start := time.Now()
	baseGoroutines := runtime.NumGoroutine()
	var rss0 string
	ops, restarts, lastOps := 0, 0, 0
	nextReport := start.Add(every)
	for time.Since(start) < dur {
		i := rng.IntN(devices)
		switch {
		case !online[i]:
			if time.Now().After(backAt[i]) {
				n, err := Open(context.Background(), cfgs[i])
				if err != nil {
					t.Fatalf("reopen device %d: %v", i, err)
				}
				mustStart(t, n)
				nodes[i], online[i] = n, true
			}
		case rng.IntN(1000) == 0 && offlineCount(online) < devices/2:
			// Offline for 1 to 20 seconds: the store is closed and reopened.
			if err := nodes[i].Close(); err != nil {
				t.Fatalf("close device %d: %v", i, err)
			}
			online[i] = false
			backAt[i] = time.Now().Add(time.Duration(1+rng.IntN(20)) * time.Second)
			restarts++
		default:
			n := nodes[i]
			key := fmt.Sprintf("d%d-k%d", i, rng.IntN(200))
			switch r := rng.IntN(100); {
			case r < 60:
				v := fmt.Sprintf(`{"by":%d,"op":%d}`, i, ops)
				if err := n.Put("soak", key, []byte(v)); err != nil {
					t.Fatalf("put: %v", err)
				}
				last[i][key] = v
			case r < 75:
				if v, ok := last[i][key]; ok && v != "" {
					if err := n.Delete("soak", key); err != nil {
						t.Fatalf("delete: %v", err)
					}
					last[i][key] = ""
				}
			default: // every device writes the shared keys: concurrent versions, conflicts
				shared := fmt.Sprintf("shared-%d", rng.IntN(10))
				if err := n.Put("soak", shared, []byte(fmt.Sprintf(`{"by":%d,"op":%d}`, i, ops))); err != nil {
					t.Fatalf("put shared: %v", err)
				}
			}
			ops++
		}
		time.Sleep(time.Duration(2+rng.IntN(18)) * time.Millisecond)
		if time.Now().After(nextReport) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			rss := procStatus(t, "VmRSS")
			if rss0 == "" {
				rss0 = rss
			}
			t.Logf("soak t=%-6s ops=%-7d ops/s=%-5.0f restarts=%-3d offline=%d rss=%s heap=%.1fMiB goroutines=%d",
				time.Since(start).Round(time.Second), ops, float64(ops-lastOps)/every.Seconds(), restarts,
				offlineCount(online), rss, float64(ms.HeapInuse)/(1<<20), runtime.NumGoroutine())
			lastOps = ops
			nextReport = nextReport.Add(every)
		}
	}

	// Everyone back; quiesce; compare.
	for i := range nodes {
		if !online[i] {
			n, err := Open(context.Background(), cfgs[i])
			if err != nil {
				t.Fatalf("reopen device %d: %v", i, err)
			}
			mustStart(t, n)
			nodes[i], online[i] = n, true
		}
	}
	t0 := time.Now()
	eventually(t, "all devices converge", func() error {
		r0, _ := nodes[0].st.Replication().Root()
		for i, n := range nodes[1:] {
			r, _ := n.st.Replication().Root()
			if r != r0 {
				n.SyncNow(context.Background())
				return fmt.Errorf("device %d root %d/%x, device 0 %d/%x", i+1, r.Count, r.FP[:4], r0.Count, r0.FP[:4])
			}
		}
		return nil
	})
	t.Logf("soak: converged %v after the last device came back; %d operations, %d restarts", time.Since(t0).Round(time.Millisecond), ops, restarts)
	want, err := nodes[0].List("soak", "")
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		got, err := n.List("soak", "")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("device %d reads %d records, device 0 %d: the sets differ", i, len(got), len(want))
		}
		for key, v := range last[i] {
			rec, err := n.Get("soak", key)
			switch {
			case v == "" && !isNotFound(err):
				t.Errorf("device %d: %s deleted by its owner, reads %v %v", i, key, rec, err)
			case v != "" && (err != nil || string(rec.Value) != v):
				t.Errorf("device %d: %s = %v (%v), owner wrote %s", i, key, rec, err, v)
			}
		}
	}
	g := runtime.NumGoroutine()
	t.Logf("soak: goroutines %d at start, %d at the end; RSS %s at the first report, %s at the end", baseGoroutines, g, rss0, procStatus(t, "VmRSS"))
	if g > baseGoroutines+50 {
		t.Errorf("goroutines grew from %d to %d", baseGoroutines, g)
	}
	for _, n := range nodes {
		n.Close()
	}
}

func offlineCount(online []bool) (k int) {
	for _, o := range online {
		if !o {
			k++
		}
	}
	return k
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}
