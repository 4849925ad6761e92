package session

import (
	"bytes"
	"time"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/store"
)

// Tombstones and long absences.
//
// Every store collects its tombstones once they are older than its horizon (the store
// caps the horizon at its last contact with another device, so it never drops a delete it
// may not have shown the mesh). Each hello carries the sender's horizon and last contact.
// A device whose last contact is older than its peer's horizon was away while the peer
// dropped deletes it never heard of: merging would hand the deleted records back. It
// resyncs fully instead: it takes everything from the peer, sends only what it wrote or
// received after its last contact (plus its versions of records the peer also holds,
// which cannot resurrect anything), and forgets the old records the peer no longer holds.

// horizonSlack is how far beyond its own now − TTL a side believes a peer's horizon:
// room for clocks that disagree, and no more, so that a peer claiming a far-future horizon
// cannot make a device that was in touch last week drop its records.
const horizonSlack = 24 * time.Hour

// Horizon is what a hello says about tombstone collection.
type Horizon struct {
	Horizon     time.Time // the sender may have dropped any tombstone older (zero: none)
	LastContact time.Time // the sender's last completed session (zero: never)
}

// msTime is the time of a hello's millisecond field; zero for 0.
func msTime(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// TimeMs is the hello field of t; 0 for the zero time.
func TimeMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixMilli(), 0)
}

// helloHorizon is what h says about its sender's tombstones.
func helloHorizon(h *wire.Hello) Horizon {
	return Horizon{Horizon: msTime(h.Horizon), LastContact: msTime(h.LastContact)}
}

// ResyncPlan is what a session does about tombstone horizons.
type ResyncPlan struct {
	// Merkle: one side is behind the other's horizon, so the session reconciles by
	// Merkle summary (both sides compute the same value from the two hellos).
	Merkle bool
	// Self: this side resyncs fully (it trusts the peer's horizon enough).
	Self bool
	// Peer: the peer is behind this side's horizon and resyncs fully.
	Peer bool
	// Away is how long the side that resyncs was out of touch.
	Away time.Duration
	// Adopt is the peer's horizon as far as this side believes it (set with Self): once
	// resynced, this side holds what the peer holds and takes on its horizon, so that a
	// device that has not collected yet cannot hand back a tombstone the peer dropped.
	Adopt time.Time
}

// PlanResync decides, from the two hellos' horizons, which side (if any) resyncs fully.
// now and ttl are this side's clock and tombstone TTL; initiator breaks the tie of two
// stale sides (which honest stores cannot produce: each caps its horizon at its own last
// contact). A side that never synced has nothing the mesh deleted: it merges.
func PlanResync(now time.Time, ttl time.Duration, self, peer Horizon, initiator bool) ResyncPlan {
	behind := func(h Horizon, other time.Time) bool {
		return !h.LastContact.IsZero() && other.After(h.LastContact)
	}
	selfBehind, peerBehind := behind(self, peer.Horizon), behind(peer, self.Horizon)
	if selfBehind && peerBehind {
		// The side with the later contact holds the fresher view of the mesh.
		switch {
		case self.LastContact.Before(peer.LastContact):
			peerBehind = false
		case peer.LastContact.Before(self.LastContact):
			selfBehind = false
		case initiator:
			peerBehind = false
		default:
			selfBehind = false
		}
	}
	plan := ResyncPlan{Merkle: selfBehind || peerBehind, Peer: peerBehind}
	if selfBehind {
		// A claimed horizon beyond any honest one (now − TTL, give or take the clocks)
		// counts only up to that bound.
		believed := believable(now, ttl, peer.Horizon)
		plan.Self = believed.After(self.LastContact)
		if plan.Self {
			plan.Adopt = believed
		}
	}
	switch {
	case plan.Self:
		plan.Away = now.Sub(self.LastContact)
	case plan.Peer:
		plan.Away = now.Sub(peer.LastContact)
	}
	return plan
}

// believable caps a peer's claimed horizon at now − ttl + horizonSlack.
func believable(now time.Time, ttl time.Duration, h time.Time) time.Time {
	if limit := now.Add(-ttl + horizonSlack); h.After(limit) {
		return limit
	}
	return h
}

// resyncFilter returns, for a side that resyncs fully, the test of which envelope it may
// send: one of a record the peer also holds (need: the peer holds it with another
// digest), or one written or received after the side's last contact. An envelope that
// does not decode is left to the peer to refuse.
func resyncFilter(need []merkle.ID, since time.Time) func(raw []byte) bool {
	held := make(map[merkle.ID]struct{}, len(need))
	for _, id := range need {
		held[id] = struct{}{}
	}
	cut := since.UnixMilli()
	return func(raw []byte) bool {
		env, err := store.UnmarshalEnvelope(raw)
		if err != nil {
			return true
		}
		if _, ok := held[env.ID]; ok {
			return true
		}
		return env.Version.Clock.WallMs() >= cut
	}
}

// peerLacks returns the ids of have (this side holds them, the peer lacks them or holds
// another digest) that are not in need (the peer holds them): those the peer lacks. Both
// are sorted (merkle.Session.Result).
func peerLacks(have, need []merkle.ID) []merkle.ID {
	var out []merkle.ID
	j := 0
	for _, id := range have {
		for j < len(need) && compareID(need[j], id) < 0 {
			j++
		}
		if j < len(need) && need[j] == id {
			continue
		}
		out = append(out, id)
	}
	return out
}

func compareID(a, b merkle.ID) int { return bytes.Compare(a[:], b[:]) }
