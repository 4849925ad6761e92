package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node/session"
	"github.com/meshsync/meshsync/store"
)

// Tombstones and long absences: package node/session decides who resyncs fully
// (session.PlanResync); this file keeps the node's side of it: its horizon, the report
// of a full resync, and the daily collection.

// fullResyncShown is how long the last full resync stays among the health warnings.
const fullResyncShown = 7 * 24 * time.Hour

// myHorizon is what this node's hello says about its tombstones.
func (n *Node) myHorizon() session.Horizon {
	return session.Horizon{Horizon: n.st.Replication().Horizon(), LastContact: n.contact.get()}
}

func (n *Node) tombstoneTTL() time.Duration {
	if n.cfg.Store.TombstoneTTL > 0 {
		return n.cfg.Store.TombstoneTTL
	}
	return store.DefaultTombstoneTTL
}

// finishResync ends a full resync on the side that was away: it forgets the old records
// the peer no longer holds, and reports the resync.
func (n *Node) finishResync(p peer.ID, res *sessionResult) error {
	forgot, err := n.st.Replication().ForgetBefore(res.Lacks, res.Since)
	if err != nil {
		return fmt.Errorf("full resync: %w", err)
	}
	if err := n.st.Replication().AdoptHorizon(res.Resync.Adopt); err != nil {
		return fmt.Errorf("full resync: %w", err)
	}
	res.FullResync = &FullResync{
		At:       n.cfg.Now().UTC(),
		Since:    res.Since.UTC(),
		Sessions: 1,
		AwayDays: int(res.Resync.Away / (24 * time.Hour)),
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

// collectLoop collects tombstones when the next collection is due (collectDue), then
// every cfg.CollectEvery, until ctx ends.
func (n *Node) collectLoop(ctx context.Context) {
	timer := time.NewTimer(n.collectDue())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if k, err := n.collectTombstones(); err != nil {
			n.log.Warn("collect tombstones", "err", err)
		} else {
			if k > 0 {
				n.log.Info("collected tombstones", "records", k, "horizon", n.st.Replication().Horizon())
			}
			if err := n.st.Local().Put(localCollected, n.cfg.Now().UTC()); err != nil {
				n.log.Warn("note the tombstone collection", "err", err)
			}
		}
		timer.Reset(n.cfg.CollectEvery)
	}
}

// collectTombstones collects the store's tombstones (store.Replication.CollectTombstones)
// after writing the exact last contact, which the collection's cut-off reads
// (contact.go).
func (n *Node) collectTombstones() (int, error) {
	if err := n.contact.flush(); err != nil {
		return 0, fmt.Errorf("note the last contact: %w", err)
	}
	return n.st.Replication().CollectTombstones()
}

// localCollected is when this device last collected tombstones.
const localCollected = "tombstones-collected"

// collectDue is how long until the next tombstone collection: CollectEvery after the last
// one, which the store remembers. A collection reads the whole store, so a device that
// starts its network often (a daemon restarted, a phone woken up, a reconnect) does not
// pay for one each time: that made every start cost O(records).
func (n *Node) collectDue() time.Duration {
	var last time.Time
	if ok, err := n.st.Local().Get(localCollected, &last); err != nil || !ok {
		return 0
	}
	since := n.cfg.Now().Sub(last)
	if since < 0 { // the clock went back: wait a full interval rather than never
		return n.cfg.CollectEvery
	}
	return max(0, n.cfg.CollectEvery-since)
}
