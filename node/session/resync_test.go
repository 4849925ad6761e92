package session

import (
	"slices"
	"testing"
	"time"

	"github.com/meshsync/meshsync/merkle"
)

const day = 24 * time.Hour

func TestPlanResync(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	ttl := 90 * day
	at := func(daysAgo int) time.Time { return now.Add(-time.Duration(daysAgo) * day) }
	hz := func(horizonDaysAgo, contactDaysAgo int) Horizon {
		h := Horizon{}
		if horizonDaysAgo >= 0 {
			h.Horizon = at(horizonDaysAgo)
		}
		if contactDaysAgo >= 0 {
			h.LastContact = at(contactDaysAgo)
		}
		return h
	}
	const never = -1
	for _, tc := range []struct {
		name       string
		self, peer Horizon
		initiator  bool
		want       ResyncPlan
	}{
		// Nobody is behind: an ordinary merge.
		{"both in touch", hz(95, 1), hz(92, 0), true, ResyncPlan{}},
		{"nothing collected anywhere", hz(never, 30), hz(never, 0), false, ResyncPlan{}},
		{"away 30 days, peer collected up to 60 days ago", hz(120, 30), hz(90, 0), true, ResyncPlan{}},
		{"horizon equal to the last contact is not beyond it", hz(200, 100), hz(100, 0), true, ResyncPlan{}},
		// A device that never synced holds nothing the mesh deleted.
		{"never synced", hz(never, never), hz(90, 0), true, ResyncPlan{}},

		// This side was away beyond the peer's horizon: it resyncs.
		{"away 91 days", hz(181, 91), hz(90, 0), true, ResyncPlan{Merkle: true, Self: true, Away: 91 * day, Adopt: at(90)}},
		{"away 200 days, responder", hz(290, 200), hz(91, 0), false, ResyncPlan{Merkle: true, Self: true, Away: 200 * day, Adopt: at(91)}},
		// The peer was away beyond this side's horizon: it resyncs, this side serves.
		{"peer away 91 days", hz(90, 0), hz(181, 91), true, ResyncPlan{Merkle: true, Peer: true, Away: 91 * day}},
		{"peer never synced", hz(90, 0), hz(never, never), true, ResyncPlan{}},

		// A horizon beyond any honest one (now − TTL, give or take a day) counts only up
		// to that bound: a device in touch last week does not drop its records for it.
		{"future horizon, device in touch", hz(95, 7), hz(0, 0), true, ResyncPlan{Merkle: true}},
		{"future horizon, device away 120 days", hz(200, 120), Horizon{Horizon: now.Add(day), LastContact: now}, true, ResyncPlan{Merkle: true, Self: true, Away: 120 * day, Adopt: at(89)}},

		// Both behind (only dishonest or hand-edited stores): the earlier contact resyncs,
		// the initiator on a tie.
		{"both behind, self earlier", hz(10, 100), hz(5, 95), false, ResyncPlan{Merkle: true, Self: true, Away: 100 * day, Adopt: at(89)}},
		{"both behind, peer earlier", hz(5, 95), hz(10, 100), true, ResyncPlan{Merkle: true, Peer: true, Away: 100 * day}},
		{"both behind, tie, initiator", hz(5, 100), hz(5, 100), true, ResyncPlan{Merkle: true, Self: true, Away: 100 * day, Adopt: at(89)}},
		{"both behind, tie, responder", hz(5, 100), hz(5, 100), false, ResyncPlan{Merkle: true, Peer: true, Away: 100 * day}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanResync(now, ttl, tc.self, tc.peer, tc.initiator)
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			// Both sides must agree on running a Merkle reconciliation, and on who
			// resyncs (unless this side does not believe the peer's horizon).
			other := PlanResync(now, ttl, tc.peer, tc.self, !tc.initiator)
			if other.Merkle != got.Merkle {
				t.Fatalf("the peer decides Merkle=%v, this side %v", other.Merkle, got.Merkle)
			}
			if got.Self && !other.Peer || other.Self && !got.Peer {
				t.Fatalf("sides disagree on who resyncs: %+v / %+v", got, other)
			}
		})
	}
}

func TestPeerLacks(t *testing.T) {
	id := func(b byte) merkle.ID { return merkle.ID{b} }
	for _, tc := range []struct{ have, need, want []merkle.ID }{
		{nil, nil, nil},
		{[]merkle.ID{id(1), id(2)}, nil, []merkle.ID{id(1), id(2)}},
		{[]merkle.ID{id(1), id(2), id(5)}, []merkle.ID{id(0), id(2), id(3)}, []merkle.ID{id(1), id(5)}},
		{[]merkle.ID{id(4)}, []merkle.ID{id(4)}, nil},
	} {
		if got := peerLacks(tc.have, tc.need); !slices.Equal(got, tc.want) {
			t.Errorf("peerLacks(%v, %v) = %v, want %v", tc.have, tc.need, got, tc.want)
		}
	}
}
