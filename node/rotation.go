package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// Key rotation on device removal (see store/rotate.go for the store's half).
//
// Each device publishes a key-agreement key (age X25519) in its device record; its private
// half stays sealed in its store. Removing a device records its removal point (the highest
// counter and latest clock of it that the remover holds) in the device record, revokes it
// in the store, and starts a new key epoch granted to the remaining devices' key-agreement
// keys only. Every device that learns of a removal revokes the device the same way (and so
// refuses its later writes), adopts the new key when the grant reaches it, starts another
// epoch if the key it seals under ever reached a removed device (two removals at the same
// time), grants the keys it holds to devices that lack them (paired after a rotation), and
// re-seals old envelopes under the newest key in the background: at once on the device
// that rotated, after Config.resealDelay elsewhere (by then the rotator's re-sealed envelopes
// have usually arrived and there is nothing left to do).

// resealPause separates two re-seal batches so that local writes and sync get the store.
const resealPause = 5 * time.Millisecond

// rotation is a node's key-rotation state. Its mutex serializes keysChanged and guards
// the rest; the re-seal loop it starts is the only other writer.
type rotation struct {
	mu        sync.Mutex
	resealing bool // a re-seal loop runs
	stats     ResealProgress
	ownDone   string // the sealing key resealOwn last ran under (also in local state)
}

// ResealProgress reports the background re-seal of this device.
type ResealProgress struct {
	// Resealed counts the envelopes this device re-sealed since it opened.
	Resealed int `json:"resealed"`
	// Running is set while a re-seal pass runs.
	Running bool `json:"running"`
	// Started and Finished time the last pass (Finished is zero while it runs).
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// Reseal reports the progress of the background re-seal on this device.
func (n *Node) Reseal() ResealProgress {
	r := &n.rot
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.stats
	p.Running = r.resealing
	return p
}

// ensureKeyAgreement creates the device's key-agreement key and publishes it in the
// device's own record when the record lacks it: a device made before key rotation existed,
// or one that just joined (its inviter wrote its record without the key; such a record is
// sealed under epoch 0, so that the joiner can read it before any key is granted to it).
// A joiner that does not hold its record yet publishes at the next change of the list.
func ensureKeyAgreement(st *store.Store) error {
	if st.Blind() {
		return nil
	}
	pub, err := st.Keys().KeyAgreementKey()
	if err != nil {
		return err
	}
	rec, err := st.Get(DevicesCollection, string(st.Device().ID))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var d Device
	if err := json.Unmarshal(rec.Value, &d); err != nil || d.ID != rec.Key {
		return nil // not a record this version reads: leave it
	}
	if d.KeyAgreement == pub || d.Removed {
		return nil
	}
	d.KeyAgreement = pub
	return putDevice(st, d)
}

// revocationOf is the removal point to enforce for a removed device record. A record
// removed by an older version carries none: its later writes are then cut by the time of
// the removal alone.
func revocationOf(d Device) store.RemovalPoint {
	if d.RemovalPoint != nil {
		return *d.RemovalPoint
	}
	return store.RemovalPoint{Counter: math.MaxUint64, Clock: resolve.MakeTimestamp(d.RemovedAt.UnixMilli(), math.MaxUint16)}
}

// keysChanged brings the keys in line with the device list (planKeys decides): it
// revokes removed devices on a blind replica, starts a new epoch when the sealing key
// reached a removed device, grants held keys to devices that lack them, and starts the
// re-seal. It runs after every change of the list.
func (n *Node) keysChanged() error {
	r := &n.rot
	r.mu.Lock()
	defer r.mu.Unlock()
	plan := planKeys(keyInputs{self: string(n.self.ID), blind: n.st.Blind(), devices: n.devices.Load().list, removed: n.removedPeers()})
	for _, rv := range plan.revoke {
		if err := n.st.Authority().RevokeDevice(rv.dev, rv.at); err != nil {
			return err
		}
	}
	if plan.skip {
		return nil
	}
	if err := ensureKeyAgreement(n.st); err != nil {
		return fmt.Errorf("publish key-agreement key: %w", err)
	}
	need, err := n.st.Keys().NeedsRotation()
	if err != nil {
		return err
	}
	if need {
		ke, err := n.st.Keys().RotateKey(plan.members)
		if err != nil {
			return err
		}
		n.log.Info("started key epoch", "epoch", ke.Epoch, "key", ke.KeyID, "recipients", len(ke.Recipients))
	}
	kes, err := n.st.Keys().KeyEpochs()
	if err != nil {
		return err
	}
	for _, g := range planGrants(plan.members, kes) {
		if _, err := n.st.Keys().GrantKeys(g.dev, g.pub); err != nil {
			n.log.Warn("grant keys", "device", g.dev, "err", err)
		}
	}
	if !need {
		n.resealOwn(kes)
	}
	if start, delay := planReseal(len(kes), need, r.resealing, n.cfg.resealDelay); start {
		r.resealing = n.goSafe(func() { n.resealLoop(r, delay) })
	}
	return nil
}

// localOwnResealed names the sealing key under which this device last re-sealed its own
// writes made after a removal (store.Keys.ResealOwn), so that it scans once per new key.
const localOwnResealed = "own-resealed-under"

// resealOwn re-seals at once this device's writes that the others refuse until re-sealed:
// made after a removal, before the new key epoch another device started reached this one.
// The full re-seal pass would get to them only after Config.resealDelay. It runs once per
// new sealing key (the scan reads every envelope's header). keysChanged calls it holding
// n.rot.mu.
func (n *Node) resealOwn(kes []store.KeyEpoch) {
	r := &n.rot
	var sealing string
	for _, ke := range kes {
		if ke.Sealing {
			sealing = ke.KeyID
		}
	}
	if sealing == "" || sealing == r.ownDone {
		return
	}
	if _, err := n.st.Local().Get(localOwnResealed, &r.ownDone); err != nil || r.ownDone == sealing {
		return
	}
	k, err := n.st.Keys().ResealOwn()
	if err != nil {
		if !errors.Is(err, store.ErrClosed) {
			n.log.Warn("re-seal own writes", "err", err)
		}
		return
	}
	if k > 0 {
		n.log.Info("re-sealed own writes made after a removal", "envelopes", k, "key", sealing)
		r.stats.Resealed += k
	}
	if err := n.st.Local().Put(localOwnResealed, sealing); err != nil {
		if !errors.Is(err, store.ErrClosed) {
			n.log.Warn("re-seal own writes", "err", err)
		}
		return
	}
	r.ownDone = sealing
}

// removedPeers is the sticky list of peers this device has seen removed.
func (n *Node) removedPeers() []peer.ID {
	var removed []peer.ID
	_, _ = n.st.Local().Get(localRemoved, &removed)
	return removed
}

// resealLoop re-seals old envelopes in batches until none is left.
func (n *Node) resealLoop(r *rotation, delay time.Duration) {
	defer func() {
		r.mu.Lock()
		r.resealing = false
		r.mu.Unlock()
	}()
	if delay > 0 {
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	r.mu.Lock()
	r.stats.Started, r.stats.Finished = n.cfg.Now(), time.Time{}
	r.mu.Unlock()
	for n.ctx.Err() == nil {
		st, err := n.st.Keys().Reseal(store.DefaultResealBatch)
		if err != nil {
			if !errors.Is(err, store.ErrClosed) && n.ctx.Err() == nil {
				n.log.Warn("re-seal", "err", err)
			}
			return
		}
		r.mu.Lock()
		r.stats.Resealed += st.Resealed
		if st.Done {
			r.stats.Finished = n.cfg.Now()
		}
		r.mu.Unlock()
		if st.Done {
			return
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(resealPause):
		}
	}
}
