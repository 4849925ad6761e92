package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// envelopesOf dumps a node's envelopes, sorted, for byte comparison.
func envelopesOf(t testing.TB, n *Node) []string {
	t.Helper()
	var out []string
	if _, err := n.st.Replication().Since(0, 0, func(_ uint64, raw []byte) error {
		out = append(out, string(raw))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// newEnvelopes returns the envelopes n wrote itself that are not in before.
func newEnvelopes(t testing.TB, n *Node, before []string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, e := range envelopesOf(t, n) {
		env, err := store.UnmarshalEnvelope([]byte(e))
		if err != nil {
			t.Fatal(err)
		}
		if _, found := slices.BinarySearch(before, e); !found && string(env.Version.Device) == n.DeviceID() {
			out = append(out, []byte(e))
		}
	}
	return out
}

// sealingEpoch is the key epoch n seals new writes under (0: the mesh key's).
func sealingEpoch(n *Node) (uint32, error) {
	kes, err := n.st.Keys().KeyEpochs()
	if err != nil {
		return 0, err
	}
	for _, k := range kes {
		if k.Sealing {
			return k.Epoch, nil
		}
	}
	return 0, nil
}

// Row 12. Remove d from a mesh of three: the removal, the revocation and a new key epoch
// reach b; a and b re-seal every old envelope and end byte-identical; d's writes after
// its removal (with its clock as it was, and set back a day) are refused by a and b when
// relayed to them; d cannot open a record written after the removal with its own keys.
func TestRemovalRotatesKey(t *testing.T) {
	// b re-seals too, at the same time as a.
	nodes := newMeshEach(t, 3, func(_ int, c *Config) { c.resealDelay = 50 * time.Millisecond })
	a, b, d := nodes[0], nodes[1], nodes[2]
	const records = 1000
	err := a.st.Update(func(tx *store.Tx) error {
		for i := range records {
			if err := tx.Put("notes", fmt.Sprintf("n%04d", i), []byte(fmt.Sprintf(`{"i":%d,"pad":"%0100d"}`, i, i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d.Put("notes", "from-d-before", []byte(`"d"`))
	for _, n := range nodes {
		eventually(t, "every device publishes its key-agreement key", func() error {
			for _, dev := range n.Devices() {
				if dev.KeyAgreement == "" {
					return fmt.Errorf("%s has no key-agreement key on %s", dev.Name, n.self.Name)
				}
			}
			return hasValue(n, "notes", "from-d-before", `"d"`)
		})
	}
	for _, n := range nodes {
		waitSynced(t, n)
	}
	dBefore := envelopesOf(t, d)

	start := time.Now()
	if err := a.RemoveDevice(d.DeviceID()); err != nil {
		t.Fatal(err)
	}
	if e, err := sealingEpoch(a); err != nil || e != 1 {
		t.Fatalf("a seals under epoch %d after the removal (%v), want 1", e, err)
	}
	eventually(t, "b learns of the removal, revokes d and adopts the new key", func() error {
		if _, ok := b.isMember(d.id); ok {
			return fmt.Errorf("d still a member on b")
		}
		rev, err := b.st.Authority().Revoked()
		if err != nil {
			return err
		}
		if _, ok := rev[resolve.DeviceID(d.DeviceID())]; !ok {
			return fmt.Errorf("b has not revoked d")
		}
		if e, err := sealingEpoch(b); err != nil || e != 1 {
			return fmt.Errorf("b seals under epoch %d (%v)", e, err)
		}
		return nil
	})
	t.Logf("removal propagation (refused at the gate, revoked, new key adopted on b): %v", time.Since(start))

	// A write after the removal, on each remaining device.
	a.Put("notes", "after-a", []byte(`"secret a"`))
	b.Put("notes", "after-b", []byte(`"secret b"`))

	// d, which does not know yet, writes on; then again with its clock set back a day.
	d.Put("notes", "from-d-after", []byte(`"late"`))
	d.Put("notes", "n0001", []byte(`"overwrite"`))
	dcfg := d.cfg
	d.Close()
	dcfg.Now = func() time.Time { return time.Now().Add(-24 * time.Hour) }
	d2, err := Open(context.Background(), dcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	d2.Put("notes", "from-d-backdated", []byte(`"backdated"`))
	d2.Delete("notes", "n0002")
	late := newEnvelopes(t, d2, dBefore)
	if len(late) < 4 { // the four records, and its device record (addresses)
		t.Fatalf("d wrote %d envelopes after its removal, want at least 4", len(late))
	}
	mustStart(t, d2)
	for _, n := range []*Node{a, b} {
		if _, err := d2.syncWith(ctxT(t, 10*time.Second), n.id); err == nil {
			t.Errorf("removed device synced with %s", n.self.Name)
		}
		// As a device that has not heard of the removal would relay them.
		res, err := n.st.Replication().Apply(late)
		if err != nil {
			t.Fatal(err)
		}
		if res.Added != 0 {
			t.Errorf("%s accepted %d of d's %d writes after its removal", n.self.Name, res.Added, len(late))
		}
		for _, r := range res.Rejected {
			if !errors.Is(r.Err, store.ErrRevoked) {
				t.Errorf("%s refused a late write of d for %v, want ErrRevoked", n.self.Name, r.Err)
			}
		}
		if _, err := n.Get("notes", "from-d-after"); !isNotFound(err) {
			t.Errorf("%s reads d's late write: %v", n.self.Name, err)
		}
	}

	// d's own keys open nothing written after the removal.
	eventually(t, "b has a's new write", func() error { return hasValue(b, "notes", "after-a", `"secret a"`) })
	var ids []merkle.ID
	for _, k := range []string{"after-a", "after-b"} {
		eventually(t, "a has "+k, func() error {
			rec, err := a.Get("notes", k)
			if err == nil {
				ids = append(ids, rec.ID)
			}
			return err
		})
	}
	var after [][]byte
	if err := a.st.Replication().Envelopes(ids, func(raw []byte) error { after = append(after, bytes.Clone(raw)); return nil }); err != nil {
		t.Fatal(err)
	}
	var all [][]byte
	for _, e := range envelopesOf(t, a) {
		all = append(all, []byte(e))
	}
	res, err := d2.st.Replication().Apply(append(after, all...))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rejected {
		if r.Index < len(after) && !errors.Is(r.Err, store.ErrUnknownKeyEpoch) {
			t.Errorf("d refused a new envelope for %v, want ErrUnknownKeyEpoch", r.Err)
		}
	}
	if len(res.Rejected) < len(after) {
		t.Errorf("d opened %d envelopes sealed after its removal", len(after)-len(res.Rejected))
	}
	if n, err := d2.st.Keys().AdoptKeys(); err != nil || n != 0 {
		t.Errorf("d adopted %d keys (%v)", n, err)
	}
	if kes, _ := d2.st.Keys().KeyEpochs(); len(kes) != 0 {
		t.Errorf("d holds key epochs %+v", kes)
	}
	for _, k := range []string{"after-a", "after-b"} {
		if _, err := d2.Get("notes", k); !isNotFound(err) {
			t.Errorf("d reads %s: %v", k, err)
		}
	}

	// Re-seal: a starts at once, b shortly after; both end with every record under epoch 1
	// and byte-identical envelope sets.
	eventually(t, "re-seal on a and b", func() error {
		for _, n := range []*Node{a, b} {
			if p := n.Reseal(); p.Running || p.Finished.IsZero() {
				return fmt.Errorf("%s: re-seal %+v", n.self.Name, p)
			}
		}
		return nil
	})
	p := a.Reseal()
	took := p.Finished.Sub(p.Started)
	t.Logf("re-seal on a: %d envelopes in %v (%.0f envelopes/s); b re-sealed %d", p.Resealed, took, float64(p.Resealed)/took.Seconds(), b.Reseal().Resealed)
	eventually(t, "a and b converge", func() error {
		a.SyncNow(context.Background())
		ea, eb := envelopesOf(t, a), envelopesOf(t, b)
		if !slices.Equal(ea, eb) {
			return fmt.Errorf("envelope sets differ (%d, %d)", len(ea), len(eb))
		}
		// The grants and the membership records (devices, removals) stay under epoch 0.
		under0 := 0
		for _, c := range []string{store.KeysCollection, DevicesCollection, store.RemovalsCollection} {
			recs, err := a.st.List(c, "")
			if err != nil {
				return err
			}
			under0 += len(recs)
		}
		epochs := map[uint32]int{}
		for _, e := range ea {
			env, err := store.UnmarshalEnvelope([]byte(e))
			if err != nil {
				return err
			}
			epochs[env.KeyEpoch]++
		}
		if len(epochs) != 2 || epochs[0] != under0 {
			return fmt.Errorf("envelopes per key epoch %v; want only the %d grants and membership records under epoch 0", epochs, under0)
		}
		return nil
	})
	for _, n := range []*Node{a, b} {
		rep, err := n.st.Verify()
		if err != nil || !rep.OK() {
			t.Errorf("%s: verify %v %v", n.self.Name, err, rep)
		}
		if err := hasValue(n, "notes", "n0999", fmt.Sprintf(`{"i":999,"pad":"%0100d"}`, 999)); err != nil {
			t.Errorf("%s after re-seal: %v", n.self.Name, err)
		}
	}
}

// A device paired after a removal gets the new key from the device that paired it (or any
// other) once it publishes its key-agreement key, and reads what was written under it.
func TestJoinAfterRotation(t *testing.T) {
	nodes := newMesh(t, 2)
	a, d := nodes[0], nodes[1]
	waitSynced(t, a)
	if err := a.RemoveDevice(d.DeviceID()); err != nil {
		t.Fatal(err)
	}
	a.Put("notes", "after", []byte(`"new"`))
	e := join(t, a, "e")
	eventually(t, "e reads the record written under the new epoch", func() error {
		err := hasValue(e, "notes", "after", `"new"`)
		if err != nil {
			kes, _ := a.st.Keys().KeyEpochs()
			kese, _ := e.st.Keys().KeyEpochs()
			return fmt.Errorf("%v; a's devices %+v; a's keys %+v; e's keys %+v", err, a.Devices(), kes, kese)
		}
		return nil
	})
	if ep, err := sealingEpoch(e); err != nil || ep != 1 {
		t.Errorf("e seals under epoch %d (%v)", ep, err)
	}
	e.Put("notes", "from-e", []byte(`1`))
	eventually(t, "a reads e's write", func() error { return hasValue(a, "notes", "from-e", `1`) })
}

// Two devices remove two others at the same time: each new key reached the device the
// other removed, so both start one more epoch; a and b end sealing under the same key,
// granted to neither removed device, and a write made then opens on both but not on c or d.
func TestConcurrentRemovals(t *testing.T) {
	nodes := newMesh(t, 4)
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	waitKeyAgreement(t, nodes)
	before, err := sealingEpoch(a)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { errs <- a.RemoveDevice(c.DeviceID()) }()
	go func() { errs <- b.RemoveDevice(d.DeviceID()) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var final store.KeyEpoch
	eventually(t, "a and b agree on a key neither c nor d holds", func() error {
		a.SyncNow(context.Background())
		var keys [2]store.KeyEpoch
		for i, n := range []*Node{a, b} {
			kes, err := n.st.Keys().KeyEpochs()
			if err != nil {
				return err
			}
			for _, k := range kes {
				if k.Sealing {
					keys[i] = k
				}
			}
		}
		if keys[0].KeyID == "" || keys[0].KeyID != keys[1].KeyID {
			return fmt.Errorf("sealing keys differ: %+v / %+v", keys[0], keys[1])
		}
		// The key of before the removals (c and d hold it) is no answer: a write sealed
		// under it now is refused by b until a re-seals it.
		if keys[0].Epoch <= before {
			return fmt.Errorf("a and b still seal under epoch %d, from before the removals", keys[0].Epoch)
		}
		for _, dev := range keys[0].Recipients {
			if dev == resolve.DeviceID(c.DeviceID()) || dev == resolve.DeviceID(d.DeviceID()) {
				return fmt.Errorf("the sealing key %+v reached a removed device", keys[0])
			}
		}
		final = keys[0]
		return nil
	})
	t.Logf("final key epoch %d (%s), granted by %v", final.Epoch, final.KeyID, final.By)
	a.Put("notes", "final", []byte(`"f"`))
	eventually(t, "b reads the final write", func() error { return hasValue(b, "notes", "final", `"f"`) })
	rec, _ := a.Get("notes", "final")
	var raw [][]byte
	a.st.Replication().Envelopes([]merkle.ID{rec.ID}, func(b []byte) error { raw = append(raw, bytes.Clone(b)); return nil })
	for _, x := range []*Node{c, d} {
		res, err := x.st.Replication().Apply(raw)
		if err != nil || res.Added != 0 {
			t.Errorf("%s opened the final write: %v %+v", x.self.Name, err, res)
		}
	}
}

// A device that writes after a removal it has not heard of yet (it was offline) seals the
// write under a key the removed device holds; the others refuse it until it is re-sealed.
// Once the new key reaches the writer, it re-seals that write of its own at once, not
// after the re-seal delay (an hour here), and the other device reads it.
func TestOwnWriteAfterRemovalArrives(t *testing.T) {
	nodes := newMeshEach(t, 3, func(_ int, c *Config) { c.resealDelay = time.Hour })
	a, b, c := nodes[0], nodes[1], nodes[2]
	waitKeyAgreement(t, nodes)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveDevice(c.DeviceID()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // a's clock passes the removal's
	if err := a.Put("notes", "offline", []byte(`"written before the news"`)); err != nil {
		t.Fatal(err)
	}
	mustStart(t, a)
	eventually(t, "b reads a's write made after the removal", func() error {
		a.SyncNow(context.Background())
		return hasValue(b, "notes", "offline", `"written before the news"`)
	})
	if p := a.Reseal(); p.Resealed != 1 || !p.Started.IsZero() {
		t.Errorf("a's re-seal: %+v, want its one write re-sealed and no full pass started", p)
	}
}

// waitKeyAgreement waits until every node lists every device with its key-agreement key
// and has synced.
func waitKeyAgreement(t *testing.T, nodes []*Node) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, "key-agreement keys everywhere", func() error {
			for _, dev := range n.Devices() {
				if dev.KeyAgreement == "" {
					return fmt.Errorf("%s has no key-agreement key on %s", dev.Name, n.self.Name)
				}
			}
			return nil
		})
		waitSynced(t, n)
	}
}
