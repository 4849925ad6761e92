package store

import (
	"path/filepath"
	"testing"
	"time"
)

// testKDF keeps unit tests fast; the floor is lowered for this package's tests only, and
// TestKDFFloor checks the real floor.
var testKDF = TestKDF

func init() { UseTestKDF() }

var testPass = []byte("correct horse battery staple")

// fakeClock is an injectable wall clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time      { return c.t }
func (c *fakeClock) Add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func testOpts(name string) *Options      { return &Options{KDF: testKDF, DeviceName: name} }
func testOptsClock(c *fakeClock) *Options {
	return &Options{KDF: testKDF, DeviceName: "dev", Now: c.Now}
}

// mustInit creates a store in a fresh directory and verifies it when the test ends.
func mustInit(t testing.TB, opts *Options) *Store {
	t.Helper()
	if opts == nil {
		opts = testOpts("dev")
	}
	s, err := Init(filepath.Join(t.TempDir(), "store"), testPass, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustVerifyClose(t, s) })
	return s
}

// mustVerifyClose runs Verify on an open store (unless already closed) and closes it.
func mustVerifyClose(t testing.TB, s *Store) {
	t.Helper()
	if s.closed.Load() {
		return
	}
	rep, err := s.Verify()
	if err != nil {
		t.Errorf("verify: %v", err)
	} else if !rep.OK() {
		t.Errorf("verify found problems: %v", rep.Problems)
	}
	s.Close()
}
