package view

import (
	"errors"
	"time"

	"github.com/meshsync/meshsync/resolve"
)

// Policy is a collection's conflict policy as it leaves the process (the local API and
// the mobile bindings): resolve.Policy with the deadline in whole seconds.
type Policy struct {
	// Strategy: "timestamp" (default), "priority", "merge" or "user".
	Strategy string `json:"strategy,omitempty"`
	// Fallback decides a "user" conflict at its deadline (default "timestamp").
	Fallback string `json:"fallback,omitempty"`
	// DeadlineSeconds is how long a "user" conflict waits (default 86400).
	DeadlineSeconds int64 `json:"deadline_seconds,omitempty"`
	// PriorityField is a dotted path to a number field that wins under "priority".
	PriorityField string `json:"priority_field,omitempty"`
	// DeviceRank ranks device ids under "priority" (higher wins).
	DeviceRank map[string]int `json:"device_rank,omitempty"`
	// Critical lists dotted paths whose concurrent change always waits for the user.
	Critical []string `json:"critical,omitempty"`
	// Explicit (output only) reports that the collection has its own policy.
	Explicit bool `json:"explicit,omitempty"`
}

// FromPolicy is the JSON form of p; a deadline's fraction of a second is dropped.
func FromPolicy(p resolve.Policy, explicit bool) Policy {
	d := Policy{Strategy: string(p.Strategy), Fallback: string(p.Fallback), DeadlineSeconds: int64(p.Deadline / time.Second),
		PriorityField: p.PriorityField, Critical: p.Critical, Explicit: explicit}
	if len(p.DeviceRank) > 0 {
		d.DeviceRank = map[string]int{}
		for k, v := range p.DeviceRank {
			d.DeviceRank[string(k)] = v
		}
	}
	return d
}

// Policy is the policy d describes, validated by resolve.Policy.Validate.
func (d Policy) Policy() (resolve.Policy, error) {
	if d.DeadlineSeconds < 0 || d.DeadlineSeconds > int64(resolve.MaxDeadline/time.Second) {
		return resolve.Policy{}, errors.New("deadline_seconds out of range")
	}
	p := resolve.Policy{Strategy: resolve.Strategy(d.Strategy), Fallback: resolve.Strategy(d.Fallback),
		Deadline: time.Duration(d.DeadlineSeconds) * time.Second, PriorityField: d.PriorityField, Critical: d.Critical}
	if len(d.DeviceRank) > 0 {
		p.DeviceRank = map[resolve.DeviceID]int{}
		for k, v := range d.DeviceRank {
			p.DeviceRank[resolve.DeviceID(k)] = v
		}
	}
	if err := p.Validate(); err != nil {
		return resolve.Policy{}, err
	}
	return p, nil
}
