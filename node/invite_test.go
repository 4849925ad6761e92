package node

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshsync/meshsync/store"
)

// TestInviteMaxExpiry: an invite lives at most MaxInviteExpiry; a longer lifetime is
// refused as invalid, naming the maximum.
func TestInviteMaxExpiry(t *testing.T) {
	n := newMesh(t, 1)[0]
	if _, until, err := n.Invite(MaxInviteExpiry); err != nil || until.After(time.Now().Add(MaxInviteExpiry)) {
		t.Fatalf("invite for the maximum: until %v, %v", until, err)
	}
	for _, d := range []time.Duration{MaxInviteExpiry + time.Second, 30 * 24 * time.Hour, 1 << 62} {
		_, _, err := n.Invite(d)
		if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "maximum of 24h") {
			t.Errorf("invite for %s: %v, want ErrInvalid naming the maximum", d, err)
		}
		if _, _, err := n.InviteReplica(d); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("replica invite for %s: %v, want ErrInvalid", d, err)
		}
	}
}
