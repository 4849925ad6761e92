package resolve

import "errors"

// Errors returned for bad input. Callers branch on them with errors.Is; the
// returned errors wrap them with the operation and the offending detail.
var (
	// ErrInvalidPolicy: a Policy names an unknown strategy, a user fallback,
	// a negative deadline or a malformed field path.
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrNoSiblings: Resolve was called with no versions at all.
	ErrNoSiblings = errors.New("no siblings to resolve")
	// ErrTooManySiblings: more siblings than MaxSiblings.
	ErrTooManySiblings = errors.New("too many siblings")
	// ErrInvalidValue: a Value has an unknown Kind or JSON data that does not parse.
	ErrInvalidValue = errors.New("invalid value")
	// ErrInvalidJSON: text that is not one well-formed JSON document in UTF-8
	// (or has duplicate object keys).
	ErrInvalidJSON = errors.New("invalid JSON")
	// ErrTooLarge: an input is larger than its cap (MaxJSONSize,
	// MaxFieldClocksSize, MaxKeyLen, MaxDeviceIDLen).
	ErrTooLarge = errors.New("input too large")
	// ErrTooDeep: JSON or field clocks nested deeper than MaxDepth.
	ErrTooDeep = errors.New("input nested too deeply")
	// ErrCorruptClocks: a FieldClocks encoding that is truncated, malformed or
	// not in canonical form.
	ErrCorruptClocks = errors.New("corrupt field clocks")
)

// Caps on the inputs this package accepts. They are checked before allocating.
const (
	// MaxJSONSize is the largest JSON document accepted, in bytes.
	MaxJSONSize = 16 << 20
	// MaxFieldClocksSize is the largest FieldClocks encoding accepted, in bytes.
	MaxFieldClocksSize = 16 << 20
	// MaxDepth is the deepest nesting of JSON arrays/objects and of field clocks.
	MaxDepth = 64
	// MaxKeyLen is the longest object key that field clocks may carry, in bytes.
	MaxKeyLen = 64 << 10
	// MaxDeviceIDLen is the longest device id that field clocks may carry, in bytes.
	MaxDeviceIDLen = 64
	// MaxSiblings is the largest number of siblings Resolve accepts.
	MaxSiblings = 1024
)
