package mobile

import (
	"context"
	"errors"
	"strings"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// Error codes. Every error this package returns has a message of the form "CODE: detail",
// where CODE is one of these constants, so that an app (which sees only the message, as a
// Java exception or an NSError) can branch on it with ErrorCode.
const (
	// CodeNotFound: no record, conflict or device has that name.
	CodeNotFound = "not_found"
	// CodeWrongPassphrase: the passphrase does not unlock the store.
	CodeWrongPassphrase = "wrong_passphrase"
	// CodeLocked: another process (or another Node of this process) holds the store open.
	CodeLocked = "locked"
	// CodeExists: Create or Join found a store already in the directory; use Open.
	CodeExists = "exists"
	// CodeNoStore: Open found no store in the directory; use Create or Join.
	CodeNoStore = "no_store"
	// CodeInvalid: an argument was rejected: not JSON, an empty or reserved collection, an
	// unknown option or policy.
	CodeInvalid = "invalid"
	// CodeBadInvite: an invite code does not decode (a typo, a truncated paste).
	CodeBadInvite = "bad_invite"
	// CodeInviteExpired: the invite's expiry has passed; ask for a new one.
	CodeInviteExpired = "invite_expired"
	// CodeInviteRefused: the inviting device refused the code (used, revoked or replaced).
	CodeInviteRefused = "invite_refused"
	// CodeStopped: the node is stopped (Stop was called); call Start first.
	CodeStopped = "stopped"
	// CodeClosed: the node was closed.
	CodeClosed = "closed"
	// CodePaused: the operation needs the network, and the sync policy keeps it down now
	// (States tells why).
	CodePaused = "paused"
	// CodeStale: a conflict changed between reading and resolving it; read it again.
	CodeStale = "stale"
	// CodeAmbiguous: a conflict id prefix matches more than one conflict; give more of it.
	CodeAmbiguous = "ambiguous"
	// CodeUnreachable: SyncNow could not reach some devices before its timeout.
	CodeUnreachable = "unreachable"
	// CodeTimeout: the operation did not finish within its time.
	CodeTimeout = "timeout"
	// CodeFailed: anything else (an I/O error, a corrupt file); the detail says what.
	CodeFailed = "failed"
)

// Errors of this package; the other errors wrap the sentinels of node, store and consent.
var (
	errStopped = errors.New("node stopped: call Start first")
	errClosed  = errors.New("node closed")
	errPaused  = errors.New("sync is paused by the sync policy")
	errInvalid = errors.New("invalid argument")
	errNoStore = errors.New("no meshsync store in this directory: use Create or Join")
)

// codes maps sentinels to codes, first match wins.
var codes = []struct {
	err  error
	code string
}{
	{errStopped, CodeStopped},
	{errClosed, CodeClosed},
	{errPaused, CodePaused},
	{errInvalid, CodeInvalid},
	{errNoStore, CodeNoStore},
	{store.ErrNotFound, CodeNotFound},
	{consent.ErrNotFound, CodeNotFound},
	{node.ErrUnknownDevice, CodeNotFound},
	{store.ErrWrongPassphrase, CodeWrongPassphrase},
	{store.ErrLocked, CodeLocked},
	{store.ErrExists, CodeExists},
	{store.ErrInvalid, CodeInvalid},
	{store.ErrReserved, CodeInvalid},
	{consent.ErrBadGrant, CodeInvalid},
	{consent.ErrBadRule, CodeInvalid},
	{node.ErrSelf, CodeInvalid},
	{node.ErrBadInvite, CodeBadInvite},
	{node.ErrInviteExpired, CodeInviteExpired},
	{node.ErrInviteRefused, CodeInviteRefused},
	{node.ErrClosed, CodeStopped}, // the inner node went away under a call: a transition
	{store.ErrClosed, CodeStopped},
	{node.ErrNotStarted, CodePaused},
	{store.ErrStale, CodeStale},
	{store.ErrAmbiguous, CodeAmbiguous},
	{consent.ErrAmbiguous, CodeAmbiguous},
	{node.ErrUnreachable, CodeUnreachable},
	{context.DeadlineExceeded, CodeTimeout},
}

// codedError is every error the package returns: a code for apps and the wrapped cause
// for errors.Is in Go.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.code + ": " + e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// wrap gives err its code; nil stays nil.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return err
	}
	code := CodeFailed
	for _, c := range codes {
		if errors.Is(err, c.err) {
			code = c.code
			break
		}
	}
	return &codedError{code: code, err: err}
}

// ErrorCode returns the code of an error message returned by this package (the text
// before the first ": "), or CodeFailed when the message carries no known code.
func ErrorCode(message string) string {
	code, _, ok := strings.Cut(message, ": ")
	if !ok {
		return CodeFailed
	}
	for _, c := range allCodes {
		if c == code {
			return code
		}
	}
	return CodeFailed
}

var allCodes = []string{CodeNotFound, CodeWrongPassphrase, CodeLocked, CodeExists, CodeNoStore, CodeInvalid,
	CodeBadInvite, CodeInviteExpired, CodeInviteRefused, CodeStopped, CodeClosed, CodePaused, CodeStale,
	CodeAmbiguous, CodeUnreachable, CodeTimeout, CodeFailed}
