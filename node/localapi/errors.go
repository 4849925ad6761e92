package localapi

import (
	"errors"

	"github.com/meshsync/meshsync/store"
)

// ErrNoDaemon means no daemon answers on the data directory's socket.
var ErrNoDaemon = errors.New("daemon not running")

// codes map the sentinel errors a caller branches on to stable names on the wire, so that
// the client returns errors that errors.Is recognises as the store's own.
var codes = []struct {
	code string
	err  error
}{
	{"not_found", store.ErrNotFound},
	{"invalid", store.ErrInvalid},
	{"reserved", store.ErrReserved},
	{"too_large", store.ErrTooLarge},
	{"wrong_passphrase", store.ErrWrongPassphrase},
	{"stale", store.ErrStale},
	{"ambiguous", store.ErrAmbiguous},
	{"bad_backup", store.ErrBadBackup},
	{"other_mesh", store.ErrOtherMesh},
	{"corrupt", store.ErrCorrupt},
	{"weak_kdf", store.ErrWeakKDF},
	{"blind", store.ErrBlind},
	{"disk_full", store.ErrDiskFull},
}

func codeOf(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "error"
}

// remoteError is an error the daemon reported: its text, and the sentinel it wraps.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func errorFromWire(code, msg string) error {
	for _, c := range codes {
		if c.code == code {
			return &remoteError{msg: msg, sentinel: c.err}
		}
	}
	return &remoteError{msg: msg}
}

// errorBody is the JSON body of every failed request.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}
