package store

import (
	"crypto/ed25519"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/meshsync/meshsync/resolve"
)

// The membership a store computes from its signed records (see authority.go for the
// rules): pure, so that every store holding the same records computes the same.

// Member is one device as the mesh's signed records establish it.
type Member struct {
	// ID is the device id.
	ID resolve.DeviceID `json:"id"`
	// Key is the device's Ed25519 signing key (its libp2p identity key).
	Key ed25519.PublicKey `json:"key"`
	// By is the device that admitted it ("" for a device trusted as an anchor).
	By resolve.DeviceID `json:"by,omitempty"`
	// Removed is set once a removal of it counts.
	Removed bool `json:"removed,omitempty"`
	// RemovedAt is the clock of its earliest removal that counts.
	RemovedAt resolve.Timestamp `json:"removed_at,omitempty"`
	// RemovedBy lists the devices whose removal of it counts, sorted.
	RemovedBy []resolve.DeviceID `json:"removed_by,omitempty"`
	// Cut is where its accepted writes end: the furthest any remaining device had seen.
	Cut RemovalPoint `json:"cut,omitzero"`
}

// authority is the membership computed from the records a store holds. Immutable.
type authority struct {
	members map[resolve.DeviceID]*Member
	// keyCut: data envelopes sealed under these keys (by key id; "" is epoch 0, the mesh
	// key's) with a later clock are refused: a removed device holds the key.
	keyCut map[string]resolve.Timestamp
	// unclean lists key ids that new writes must not be sealed under (rotate.go).
	unclean map[string]bool
	// needRotation is set when a removal happened and no clean key started after it.
	needRotation bool
	// viewsDue lists removed devices this store has not written its own view of yet.
	viewsDue []resolve.DeviceID
}

func (a *authority) member(d resolve.DeviceID) (*Member, bool) {
	m, ok := a.members[d]
	return m, ok
}

// cuts is the removal point of every removed device.
func (a *authority) cuts() map[resolve.DeviceID]RemovalPoint {
	out := map[resolve.DeviceID]RemovalPoint{}
	for id, m := range a.members {
		if m.Removed {
			out[id] = m.Cut
		}
	}
	return out
}

// authorityInput is what computeAuthority reads: every version of every membership record.
type authorityInput struct {
	mesh     [16]byte
	self     resolve.DeviceID
	anchors  map[resolve.DeviceID]ed25519.PublicKey
	certs    []deviceCert // one per version of a device record
	removals []removalRec
	grants   []grantVersion
}

type grantVersion struct {
	keyGrant
	at resolve.Timestamp
}

// computeAuthority derives the membership from the records, the same on every store that
// holds the same records. It is pure.
func computeAuthority(in authorityInput) *authority {
	slices.SortFunc(in.certs, func(a, b deviceCert) int {
		return cmpStrings(string(a.ID)+"\x00"+string(a.Admission.By), string(b.ID)+"\x00"+string(b.Admission.By))
	})
	verified := map[int]bool{}
	removedAt := map[resolve.DeviceID]resolve.Timestamp{}
	var members map[resolve.DeviceID]*Member
	for round := 0; round < 8; round++ {
		members = map[resolve.DeviceID]*Member{}
		for id, k := range in.anchors {
			members[id] = &Member{ID: id, Key: k}
		}
		for grew := true; grew; {
			grew = false
			for i, c := range in.certs {
				if _, ok := members[c.ID]; ok {
					continue
				}
				by, ok := members[c.Admission.By]
				if !ok || !admissionInTime(removedAt, c.Admission) {
					continue
				}
				if v, seen := verified[i]; !seen {
					verified[i] = ed25519.Verify(by.Key, admissionMessage(in.mesh, c.ID, c.Key, c.Admission.By, c.Admission.At), c.Admission.Sig)
				} else if !v {
					continue
				}
				if !verified[i] {
					continue
				}
				members[c.ID] = &Member{ID: c.ID, Key: ed25519.PublicKey(c.Key), By: c.Admission.By}
				grew = true
			}
		}
		// Removals by admitted devices; one by a removed device counts only within the
		// duel window after its own earliest removal (computed from every such record).
		naive := map[resolve.DeviceID]resolve.Timestamp{}
		for _, r := range in.removals {
			if _, ok := members[r.By]; ok {
				if t, ok := naive[r.Device]; !ok || r.at < t {
					naive[r.Device] = r.at
				}
			}
		}
		next := map[resolve.DeviceID]resolve.Timestamp{}
		for _, r := range in.removals {
			if _, ok := members[r.By]; !ok {
				continue
			}
			if t, gone := naive[r.By]; gone && r.at > afterWindow(t) {
				continue
			}
			if t, ok := next[r.Device]; !ok || r.at < t {
				next[r.Device] = r.at
			}
		}
		if maps.Equal(next, removedAt) {
			break
		}
		removedAt = next
	}
	for _, r := range in.removals {
		m, ok := members[r.Device]
		t, gone := removedAt[r.Device]
		if _, byOK := members[r.By]; !ok || !gone || !byOK {
			continue
		}
		if bt, byGone := removedAt[r.By]; byGone && r.at > afterWindow(bt) {
			continue
		}
		m.Removed, m.RemovedAt = true, t
		if !slices.Contains(m.RemovedBy, r.By) {
			m.RemovedBy = append(m.RemovedBy, r.By)
			slices.Sort(m.RemovedBy)
		}
		m.Cut = RemovalPoint{Counter: max(m.Cut.Counter, r.Point.Counter), Clock: max(m.Cut.Clock, r.Point.Clock)}
	}
	a := &authority{members: members, keyCut: map[string]resolve.Timestamp{}, unclean: map[string]bool{}}
	a.judgeKeys(in)
	if self, ok := members[in.self]; ok && !self.Removed {
		for _, id := range slices.Sorted(maps.Keys(members)) {
			if m := members[id]; m.Removed && !slices.Contains(m.RemovedBy, in.self) && id != in.self {
				a.viewsDue = append(a.viewsDue, id)
			}
		}
	}
	return a
}

// admissionInTime reports whether an admission counts: its signer was not removed, or
// signed it within the duel window after its removal.
func admissionInTime(removedAt map[resolve.DeviceID]resolve.Timestamp, ad *Admission) bool {
	t, gone := removedAt[ad.By]
	return !gone || ad.At <= afterWindow(t)
}

// judgeKeys works out which epochs removed devices can read, which keys new writes may be
// sealed under, and whether a new epoch is needed.
func (a *authority) judgeKeys(in authorityInput) {
	var lastRemoval resolve.Timestamp
	removed := false
	for _, m := range a.members {
		if m.Removed {
			removed = true
			lastRemoval = max(lastRemoval, m.RemovedAt)
			// Every device held the mesh key, and so epoch 0's key.
			if t, ok := a.keyCut[""]; !ok || m.RemovedAt < t {
				a.keyCut[""] = m.RemovedAt
			}
		}
	}
	type keyState struct {
		started   resolve.Timestamp
		starter   resolve.DeviceID
		hasStart  bool
		toRemoved bool
	}
	keys := map[string]*keyState{}
	for _, g := range in.grants {
		k := keys[g.KeyID]
		if k == nil {
			k = &keyState{}
			keys[g.KeyID] = k
		}
		if g.To == g.By && (!k.hasStart || g.at < k.started) {
			k.started, k.starter, k.hasStart = g.at, g.By, true
		}
		if m, ok := a.members[g.To]; ok && m.Removed {
			k.toRemoved = true
			if t, ok := a.keyCut[g.KeyID]; !ok || m.RemovedAt < t {
				a.keyCut[g.KeyID] = m.RemovedAt
			}
		}
	}
	clean := 0
	for id, k := range keys {
		starter, ok := a.members[k.starter]
		bad := !k.hasStart || !ok || starter.Removed || k.toRemoved
		if removed && k.started <= lastRemoval {
			bad = true // started before the latest removal
		}
		if bad {
			a.unclean[id] = true
		} else {
			clean++
		}
	}
	a.needRotation = removed && clean == 0
}

func cmpStrings(a, b string) int { return strings.Compare(a, b) }

// afterWindow is the latest clock within DuelWindow after t.
func afterWindow(t resolve.Timestamp) resolve.Timestamp {
	return resolve.MakeTimestamp(t.WallMs()+DuelWindow, math.MaxUint16)
}
