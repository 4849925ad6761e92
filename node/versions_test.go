package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node/internal/wire"
)

// TestSessionsToAnOlderDevice: a device of the previous release (sync version 4, which
// refuses a newer hello) and a current one. The current device's own sessions to it
// speak version 4 once it has heard the older device's hello, so they succeed and it
// does not show the older device in error; data goes both ways. Before, every session
// the current device opened failed on the older one's refusal.
func TestSessionsToAnOlderDevice(t *testing.T) {
	a := newMesh(t, 1)[0]
	b := joinStopped(t, a, "old", testConfig(t, "b"))
	b.helloVersion = 4
	mustStart(t, b)

	if err := a.Put("notes", "from-new", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put("notes", "from-old", []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both records on both devices", func() error {
		for _, n := range []*Node{a, b} {
			if err := hasValue(n, "notes", "from-new", `{"v":1}`); err != nil {
				return err
			}
			if err := hasValue(n, "notes", "from-old", `{"v":2}`); err != nil {
				return err
			}
		}
		return nil
	})
	eventually(t, "a session the current device opens succeeds", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return a.WaitSynced(ctx)
	})
	// Not once by luck (a session the older device opened, served meanwhile, counts too):
	// every time.
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := a.WaitSynced(ctx)
		cancel()
		if err != nil {
			t.Fatalf("session %d the current device opened: %v", i, err)
		}
	}
	for _, d := range a.States().Devices {
		if d.Status == StatusError {
			t.Errorf("the current device shows the older one in error: %s", d.Reason)
		}
	}
	// And what it writes now still arrives.
	if err := a.Put("notes", "later", []byte(`{"v":3}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a later write arrives on the older device", func() error {
		if err := hasValue(b, "notes", "later", `{"v":3}`); err != nil {
			return fmt.Errorf("older device: %w", err)
		}
		return nil
	})
}

// TestPeerVersionsHeard: what a session's hellos tell of the peer's version.
func TestPeerVersionsHeard(t *testing.T) {
	p := peer.ID("\x00\x04peer")
	for _, c := range []struct {
		name      string
		before    byte
		theirs    byte
		initiator bool
		spoke     byte
		want      byte
	}{
		{"its own hello as the initiator", 0, 4, false, wire.Version, 4},
		{"an upgraded device's hello as the initiator", 4, wire.Version, false, wire.Version, wire.Version},
		{"an older answer to this side's hello", 0, 4, true, wire.Version, 4},
		{"an answer in the older version this side spoke says nothing", 4, 4, true, 4, 4},
		{"an answer in the current version", 4, wire.Version, true, wire.Version, wire.Version},
		{"no hello", 4, 0, true, wire.Version, 4},
		{"a version this side does not speak", 0, wire.Version + 1, false, wire.Version, 0},
		{"too old", 0, wire.MinVersion - 1, false, wire.Version, 0},
	} {
		var v peerVersions
		if c.before != 0 {
			v.heard(p, c.before, false, wire.Version)
		}
		v.heard(p, c.theirs, c.initiator, c.spoke)
		if got := v.of(p); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
