package consent

import (
	"bytes"
	"testing"
	"time"
)

// Peer ids of the tests: two destinations and a device.
const (
	peerA   = "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	peerB   = "12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	peerDev = "12D3KooWDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"
)

var (
	testKey = bytes.Repeat([]byte{7}, 32)
	t0      = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
)

// testGrant returns a valid grant of "notes" for "research" to peerA with the given rules.
func testGrant(t testing.TB, rules ...string) Grant {
	t.Helper()
	rs, err := ParseRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	return Grant{ID: "0123456789abcdef", Collection: "notes", Purpose: "research", Destination: peerA,
		Expires: t0.Add(24 * time.Hour), Fields: rs, Created: t0, CreatedBy: "dev1"}
}
