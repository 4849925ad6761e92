package node

import (
	"errors"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/node/session"
)

// Errors a caller may branch on.
var (
	// ErrBadInvite means an invite code does not decode (a typo, a truncated paste).
	ErrBadInvite = wire.ErrBadInvite
	// ErrInviteExpired means the invite's expiry has passed.
	ErrInviteExpired = errors.New("invite expired: create a new one with Invite")
	// ErrInviteRefused means the inviter refused the join: the code was already used, was
	// revoked after too many wrong attempts, or is not the inviter's current invite.
	ErrInviteRefused = errors.New("invite refused by the inviting device (used, revoked or replaced)")
	// ErrInviterUnreachable means the joiner reached the inviting device at none of the
	// addresses its invite names (the error lists them): the invite was not used.
	ErrInviterUnreachable = errors.New("the inviting device is unreachable")
	// ErrPairTimeout means the inviting device was reached but pairing did not finish in
	// time; the invite may still be open.
	ErrPairTimeout = errors.New("pairing timed out")
	// ErrNotStarted means the operation needs the network and Start was not called.
	ErrNotStarted = errors.New("node not started")
	// ErrClosed means the node was closed.
	ErrClosed = errors.New("node closed")
	// ErrUnknownDevice means no device of the mesh has that id.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrSelf means the operation cannot target this device (removing itself).
	ErrSelf = errors.New("operation not allowed on this device itself")
	// ErrUnreachable means some devices could not be reached by WaitSynced.
	ErrUnreachable = errors.New("some devices are unreachable")
	// ErrNotMember means a peer is not a current device of the mesh.
	ErrNotMember = session.ErrNotMember
	// ErrProtocol means a peer broke the sync or pairing protocol; the session ended.
	ErrProtocol = session.ErrProtocol
	// ErrOldPeer means the peer runs a meshsync release too old to sync with this one (it
	// does not sign the records that change the mesh): upgrade it.
	ErrOldPeer = session.ErrOldPeer
	// ErrSessionCapped means a sync session received its cap of bytes (2 GiB) and ended
	// after applying what arrived; the next session continues from there.
	ErrSessionCapped = session.ErrSessionCapped
	// ErrRolledBack means a peer remembered more of this store than it holds: the store
	// was put back from an older copy. It started a new epoch; the next session
	// reconciles everything by Merkle summary and nothing the peer holds is lost.
	ErrRolledBack = session.ErrRolledBack
)
