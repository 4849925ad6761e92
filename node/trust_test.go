package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// Hostile-device tests for the [trust] findings (TESTING.md rows 26-28), on real nodes over
// loopback. A device that has not yet heard of something is simulated by applying raw
// envelopes to its store, as it would take them from a device relaying them.

// hostileRestart closes n and opens it again over the same store with its wall clock
// shifted by skew: a device whose owner set its clock.
func hostileRestart(t *testing.T, n *Node, skew time.Duration) *Node {
	t.Helper()
	cfg := n.cfg
	n.Close()
	cfg.Now = func() time.Time { return time.Now().Add(skew) }
	m, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Finding 1: a removed device rewrites its own device record, not removed, with a clock 50
// years ahead. A device that receives that record together with the removal, in any
// order, still counts it removed and refuses it at the gate.
func TestRemovedDeviceCannotUndoItsRemoval(t *testing.T) {
	nodes := newMesh(t, 4)
	a, c, m := nodes[0], nodes[2], nodes[3]
	for _, n := range nodes {
		waitSynced(t, n)
	}
	before := envelopesOf(t, m)
	// c goes offline; m, before anyone removes it, writes its record again far ahead.
	ccfg := c.cfg
	c.Close()
	m = hostileRestart(t, m, 50*365*24*time.Hour)
	var self Device
	for _, d := range m.Devices() {
		if d.ID == m.DeviceID() {
			self = d
		}
	}
	self.Removed, self.Name = false, "still here"
	if err := putDevice(m.st, self); err != nil {
		t.Fatal(err)
	}
	hostile := newEnvelopes(t, m, before)
	if len(hostile) == 0 {
		t.Fatal("m wrote nothing")
	}
	m.Close()
	aBefore := envelopesOf(t, a)
	if err := a.RemoveDevice(m.DeviceID()); err != nil {
		t.Fatal(err)
	}
	removal := newEnvelopes(t, a, aBefore)
	c2, err := Open(context.Background(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	batch := append(slices.Clone(hostile), removal...)
	rand.New(rand.NewPCG(seed, 1)).Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	for _, part := range [][][]byte{batch[:len(batch)/2], batch[len(batch)/2:]} {
		if _, err := c2.st.Replication().Apply(part); err != nil {
			t.Fatal(err)
		}
	}
	if err := c2.devicesChanged(); err != nil {
		t.Fatal(err)
	}
	if d, ok := c2.isMember(m.id); ok {
		t.Errorf("c counts m a member after taking its record and the removal: %+v", d)
	}
	if _, ok := a.isMember(m.id); ok {
		t.Error("a counts m a member")
	}
}

// Finding 6: a member removes a device with a removal point of zero, which would drop
// everything the victim ever wrote. No device drops anything the victim wrote before.
func TestRemovalPointOfZeroPurgesNothing(t *testing.T) {
	nodes := newMesh(t, 3)
	a, b, v := nodes[0], nodes[1], nodes[2]
	for i := range 5 {
		if err := v.Put("notes", fmt.Sprintf("v%d", i), []byte(`"the victim's work"`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*Node{a, b} {
		eventually(t, "the victim's writes arrive", func() error { return hasValue(n, "notes", "v4", `"the victim's work"`) })
	}
	// a (a member, hostile here) removes v the old way: its device record says removed,
	// with a removal point of zero.
	var dev Device
	for _, d := range a.Devices() {
		if d.ID == v.DeviceID() {
			dev = d
		}
	}
	dev.Removed, dev.RemovedAt, dev.RemovalPoint = true, time.Now().UTC(), &store.RemovalPoint{}
	b2, _ := json.Marshal(dev)
	if err := a.st.Update(func(tx *store.Tx) error { return tx.PutReserved(DevicesCollection, dev.ID, b2) }); err != nil {
		t.Fatal(err)
	}
	if err := a.devicesChanged(); err != nil {
		t.Fatal(err)
	}
	// And the new way, as a signed removal: the point is what a had seen, never zero.
	if err := a.RemoveDevice(v.DeviceID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b learns of the removal", func() error {
		if _, ok := b.isMember(v.id); ok {
			return fmt.Errorf("v still a member on b")
		}
		return nil
	})
	for _, n := range []*Node{a, b} {
		for i := range 5 {
			if err := hasValue(n, "notes", fmt.Sprintf("v%d", i), `"the victim's work"`); err != nil {
				t.Errorf("%s lost the victim's earlier write: %v", n.self.Name, err)
			}
		}
	}
}

// Finding 2: a member starts a key epoch that every other device adopts, and drops its
// own grant, so that the epoch looks granted to everyone but itself. Removed, it must
// not be able to read what is written after: the remaining devices start an epoch of
// their own, and m opens none of the new writes.
func TestEpochMintedBeforeRemovalDoesNotCount(t *testing.T) {
	nodes := newMesh(t, 3)
	a, b, m := nodes[0], nodes[1], nodes[2]
	kx := map[string]string{}
	for _, n := range nodes {
		eventually(t, "key-agreement keys published", func() error {
			for _, d := range n.Devices() {
				if d.KeyAgreement == "" {
					return fmt.Errorf("%s has none on %s", d.Name, n.self.Name)
				}
				kx[d.ID] = d.KeyAgreement
			}
			return nil
		})
	}
	ke, err := m.st.Keys().RotateKey(map[resolve.DeviceID]string{resolve.DeviceID(a.DeviceID()): kx[a.DeviceID()], resolve.DeviceID(b.DeviceID()): kx[b.DeviceID()]})
	if err != nil {
		t.Fatal(err)
	}
	own := fmt.Sprintf("%010d.%s/%s/%s", ke.Epoch, ke.KeyID, m.DeviceID(), m.DeviceID())
	if err := m.st.Update(func(tx *store.Tx) error { return tx.DeleteReserved(store.KeysCollection, own) }); err != nil {
		t.Fatal(err)
	}
	if err := m.devicesChanged(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b} {
		eventually(t, "the devices adopt m's epoch", func() error {
			kes, err := n.st.Keys().KeyEpochs()
			if err != nil || len(kes) == 0 {
				return fmt.Errorf("%s holds no epoch key (%v)", n.self.Name, err)
			}
			return nil
		})
	}
	if err := a.RemoveDevice(m.DeviceID()); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if err := a.Put("notes", "secret", []byte(`"after m's removal"`)); err != nil {
		t.Fatal(err)
	}
	rec, err := a.Get("notes", "secret")
	if err != nil {
		t.Fatal(err)
	}
	var raw [][]byte
	if err := a.st.Replication().Envelopes([]merkle.ID{rec.ID}, func(b []byte) error { raw = append(raw, bytes.Clone(b)); return nil }); err != nil {
		t.Fatal(err)
	}
	// m, with its store and every key it ever held, opens nothing written after.
	ms, err := store.Open(m.cfg.Dir, testPass, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	if err := ms.Keys().LoadKeyEpochs(); err != nil {
		t.Fatal(err)
	}
	res, err := ms.Replication().Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 0 {
		t.Error("m opened a write made after its removal, under the epoch it minted")
	}
	if e, _ := sealingEpoch(a); e == ke.Epoch {
		t.Errorf("a still seals under m's epoch %d", e)
	}
}
