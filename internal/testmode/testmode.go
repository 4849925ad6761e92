// Package testmode is the one switch that tests of meshsync's packages turn on to make the
// code under test cheap to run: stores unlock with a weak Argon2id setting, backups use a
// low scrypt work factor, and nodes join no public DHT bootstrap peers by default.
//
// Production code reads the switch and never turns it on; only _test.go files call Enable
// (TestOnlyTestsEnable checks this over the module). Being internal, it cannot be reached
// from outside meshsync.
//
// # Usage
//
//	func init() { testmode.Enable() } // in a _test.go file of any meshsync package
//
// A package whose defaults change in test mode registers them once, at init:
//
//	func init() { testmode.OnEnable(func() { defaultKDF = cheapKDF }) }
//
// # Caveats
//
// Enable is for the start of a test binary (an init function, TestMain, or the first line
// of a command a testscript runs), before any store is made: the hooks change package
// defaults that are read without a lock.
package testmode

import "sync"

// KDF is the cheap Argon2id setting of test mode: a store made with it opens in about a
// millisecond, and is worthless against offline guessing. Its fields are those of
// store.KDFParams, which converts from it.
var KDF = struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8  // lanes
}{Time: 1, Memory: 1024, Threads: 1}

// BackupWorkFactor is the scrypt work factor (log2 N) of backups made in test mode.
const BackupWorkFactor = 10

var (
	mu      sync.Mutex
	enabled bool
	hooks   []func()
)

// Enable turns test mode on for the rest of the process and runs every hook registered
// with OnEnable. Calling it again does nothing.
func Enable() {
	mu.Lock()
	if enabled {
		mu.Unlock()
		return
	}
	enabled = true
	run := hooks
	mu.Unlock()
	for _, f := range run {
		f()
	}
}

// Enabled reports whether test mode is on.
func Enabled() bool {
	mu.Lock()
	defer mu.Unlock()
	return enabled
}

// OnEnable registers f to run when test mode is turned on (at once when it already is).
func OnEnable(f func()) {
	mu.Lock()
	hooks = append(hooks, f)
	on := enabled
	mu.Unlock()
	if on {
		f()
	}
}
