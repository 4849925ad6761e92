package merkle

import "errors"

// Errors a reconciliation session ends with. Each is wrapped with context; test with
// errors.Is. Once a Session returns an error, every later call returns it again.
var (
	// ErrMalformed: a message, node or prefix key does not decode.
	ErrMalformed = errors.New("merkle: malformed input")
	// ErrVersion: the peer speaks a wire format version this package does not know.
	ErrVersion = errors.New("merkle: unsupported wire format version")
	// ErrTooLarge: a message exceeds Config.MaxMessageBytes, or a local subtree is too
	// dense to summarise.
	ErrTooLarge = errors.New("merkle: too large")
	// ErrProtocol: the peer sent something the protocol does not allow at this point: a
	// prefix it was not offered or already answered, a message after the end, an answer
	// that does not match its question.
	ErrProtocol = errors.New("merkle: protocol violation")
	// ErrBudget: the session used more rounds or work than Config allows.
	ErrBudget = errors.New("merkle: budget exceeded")
	// ErrMismatch: the differences found do not account for the difference of the two
	// roots, and retries with wider fingerprints did not fix it. With an honest peer this
	// does not happen; it means the peer's summary is inconsistent.
	ErrMismatch = errors.New("merkle: summaries inconsistent")
)
