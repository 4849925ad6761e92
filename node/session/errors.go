package session

import "errors"

// Errors that end a session. Package node re-exports them under the same names, so
// errors.Is works on either.
var (
	// ErrNotMember means the peer's hello does not prove the mesh key.
	ErrNotMember = errors.New("peer is not a device of this mesh")
	// ErrProtocol means the peer broke the protocol: a malformed or unexpected frame, an
	// envelope it was not asked for, a batch beyond its claim, a count that does not add
	// up.
	ErrProtocol = errors.New("protocol violation")
	// ErrOldPeer means the peer speaks an older sync version.
	ErrOldPeer = errors.New("peer runs an older meshsync")
	// ErrSessionCapped means the session received Config.MaxBytes and ended after
	// applying what arrived.
	ErrSessionCapped = errors.New("sync session reached its byte cap")
	// ErrRolledBack means the peer remembers more of this store than it holds: the caller
	// starts a new store epoch (Output.Rollback).
	ErrRolledBack = errors.New("this store is older than a copy a peer has seen (restored from an old file?): started a new epoch, the next sync reconciles in full")
)

// Violation names the bound a peer broke, for the caller's counters.
type Violation int

// The violations a session counts.
const (
	// NoViolation: the session ended well, or for a reason not counted.
	NoViolation Violation = iota
	// Unasked: after a reconciliation, an envelope of an id that was not asked for; in an
	// id-ordered stream, a record out of order or an envelope sent twice.
	Unasked
	// Claim: on the fast path, a batch beyond the range the peer's hello claimed; in an
	// id-ordered stream, more records than it claimed.
	Claim
	// Capped: the session reached Config.MaxBytes.
	Capped
)

func (v Violation) String() string {
	return [...]string{"none", "unasked", "claim", "capped"}[v]
}
