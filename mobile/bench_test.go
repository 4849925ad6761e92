package mobile

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/meshsync/meshsync/store"
)

// BenchmarkStartStop measures what an app waits for: Start (reopen the store, bring the
// network up) and Stop (take everything down), on loopback with the test KDF. The
// passphrase key derivation of a real store comes on top of Start: see
// BenchmarkPauseRealKDF.
func BenchmarkStartStop(b *testing.B) {
	n, err := Create(filepath.Join(b.TempDir(), "a"), testPass, "a", loopback)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	var start, stop time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := n.Start(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := n.Stop(); err != nil {
			b.Fatal(err)
		}
		start, stop = start+t1.Sub(t0), stop+time.Since(t1)
	}
	b.ReportMetric(float64(start.Microseconds())/float64(b.N)/1000, "start-ms")
	b.ReportMetric(float64(stop.Microseconds())/float64(b.N)/1000, "stop-ms")
}

// BenchmarkPauseRealKDF measures a policy pause and resume of a store made with the
// default (real) Argon2id parameters: the pause stops the network only (the store stays
// open), so the KDF no longer counts.
func BenchmarkPauseRealKDF(b *testing.B) {
	n, err := create(filepath.Join(b.TempDir(), "a"), testPass, "a", loopback, store.DefaultKDF)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(); err != nil {
		b.Fatal(err)
	}
	setPolicy := func(p string) {
		n.mu.Lock()
		n.sig.policy = p
		n.mu.Unlock()
		n.tmu.Lock()
		defer n.tmu.Unlock()
		if err := n.applyLocked(); err != nil {
			b.Fatal(err)
		}
	}
	var pause, resume time.Duration
	for b.Loop() {
		t0 := time.Now()
		setPolicy(PolicyPaused)
		t1 := time.Now()
		setPolicy(PolicyAlways)
		pause, resume = pause+t1.Sub(t0), resume+time.Since(t1)
	}
	b.ReportMetric(float64(pause.Microseconds())/float64(b.N)/1000, "pause-ms")
	b.ReportMetric(float64(resume.Microseconds())/float64(b.N)/1000, "resume-ms")
}
