package node

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node/internal/wire"
)

// peerVersions remembers the sync version each device speaks, so that this node's own
// sessions speak an older device's version: a device of an older release refuses a
// hello newer than its own, and sessions this node opened to it failed, leaving it shown
// in error while its own sessions to this node went well. What a session's hellos tell:
// a device's hello as the initiator is its own version; as the responder it answers in
// the initiator's version or older, so only an older answer says something.
type peerVersions struct {
	mu sync.Mutex
	m  map[peer.ID]byte
}

// heard records the version of p's hello in a session: initiator is this side's role,
// spoke the version of this side's hello.
func (v *peerVersions) heard(p peer.ID, theirs byte, initiator bool, spoke byte) {
	if theirs < wire.MinVersion || theirs > wire.Version || (initiator && theirs == spoke && spoke < wire.Version) {
		return // nothing learnt: no hello, or the answer in the version this side spoke
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[peer.ID]byte{}
	}
	v.m[p] = theirs
}

// of is the version p was last heard to speak, 0 when unknown.
func (v *peerVersions) of(p peer.ID) byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[p]
}
