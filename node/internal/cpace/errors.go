package cpace

import "errors"

// Errors returned by Start.
var (
	// ErrInvalidInput means Start was given an unknown role, an empty password or
	// associated data over MaxADLen, or the random source returned only zeros.
	ErrInvalidInput = errors.New("invalid cpace input")
)

// Errors returned by Finish and DecodeMessage: the peer's message is refused and
// the run must be abandoned (the draft's "abort").
var (
	// ErrMalformed means the peer's message is not lv_cat(Y, AD) with a 32-byte Y,
	// at most MaxADLen bytes of AD, minimal length encodings and nothing after.
	ErrMalformed = errors.New("malformed cpace message")
	// ErrInvalidPoint means the peer's share is not the canonical encoding of a
	// ristretto255 element, or it is the identity (or otherwise led to the
	// identity as shared point).
	ErrInvalidPoint = errors.New("invalid cpace share")
	// ErrUsed means Finish was called on a state that already finished (or
	// failed): a secret scalar serves one run only.
	ErrUsed = errors.New("cpace state already used")
)
