package resolve

import (
	"fmt"
	"time"
)

// Strategy names how concurrent versions of a record are resolved.
type Strategy string

// The four strategies.
const (
	// StrategyTimestamp: the version with the highest hybrid clock wins,
	// ties broken by the higher device id.
	StrategyTimestamp Strategy = "timestamp"
	// StrategyPriority: the version with the higher priority wins, by the
	// numeric field Policy.PriorityField of the value if set, else by
	// Policy.DeviceRank of the writing device; ties fall back to timestamp.
	StrategyPriority Strategy = "priority"
	// StrategyMerge: JSON objects are merged field by field using their
	// field clocks; anything else falls back to timestamp.
	StrategyMerge Strategy = "merge"
	// StrategyUser: the conflict stays open for the user until its
	// deadline, then Policy.Fallback decides.
	StrategyUser Strategy = "user"
)

// Defaults applied by Policy.WithDefaults.
const (
	DefaultStrategy = StrategyTimestamp
	DefaultFallback = StrategyTimestamp
	DefaultDeadline = 24 * time.Hour
)

// Policy is a collection's conflict policy. The zero value means timestamp.
// It is stored as a synced record, so its JSON form is part of the format.
type Policy struct {
	// Strategy is the collection's strategy; empty means DefaultStrategy.
	Strategy Strategy `json:"strategy,omitempty"`
	// Fallback is the strategy applied when a user-choice conflict passes
	// its deadline; empty means DefaultFallback. It may not be "user".
	Fallback Strategy `json:"fallback,omitempty"`
	// Deadline is how long a user-choice conflict waits, counted from the
	// latest wall time among the conflicting versions; zero means
	// DefaultDeadline.
	Deadline time.Duration `json:"deadline,omitempty"`
	// PriorityField is a dotted path ("a.b") to a numeric field of the
	// value whose larger value wins under the priority strategy. A version
	// without that number ranks below every version with one.
	PriorityField string `json:"priority_field,omitempty"`
	// DeviceRank ranks devices for the priority strategy (higher wins);
	// unlisted devices rank 0. Used when PriorityField is empty, and to
	// break ties of PriorityField.
	DeviceRank map[DeviceID]int `json:"device_rank,omitempty"`
	// Critical lists dotted field paths whose concurrent change always opens
	// a user-choice conflict, whatever the strategy; its deadline fallback
	// is the collection's own strategy (or Fallback under "user").
	Critical []string `json:"critical,omitempty"`
}

// MaxDeadline is the longest Policy.Deadline accepted.
const MaxDeadline = 366 * 24 * time.Hour

// Validate reports whether the policy is usable: known strategies, a
// fallback that is not "user", a deadline between 0 and MaxDeadline,
// well-formed field paths, and something to rank by under "priority".
func (p Policy) Validate() error {
	if !knownStrategy(p.Strategy, true) {
		return fmt.Errorf("%w: unknown strategy %q", ErrInvalidPolicy, p.Strategy)
	}
	if !knownStrategy(p.Fallback, true) {
		return fmt.Errorf("%w: unknown fallback %q", ErrInvalidPolicy, p.Fallback)
	}
	if p.Fallback == StrategyUser {
		return fmt.Errorf("%w: the fallback cannot be %q", ErrInvalidPolicy, StrategyUser)
	}
	if p.Deadline < 0 || p.Deadline > MaxDeadline {
		return fmt.Errorf("%w: deadline %v outside 0..%v", ErrInvalidPolicy, p.Deadline, MaxDeadline)
	}
	if p.PriorityField != "" {
		if _, err := splitPath(p.PriorityField); err != nil {
			return fmt.Errorf("%w: priority field: %v", ErrInvalidPolicy, err)
		}
	}
	for _, c := range p.Critical {
		if _, err := splitPath(c); err != nil {
			return fmt.Errorf("%w: critical field: %v", ErrInvalidPolicy, err)
		}
	}
	usesPriority := p.Strategy == StrategyPriority || (p.Strategy == StrategyUser && p.Fallback == StrategyPriority)
	if usesPriority && p.PriorityField == "" && len(p.DeviceRank) == 0 {
		return fmt.Errorf("%w: priority needs a priority field or device ranks", ErrInvalidPolicy)
	}
	return nil
}

func knownStrategy(s Strategy, emptyOK bool) bool {
	switch s {
	case StrategyTimestamp, StrategyPriority, StrategyMerge, StrategyUser:
		return true
	case "":
		return emptyOK
	}
	return false
}

// WithDefaults returns p with its zero fields set to the defaults.
func (p Policy) WithDefaults() Policy {
	if p.Strategy == "" {
		p.Strategy = DefaultStrategy
	}
	if p.Fallback == "" {
		p.Fallback = DefaultFallback
	}
	if p.Deadline == 0 {
		p.Deadline = DefaultDeadline
	}
	return p
}
