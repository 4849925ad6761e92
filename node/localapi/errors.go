package localapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/share"
	"github.com/meshsync/meshsync/store"
)

// Errors of the local API itself.
var (
	// ErrNoDaemon means no daemon answers on the data directory's socket.
	ErrNoDaemon = errors.New("daemon not running")
	// ErrOldDaemon means the daemon on the socket serves another version of this API (it
	// runs an older or newer meshsync binary).
	ErrOldDaemon = errors.New("the running daemon serves another version of the control API")
	// ErrBadRequest means the server refused a request as it stands (a malformed body, a
	// missing argument); its text says what to change.
	ErrBadRequest = errors.New("bad request")
)

// codes name on the wire the sentinel errors a caller branches on, so that the client
// returns errors that errors.Is recognises as the packages' own. An error answer lists
// the code of every sentinel its error wraps, in this order; the first picks the HTTP
// status.
var codes = []struct {
	code   string
	err    error
	status int
}{
	// store: opening, records, backups
	{"not_found", store.ErrNotFound, http.StatusNotFound},
	{"invalid", store.ErrInvalid, http.StatusBadRequest},
	{"reserved", store.ErrReserved, http.StatusBadRequest},
	{"out_of_scope", store.ErrOutOfScope, http.StatusBadRequest},
	{"unsent", store.ErrUnsent, http.StatusConflict},
	{"too_large", store.ErrTooLarge, http.StatusBadRequest},
	{"wrong_passphrase", store.ErrWrongPassphrase, http.StatusBadRequest},
	{"stale", store.ErrStale, http.StatusConflict},
	{"ambiguous", store.ErrAmbiguous, http.StatusBadRequest},
	{"bad_backup", store.ErrBadBackup, http.StatusBadRequest},
	{"other_mesh", store.ErrOtherMesh, http.StatusBadRequest},
	{"corrupt", store.ErrCorrupt, http.StatusInternalServerError},
	{"weak_kdf", store.ErrWeakKDF, http.StatusInternalServerError},
	{"blind", store.ErrBlind, http.StatusForbidden},
	{"disk_full", store.ErrDiskFull, http.StatusInsufficientStorage},
	{"no_store", store.ErrNoStore, http.StatusInternalServerError},
	{"exists", store.ErrExists, http.StatusConflict},
	{"locked", store.ErrLocked, http.StatusConflict},

	// node: pairing, devices, sync
	{"bad_invite", node.ErrBadInvite, http.StatusBadRequest},
	{"invite_expired", node.ErrInviteExpired, http.StatusGone},
	{"invite_refused", node.ErrInviteRefused, http.StatusForbidden},
	{"unknown_device", node.ErrUnknownDevice, http.StatusNotFound},
	{"self", node.ErrSelf, http.StatusBadRequest},
	{"unreachable", node.ErrUnreachable, http.StatusGatewayTimeout},
	{"node_closed", node.ErrClosed, http.StatusServiceUnavailable},
	{"not_started", node.ErrNotStarted, http.StatusServiceUnavailable},

	// consent and sharing; share_refused before bad_receipt: a refusal also has no receipt
	{"consent_not_found", consent.ErrNotFound, http.StatusNotFound},
	{"bad_rule", consent.ErrBadRule, http.StatusBadRequest},
	{"bad_grant", consent.ErrBadGrant, http.StatusBadRequest},
	{"consent_ambiguous", consent.ErrAmbiguous, http.StatusBadRequest},
	{"mesh_device", consent.ErrMeshDevice, http.StatusBadRequest},
	{"consent_too_large", consent.ErrTooLarge, http.StatusBadRequest},
	{"decided", consent.ErrDecided, http.StatusConflict},
	{"no_grant", consent.ErrNoGrant, http.StatusForbidden},
	{"wrong_destination", consent.ErrWrongDestination, http.StatusForbidden},
	{"wrong_purpose", consent.ErrWrongPurpose, http.StatusForbidden},
	{"revoked", consent.ErrRevoked, http.StatusForbidden},
	{"expired", consent.ErrExpired, http.StatusForbidden},
	{"share_refused", share.ErrRefused, http.StatusBadGateway},
	{"bad_receipt", consent.ErrBadReceipt, http.StatusBadGateway},

	// the API and the request
	{"bad_request", ErrBadRequest, http.StatusBadRequest},
	{"no_daemon", ErrNoDaemon, http.StatusServiceUnavailable},
	{"timeout", context.DeadlineExceeded, http.StatusGatewayTimeout},
	{"canceled", context.Canceled, http.StatusServiceUnavailable},
}

// codesOf lists the codes of the sentinels err wraps.
func codesOf(err error) []string {
	var out []string
	for _, c := range codes {
		if errors.Is(err, c.err) {
			out = append(out, c.code)
		}
	}
	return out
}

// statusOf is the HTTP status of an error answer.
func statusOf(err error) int {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.status
		}
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON of an error answer.
type errorBody struct {
	// Error is the error's text, hints included.
	Error string `json:"error"`
	// Codes name the sentinel errors it wraps (see codes); empty for others.
	Codes []string `json:"codes,omitempty"`
}

// remoteError is an error the server reported: its text, and the sentinels it wraps.
type remoteError struct {
	msg       string
	sentinels []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.sentinels }

// errorFromWire rebuilds an error from its text and codes.
func errorFromWire(b errorBody) error {
	e := &remoteError{msg: b.Error}
	for _, code := range b.Codes {
		for _, c := range codes {
			if c.code == code {
				e.sentinels = append(e.sentinels, c.err)
			}
		}
	}
	return e
}

// badRequest is a request refused as it stands: its text, wrapping ErrBadRequest.
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }
func (e badRequest) Unwrap() error { return ErrBadRequest }

// withHint adds the fix to a consent refusal: the client cannot see the struct that
// carries it.
func withHint(err error) error {
	var de *consent.DeniedError
	if errors.As(err, &de) {
		return &remoteError{msg: err.Error() + "; " + de.Hint(), sentinels: []error{err}}
	}
	return err
}
