package store

import "testing"

// TestKDF is a cheap Argon2id setting for tests: a store made with it opens in about a
// millisecond, and is worthless against offline guessing.
var TestKDF = KDFParams{Time: 1, Memory: 1024, Threads: 1}

// UseTestKDF lowers the enforced floor to TestKDF and makes it the default for new stores
// (and makes backups use a cheap scrypt work factor), so that tests of other packages can open many stores quickly. It panics outside a test
// binary, so a real store can never be made or opened with it.
func UseTestKDF() {
	if !testing.Testing() {
		panic("store.UseTestKDF called outside a test binary")
	}
	kdfFloor = TestKDF
	defaultKDF = TestKDF
	defaultBackupWorkFactor = 10
}
