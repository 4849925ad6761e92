package store

import "errors"

// Errors returned when opening or creating a store.
var (
	// ErrWrongPassphrase means the passphrase does not unlock the store's mesh key.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrNoStore means the directory holds no meshsync store yet.
	ErrNoStore = errors.New("no meshsync store here")
	// ErrExists means Init found a store already present in the directory.
	ErrExists = errors.New("a meshsync store already exists here")
	// ErrWeakKDF means the store's key-derivation parameters are below the enforced floor.
	ErrWeakKDF = errors.New("key-derivation parameters below the safe floor")
	// ErrLocked means another process holds the store open.
	ErrLocked = errors.New("store in use by another process")
	// ErrCorrupt means the database file or one of its records failed a consistency check.
	ErrCorrupt = errors.New("store is corrupt")
	// ErrClosed means the store was used after Close.
	ErrClosed = errors.New("store is closed")
)

// Errors returned by record operations.
var (
	// ErrNotFound means no record (or only a deleted one) exists under the collection and key.
	ErrNotFound = errors.New("record not found")
	// ErrInvalid means a collection, key or value was rejected (empty, too long, reserved, not JSON).
	ErrInvalid = errors.New("invalid record")
	// ErrReserved means an application tried to write a reserved collection (names starting with "_").
	ErrReserved = errors.New("reserved collection")
	// ErrDiskFull means a write failed because the disk (or the user's quota) is full.
	// Nothing of the write was kept, the store stays readable, and writes succeed again
	// once space is freed, without reopening the store.
	ErrDiskFull = errors.New("disk full")
)

// Errors returned when decoding or opening envelopes from elsewhere.
var (
	// ErrMalformed means the bytes are not a well-formed envelope or payload.
	ErrMalformed = errors.New("malformed envelope")
	// ErrTooLarge means an envelope, payload or field exceeded its hard size limit.
	ErrTooLarge = errors.New("envelope too large")
	// ErrTampered means an envelope failed authentication: altered, moved to another id or
	// version, or sealed under another mesh key.
	ErrTampered = errors.New("envelope failed authentication (tampered or from another mesh)")
	// ErrUnknownKeyEpoch means an envelope names a key epoch this device holds no key for.
	ErrUnknownKeyEpoch = errors.New("envelope sealed under an unknown key epoch")
	// ErrIndexFull means the records of one collection whose ids share their first two
	// bytes reached maxLeafRecords: only ids made to collide do (items.go).
	ErrIndexFull = errors.New("record index full at this id prefix")
)

// Errors returned by backups.
var (
	// ErrBadBackup means a backup file is truncated, altered, or not a meshsync backup.
	ErrBadBackup = errors.New("backup file is damaged or not a meshsync backup")
	// ErrOtherMesh means a backup (or envelope set) belongs to a different mesh.
	ErrOtherMesh = errors.New("backup belongs to a different mesh")
)

// Errors returned by the guards against sync disasters.
var (
	// ErrMassDelete means a transaction would delete more than half of the live records of
	// a collection (of at least MassDeleteMin records) without Tx.ConfirmMassDelete.
	ErrMassDelete = errors.New("bulk delete of more than half of a collection needs confirmation")
	// ErrCounterRange means Apply refused an envelope whose version vector holds a counter
	// above MaxCounter: no honest device counts that far, and a local write above it would
	// wrap.
	ErrCounterRange = errors.New("version counter beyond the limit")
	// ErrCounterExhausted means a local write would take this device's counter for the
	// record past MaxCounter; the write is refused rather than wrap to 0.
	ErrCounterExhausted = errors.New("this device's version counter for the record is exhausted")
)

// Errors returned by key rotation and device revocation (rotate.go).
var (
	// ErrRevoked means an envelope was written by a removed device after its removal point
	// (Store.RevokeDevice); Apply refuses it on every store, blind replicas included.
	ErrRevoked = errors.New("envelope written by a removed device after its removal")
	// ErrEpochRange means a key epoch beyond MaxEpoch, or far above every epoch the store
	// knows: refused so that epochs only go up and never wrap.
	ErrEpochRange = errors.New("key epoch out of range")
	// ErrNoKeyAgreementKey means a device named as a key recipient has published no
	// key-agreement key, or its key does not parse.
	ErrNoKeyAgreementKey = errors.New("device has no usable key-agreement key")
)

// Errors returned when a record that carries authority (a record of a reserved
// collection) does not prove it (authority.go). Apply reports them in ApplyResult.Rejected.
var (
	// ErrUnsigned means a record of a reserved collection carries no signature: written by
	// a meshsync older than signatures, or forged.
	ErrUnsigned = errors.New("record carries no signature")
	// ErrBadSignature means the signature does not verify under its writer's key.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrUnknownSigner means the writer is not a member this store knows (yet: its own
	// device record may arrive later, and the record is fetched again then).
	ErrUnknownSigner = errors.New("written by a device that is not a known member")
	// ErrNotAllowed means the writer may not write this record: another device's record
	// or removal, a grant in another's name, a change of a device's key, a deleted removal.
	ErrNotAllowed = errors.New("writer may not change this record")
	// ErrNoSigningKey means the store holds no device signing key yet (a store made before
	// signatures existed, before its node first opened it).
	ErrNoSigningKey = errors.New("this store has no device signing key yet: open it with meshsync once (daemon or any node command) to upgrade it")
)
