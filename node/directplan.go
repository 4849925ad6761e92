package node

import "time"

// The schedule of attempts to make a relayed path direct. It is pure: the device loop
// (direct.go) reads the host, passes what it saw, the time and a random number, and runs
// the attempt the plan asks for.

// DirectState says where the attempts to reach a relayed device directly stand.
type DirectState string

// The DirectStates.
const (
	// DirectTrying: this device tries hole punching (DCUtR) on a capped, jittered
	// backoff; DirectTry.Next says when.
	DirectTrying DirectState = "trying"
	// DirectNoAddress: this device knows no public address of its own yet (its hole
	// punching starts once identify with a public peer, such as the relay, tells it one).
	DirectNoAddress DirectState = "waiting_for_own_address"
	// DirectDeviceNoAddress: the device has not announced hole punching yet (it knows no
	// public address of its own yet).
	DirectDeviceNoAddress DirectState = "waiting_for_device_address"
	// DirectDeviceTries: the relayed connections were all dialled by this device; hole
	// punching is started by the side that received one, so the other device tries.
	DirectDeviceTries DirectState = "device_tries"
)

// DirectTry is, while a device is reached only through a relay, how this device tries to
// make the path direct.
type DirectTry struct {
	State DirectState `json:"state"`
	// Attempts counts the hole-punch attempts of this device that failed since the
	// device was last reached directly (or first relayed).
	Attempts int `json:"attempts"`
	// LastError is why the last attempt failed.
	LastError string `json:"last_error,omitempty"`
	// Next is when the next attempt is due (State DirectTrying).
	Next time.Time `json:"next,omitzero"`
}

// Timing of the attempts: the first soon after the device is reached through a relay
// only (libp2p itself tries once when the relayed connection comes in), then doubling up
// to directRetryMax, each scaled by a random factor within ±directJitter. While something
// has to happen first (a public address on either side) the plan looks again every
// directPollMin, doubling up to directPollMax (an idle node wakes no more than once a
// minute); the events of the host (new protocols on either side, connections) wake it
// sooner.
const (
	directFirst    = 2 * time.Second
	directRetryMin = 5 * time.Second
	directRetryMax = 5 * time.Minute
	directJitter   = 0.2
	directPollMin  = time.Second
	directPollMax  = 2 * time.Minute
	directBusy     = 3 * time.Second // another attempt (libp2p's own) was running
)

// directCond is what the device loop saw of the host when it looked.
type directCond struct {
	relayedOnly bool // connected to the device, only through relays
	initiator   bool // one of those connections was dialled by the device (hole punching starts here)
	ownReady    bool // this host runs hole punching (it knows a public address)
	peerReady   bool // the device announced hole punching
}

// directPlan is the schedule towards one device. The zero value is a device that is not
// relayed.
type directPlan struct {
	try     DirectTry
	active  bool          // the device is relayed only
	running bool          // an attempt runs
	due     time.Time     // earliest time of the next attempt
	backoff time.Duration // the last delay between attempts
	poll    time.Duration // the last delay between looks while waiting
	next    time.Time     // when the loop should look again; zero: not until something changes
}

// look decides, at now, with the host as c shows it, whether to start an attempt; r is a
// random number in [0, 1). Afterwards next says when to look again.
func (p *directPlan) look(now time.Time, c directCond, r float64) (attempt bool) {
	if !c.relayedOnly {
		*p = directPlan{}
		return false
	}
	if !p.active {
		p.active = true
		p.due = now.Add(scaled(directFirst, r))
	}
	if p.running {
		p.next = time.Time{}
		return false
	}
	var wait DirectState
	switch {
	case !c.ownReady:
		wait = DirectNoAddress
	case !c.peerReady:
		wait = DirectDeviceNoAddress
	case !c.initiator:
		wait = DirectDeviceTries
	}
	if wait != "" {
		if p.try.State != wait {
			p.poll = 0 // something changed: look again soon
		}
		p.try.State, p.try.Next = wait, time.Time{}
		p.poll = min(max(2*p.poll, directPollMin), directPollMax)
		p.next = now.Add(scaled(p.poll, r))
		return false
	}
	p.poll = 0
	p.try.State, p.try.Next = DirectTrying, p.due
	if now.Before(p.due) {
		p.next = p.due
		return false
	}
	p.running, p.next = true, time.Time{}
	return true
}

// done records the end of the attempt look started: err nil when it made a direct
// connection, busy when it did not run because another attempt was running.
func (p *directPlan) done(now time.Time, err error, busy bool, r float64) {
	p.running = false
	switch {
	case err == nil:
		// The next look finds the direct connection (or, should it be gone already,
		// starts over).
		p.due, p.next = now, now
		return
	case busy:
		p.due = now.Add(scaled(directBusy, r))
	default:
		p.try.Attempts++
		p.try.LastError = err.Error()
		p.backoff = min(max(2*p.backoff, directRetryMin), directRetryMax)
		p.due = now.Add(scaled(p.backoff, r))
	}
	p.try.State, p.try.Next, p.next = DirectTrying, p.due, p.due
}

// state is what status shows: nil while the device is not relayed only.
func (p *directPlan) state() *DirectTry {
	if !p.active {
		return nil
	}
	t := p.try
	return &t
}

// scaled returns d scaled by the factor 1-directJitter+2·directJitter·r (r in [0, 1)).
func scaled(d time.Duration, r float64) time.Duration {
	return time.Duration(float64(d) * (1 - directJitter + 2*directJitter*r))
}
