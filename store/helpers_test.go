package store

import (
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/resolve"
)

// Unit tests run in test mode: the cheap testKDF keeps them fast, and TestKDFFloor checks
// the real floor.
func init() {
	testmode.Enable()
	testInitHook = autoPair
}

// meshStores lists, per mesh, the stores Init made in this test binary.
var meshStores = struct {
	sync.Mutex
	m map[[16]byte][]*Store
}{m: map[[16]byte][]*Store{}}

// autoPair stands in for pairing in this package's tests: every store made for a mesh
// trusts every other open store of it as an anchor, as members vouched for at pairing
// would be. A store whose device name starts with "solo" is left alone (the authority
// tests admit devices themselves).
func autoPair(s *Store) {
	if s.keys.blind || strings.HasPrefix(s.device.Name, "solo") {
		return
	}
	_ = s.Authority().AddAnchors(map[resolve.DeviceID]ed25519.PublicKey{s.device.ID: s.signer.Public().(ed25519.PublicKey)})
	meshStores.Lock()
	defer meshStores.Unlock()
	id := s.keys.meshID
	var keep []*Store
	for _, o := range meshStores.m[id] {
		if o.closed.Load() {
			continue
		}
		keep = append(keep, o)
		_ = o.Authority().AddAnchors(map[resolve.DeviceID]ed25519.PublicKey{s.device.ID: s.signer.Public().(ed25519.PublicKey)})
		_ = s.Authority().AddAnchors(map[resolve.DeviceID]ed25519.PublicKey{o.device.ID: o.signer.Public().(ed25519.PublicKey)})
	}
	meshStores.m[id] = append(keep, s)
}

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

// mustInit creates a store in a fresh directory and verifies it when the test ends. Tests
// that call Init or Restore themselves (they expect a failure, or crash and reopen the
// file) verify what they keep with mustVerifyClose.
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

// putRaw writes raw bytes in a transaction of its own.
func putRaw(s *Store, collection, key string, value []byte) error {
	return s.Update(func(t *Tx) error { return t.PutRaw(collection, key, value) })
}
