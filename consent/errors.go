package consent

import "errors"

// Errors of Check: why no grant covers a share. Check returns them inside a *DeniedError
// that names the collection, purpose and destination; branch with errors.Is.
var (
	// ErrNoGrant means no grant names the collection at all.
	ErrNoGrant = errors.New("no grant for this collection")
	// ErrWrongDestination means grants exist for the collection, but none to this peer.
	ErrWrongDestination = errors.New("no grant for this collection to this peer")
	// ErrWrongPurpose means grants exist for the collection and peer, but not for this purpose.
	ErrWrongPurpose = errors.New("no grant for this purpose")
	// ErrRevoked means the only grants that would cover the share were revoked.
	ErrRevoked = errors.New("grant revoked")
	// ErrExpired means the only grants that would cover the share have expired.
	ErrExpired = errors.New("grant expired")
)

// Errors of decoding and validation.
var (
	// ErrBadRule means a field rule does not parse or is not valid.
	ErrBadRule = errors.New("invalid field rule")
	// ErrBadGrant means a grant is incomplete or malformed.
	ErrBadGrant = errors.New("invalid grant")
	// ErrNotObject means Apply got a document that is not a JSON object.
	ErrNotObject = errors.New("document is not a JSON object")
	// ErrTooLarge means an input exceeded a hard size limit.
	ErrTooLarge = errors.New("too large")
	// ErrNoKey means a grant pseudonymizes a field but no (or a too short) consent key was given.
	ErrNoKey = errors.New("pseudonymize needs a consent key of at least 32 bytes")
	// ErrMeshDevice means a grant's destination is a device of the person's own mesh; devices
	// of the mesh sync, they are not share destinations.
	ErrMeshDevice = errors.New("destination is a device of this mesh")
)

// Errors of receipts.
var (
	// ErrBadReceipt means a receipt is malformed, its signature does not verify, or it does
	// not describe what was sent.
	ErrBadReceipt = errors.New("receipt does not verify")
)

// Errors of the registry.
var (
	// ErrNotFound means no grant or request has that id.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous means an id prefix matches more than one grant or request.
	ErrAmbiguous = errors.New("ambiguous id prefix")
	// ErrDecided means a request was already approved or denied.
	ErrDecided = errors.New("request already decided")
)
