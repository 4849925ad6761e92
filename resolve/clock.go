package resolve

import (
	"fmt"
	"time"
)

// Timestamp is a hybrid logical clock value: wall milliseconds since the Unix
// epoch shifted left by 16 bits, or'ed with a 16-bit logical counter. Plain
// integer order is causal-compatible time order.
type Timestamp uint64

const (
	logicalBits = 16
	maxWallMs   = 1<<(64-logicalBits) - 1
)

// MakeTimestamp builds a Timestamp from wall milliseconds and a logical
// counter. Wall times before the epoch are clamped to 0, times past the year
// ~10,900 to the largest representable wall time.
func MakeTimestamp(wallMs int64, logical uint16) Timestamp {
	if wallMs < 0 {
		wallMs = 0
	}
	if wallMs > maxWallMs {
		wallMs = maxWallMs
	}
	return Timestamp(uint64(wallMs)<<logicalBits | uint64(logical))
}

// WallMs returns the wall-clock part in milliseconds since the Unix epoch.
func (t Timestamp) WallMs() int64 { return int64(uint64(t) >> logicalBits) }

// Logical returns the logical counter part.
func (t Timestamp) Logical() uint16 { return uint16(t) }

// Time returns the wall-clock part as a UTC time.
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.WallMs()).UTC() }

// String formats the timestamp as RFC 3339 time plus the logical counter.
func (t Timestamp) String() string {
	return fmt.Sprintf("%s+%d", t.Time().Format("2006-01-02T15:04:05.000Z07:00"), t.Logical())
}

// DefaultMaxSkew is the bound Clock uses when MaxSkew is zero.
const DefaultMaxSkew = 10 * time.Minute

// Clock is a pure hybrid logical clock: it never reads the system clock, the
// caller passes the current wall time in. Persist Last and restore it on
// start so that the clock never runs backwards across restarts. The zero
// value is ready to use. A Clock is not safe for concurrent use.
type Clock struct {
	// Last is the largest timestamp returned or observed so far.
	Last Timestamp
	// MaxSkew bounds how far ahead of the local wall time a remote clock
	// may drag this clock. Zero means DefaultMaxSkew.
	MaxSkew time.Duration
}

func (c *Clock) maxSkew() time.Duration {
	if c.MaxSkew <= 0 {
		return DefaultMaxSkew
	}
	return c.MaxSkew
}

// Now returns a timestamp strictly greater than every value this clock has
// returned or observed (unless Last is already the largest Timestamp), and
// at least the wall time now. If now jumps backwards the clock keeps going
// from Last with the logical counter.
func (c *Clock) Now(now time.Time) Timestamp {
	wall := MakeTimestamp(now.UnixMilli(), 0)
	switch {
	case wall > c.Last:
		c.Last = wall
	case c.Last < ^Timestamp(0):
		// The logical counter carries into the wall part when it overflows,
		// which keeps the order strict.
		c.Last++
	}
	return c.Last
}

// Observe takes in a timestamp seen on a remote version so that the next Now
// is greater than it. A remote timestamp more than MaxSkew ahead of now is
// kept by the caller but moves this clock only up to now+MaxSkew, and
// clamped reports that. skew is how far remote is ahead of now (zero when it
// is not ahead), so the caller can report a device with a wrong clock.
func (c *Clock) Observe(remote Timestamp, now time.Time) (skew time.Duration, clamped bool) {
	nowMs := now.UnixMilli()
	if ahead := remote.WallMs() - nowMs; ahead > 0 {
		skew = time.Duration(ahead) * time.Millisecond
	}
	limit := MakeTimestamp(nowMs+c.maxSkew().Milliseconds(), 0)
	target := remote
	if skew > c.maxSkew() {
		clamped = true
		target = limit
	}
	if target > c.Last {
		c.Last = target
	}
	return skew, clamped
}
