package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

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

// horizonSlack is how far beyond its own now − TTL this node believes a peer's horizon:
// room for clocks that disagree, and no more, so that a peer claiming a far-future horizon
// cannot make a device that was in touch last week drop its records.
const horizonSlack = 24 * time.Hour

// fullResyncShown is how long the last full resync stays among the health warnings.
const fullResyncShown = 7 * 24 * time.Hour

// horizonInfo is what a hello says about tombstone collection.
type horizonInfo struct {
	Horizon     time.Time // the sender may have dropped any tombstone older (zero: none)
	LastContact time.Time // the sender's last completed session (zero: never)
}

func msTime(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func timeMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixMilli(), 0)
}

func helloHorizon(h *wire.Hello) horizonInfo {
	return horizonInfo{Horizon: msTime(h.Horizon), LastContact: msTime(h.LastContact)}
}

// resyncPlan is what a session does about tombstone horizons.
type resyncPlan struct {
	// Merkle: one side is behind the other's horizon, so the session reconciles by
	// Merkle summary (both sides compute the same value from the two hellos).
	Merkle bool
	// Self: this node resyncs fully (it trusts the peer's horizon enough).
	Self bool
	// Peer: the peer is behind this node's horizon and resyncs fully.
	Peer bool
	// Away is how long the side that resyncs was out of touch.
	Away time.Duration
	// Adopt is the peer's horizon as far as this side believes it (set with Self): once
	// resynced, this side holds what the peer holds and takes on its horizon, so that a
	// device that has not collected yet cannot hand back a tombstone the peer dropped.
	Adopt time.Time
}

// planResync decides, from the two hellos' horizons, which side (if any) resyncs fully.
// now and ttl are this node's clock and tombstone TTL; initiator breaks the tie of two
// stale sides (which honest stores cannot produce: each caps its horizon at its own last
// contact). A side that never synced has nothing the mesh deleted: it merges.
func planResync(now time.Time, ttl time.Duration, self, peer horizonInfo, initiator bool) resyncPlan {
	behind := func(h horizonInfo, other time.Time) bool {
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
	plan := resyncPlan{Merkle: selfBehind || peerBehind, Peer: peerBehind}
	if selfBehind {
		// A claimed horizon beyond any honest one (now − TTL, give or take the clocks)
		// counts only up to that bound.
		believed := peer.Horizon
		if limit := now.Add(-ttl + horizonSlack); believed.After(limit) {
			believed = limit
		}
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

// myHorizon is what this node's hello says about its tombstones.
func (n *Node) myHorizon() horizonInfo {
	return horizonInfo{Horizon: n.st.Replication().Horizon(), LastContact: n.st.Replication().LastContact()}
}

// sessionPlan decides what the session does about horizons once both hellos are known;
// a blind replica, which never collects, takes on a device's horizon first, so that it
// can tell a device back from a long absence to resync.
func (n *Node) sessionPlan(mine, theirs *wire.Hello, initiator bool) resyncPlan {
	now := n.cfg.Now()
	ttl := n.tombstoneTTL()
	self, peer := helloHorizon(mine), helloHorizon(theirs)
	if n.blind && peer.Horizon.After(self.Horizon) {
		adopt := peer.Horizon
		if limit := now.Add(-ttl + horizonSlack); adopt.After(limit) {
			adopt = limit
		}
		if err := n.st.Replication().AdoptHorizon(adopt); err != nil {
			n.log.Warn("adopt a device's tombstone horizon", "err", err)
		}
	}
	return planResync(now, ttl, self, peer, initiator)
}

func (n *Node) tombstoneTTL() time.Duration {
	if n.cfg.Store.TombstoneTTL > 0 {
		return n.cfg.Store.TombstoneTTL
	}
	return store.DefaultTombstoneTTL
}

// resyncFilter returns, for a node that resyncs fully, the test of which envelope it may
// send: one of a record the peer also holds (need: the peer holds it with another
// digest), or one written or received after the node's last contact. An envelope that
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

func compareID(a, b merkle.ID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// finishResync ends a full resync on the side that was away: it forgets the old records
// the peer no longer holds, and reports the resync.
func (n *Node) finishResync(p peer.ID, plan resyncPlan, since time.Time, lacks []merkle.ID, res *sessionResult) error {
	forgot, err := n.st.Replication().ForgetBefore(lacks, since)
	if err != nil {
		return fmt.Errorf("full resync: %w", err)
	}
	if err := n.st.Replication().AdoptHorizon(plan.Adopt); err != nil {
		return fmt.Errorf("full resync: %w", err)
	}
	res.FullResync = &FullResync{
		At:       n.cfg.Now().UTC(),
		Since:    since.UTC(),
		Sessions: 1,
		AwayDays: int(plan.Away / (24 * time.Hour)),
		Received: res.Received, Sent: res.Sent, Forgotten: forgot,
		BytesIn: res.BytesReceived, BytesOut: res.BytesSent, MerkleMessages: res.MerkleMessages,
	}
	if d, ok := n.devices.Load().byPeer[p]; ok {
		res.FullResync.With = d.Name
	}
	n.log.Warn(res.FullResync.String(), "with", shortID(p), "received", res.Received, "sent", res.Sent,
		"forgotten", forgot, "bytes_in", res.BytesReceived, "bytes_out", res.BytesSent)
	n.track.fullResync(p, *res.FullResync)
	return nil
}

const localFullResync = "full-resync"

// FullResync describes the last full resync of this device: it was away longer than the
// mesh keeps tombstones, so it took everything from a device instead of merging.
type FullResync struct {
	// At is when it ended.
	At time.Time `json:"at"`
	// With names the devices it resynced from (sessions with several devices at once
	// add up in one report).
	With string `json:"with"`
	// Since is the last contact before the absence.
	Since time.Time `json:"since"`
	// AwayDays is how long this device had been out of touch, in whole days.
	AwayDays int `json:"away_days"`
	// Sessions counts the sessions that resynced (one per device and direction that
	// met this device before its first full resync ended).
	Sessions int `json:"sessions"`
	// Received and Sent count envelopes; Forgotten the old records dropped here because
	// they had been deleted (and their tombstones collected) elsewhere.
	Received  int `json:"received"`
	Sent      int `json:"sent"`
	Forgotten int `json:"forgotten"`
	// BytesIn and BytesOut are the session's frame bytes; MerkleMessages the
	// reconciliation messages exchanged (both ways).
	BytesIn        int `json:"bytes_in"`
	BytesOut       int `json:"bytes_out"`
	MerkleMessages int `json:"merkle_messages"`
}

// String is the one-line report of a full resync.
func (f *FullResync) String() string {
	return fmt.Sprintf("full resync after %d days away", f.AwayDays)
}

// recentFullResync is the last full resync if it ended less than fullResyncShown ago.
func (n *Node) recentFullResync() *FullResync {
	var f FullResync
	if ok, err := n.st.Local().Get(localFullResync, &f); err != nil || !ok {
		return nil
	}
	if n.cfg.Now().Sub(f.At) > fullResyncShown {
		return nil
	}
	return &f
}

// fullResync records a full resync with p (added to the last one when it ended the same
// absence: sessions with several devices at once) and tells subscribers.
func (t *tracker) fullResync(p peer.ID, f FullResync) {
	t.do(func() {
		var last FullResync
		if ok, err := t.n.st.Local().Get(localFullResync, &last); err == nil && ok && last.Since.Equal(f.Since) {
			if names := strings.Split(last.With, ", "); !slices.Contains(names, f.With) {
				f.With = strings.Join(append(names, f.With), ", ")
			} else {
				f.With = last.With
			}
			f.Sessions += last.Sessions
			f.Received += last.Received
			f.Sent += last.Sent
			f.Forgotten += last.Forgotten
			f.BytesIn += last.BytesIn
			f.BytesOut += last.BytesOut
			f.MerkleMessages += last.MerkleMessages
		}
		if err := t.n.st.Local().Put(localFullResync, f); err != nil {
			t.n.log.Warn("record the full resync", "err", err)
		}
		t.note = f.String()
		t.update(p, func(*DeviceState) {})
		t.note = ""
	})
}

// collectLoop collects tombstones now and then every cfg.CollectEvery until ctx ends.
func (n *Node) collectLoop(ctx context.Context) {
	tick := time.NewTicker(n.cfg.CollectEvery)
	defer tick.Stop()
	for {
		if k, err := n.st.Replication().CollectTombstones(); err != nil {
			n.log.Warn("collect tombstones", "err", err)
		} else if k > 0 {
			n.log.Info("collected tombstones", "records", k, "horizon", n.st.Replication().Horizon())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
