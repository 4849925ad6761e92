package node

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// Key-rotation planning: pure functions of the device list and the key epochs, which
// keysChanged (rotation.go) carries out against the store. They read no store and no
// clock; testdata/keys holds their transcripts.

// keyInputs is what planning the keys reads.
type keyInputs struct {
	self    string    // this device's id
	blind   bool      // this node is a blind replica
	devices []Device  // the device list
	removed []peer.ID // every peer this device has seen removed (sticky)
}

// revocation is a removed device and the point where its accepted writes end.
type revocation struct {
	dev resolve.DeviceID
	at  store.RemovalPoint
}

// keyPlan is what to do about the keys after a change of the device list.
type keyPlan struct {
	// revoke lists the removed devices a blind replica refuses (a device's store computes
	// its cuts itself from the signed removal records).
	revoke []revocation
	// skip: nothing more to do (a blind replica, or this device was removed).
	skip bool
	// publish: make sure this device's record carries its key-agreement key.
	publish bool
	// members are the devices that receive keys: current full devices other than this
	// one with a key-agreement key, by device id. A new key epoch (when the store says the
	// sealing key reached a removed device) is granted to them.
	members map[resolve.DeviceID]string
}

// planKeys decides what keysChanged does after a change of the device list.
func planKeys(in keyInputs) keyPlan {
	if in.blind {
		var p keyPlan
		for _, d := range in.devices {
			if d.Removed && d.ID != in.self {
				p.revoke = append(p.revoke, revocation{resolve.DeviceID(d.ID), revocationOf(d)})
			}
		}
		p.skip = true
		return p
	}
	if slices.ContainsFunc(in.devices, func(d Device) bool { return d.ID == in.self && d.Removed }) {
		return keyPlan{skip: true} // this device was removed: it grants and rotates nothing
	}
	p := keyPlan{publish: true, members: map[resolve.DeviceID]string{}}
	for _, d := range in.devices {
		if !d.Removed && !slices.Contains(in.removed, d.PeerID) && d.Role == RoleDevice && d.KeyAgreement != "" && d.ID != in.self {
			p.members[resolve.DeviceID(d.ID)] = d.KeyAgreement
		}
	}
	return p
}

// keyGrant is a device that lacks some key epoch this device holds, and its key-agreement key.
type keyGrant struct {
	dev resolve.DeviceID
	pub string
}

// planGrants lists the members missing from the recipients of any key epoch in kes (the
// epochs this device holds, read after a rotation), sorted by device.
func planGrants(members map[resolve.DeviceID]string, kes []store.KeyEpoch) []keyGrant {
	var out []keyGrant
	for dev, pub := range members {
		if slices.ContainsFunc(kes, func(k store.KeyEpoch) bool { return !slices.Contains(k.Recipients, dev) }) {
			out = append(out, keyGrant{dev, pub})
		}
	}
	slices.SortFunc(out, func(a, b keyGrant) int {
		if a.dev < b.dev {
			return -1
		}
		if a.dev > b.dev {
			return 1
		}
		return 0
	})
	return out
}

// planReseal decides whether to start a re-seal pass and after how long: when this device
// holds any key epoch and no pass runs; at once on the device that just rotated, after
// wait elsewhere (by then the rotator's re-sealed envelopes have usually arrived).
func planReseal(epochs int, rotated, running bool, wait time.Duration) (start bool, after time.Duration) {
	if epochs == 0 || running {
		return false, 0
	}
	if rotated {
		return true, 0
	}
	return true, wait
}
