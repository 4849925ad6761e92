package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"filippo.io/age"
	bolt "go.etcd.io/bbolt"

	"github.com/meshsync/meshsync/resolve"
)

// kx returns a store's key-agreement key.
func kx(t testing.TB, s *Store) string {
	t.Helper()
	pub, err := s.Keys().KeyAgreementKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// revoke removes d on s (a signed removal record) and returns d's removal point there.
func revoke(t testing.TB, s *Store, d *Store) RemovalPoint {
	t.Helper()
	rp, err := s.Authority().RemovalPoint(d.Device().ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Authority().Remove(d.Device().ID); err != nil {
		t.Fatal(err)
	}
	return rp
}

// syncRevoked syncs both ways, allowing refusals of writes under a key a removed device
// holds (they pass once re-sealed).
func syncRevoked(t testing.TB, a, b *Store) {
	t.Helper()
	for _, p := range [][2]*Store{{a, b}, {b, a}} {
		res, err := p[1].Replication().Apply(allEnvelopes(t, p[0]))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Rejected {
			if !errors.Is(r.Err, ErrRevoked) {
				t.Fatalf("%s refused: %v", p[1].Device().Name, r.Err)
			}
		}
	}
}

// reversed returns the envelopes of s in reverse sequence order: newest (sealed under new
// keys) before the grants that bring those keys.
func reversed(t testing.TB, s *Store) [][]byte {
	envs := allEnvelopes(t, s)
	slices.Reverse(envs)
	return envs
}

func epochsOf(t testing.TB, s *Store) map[uint32]int {
	t.Helper()
	out := map[uint32]int{}
	for _, raw := range allEnvelopes(t, s) {
		e, err := UnmarshalEnvelope(raw)
		if err != nil {
			t.Fatal(err)
		}
		out[e.KeyEpoch]++
	}
	return out
}

func writeNotes(t testing.TB, s *Store, prefix string, n int) {
	t.Helper()
	err := s.Update(func(tx *Tx) error {
		for i := range n {
			if err := tx.Put("notes", fmt.Sprintf("%s-%d", prefix, i), []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sealedEpoch(t testing.TB, s *Store, coll, key string) uint32 {
	t.Helper()
	var epoch uint32
	err := s.View(func(tx *Tx) error {
		set, err := tx.antichain(s.keys.recordID(coll, key))
		if err != nil || len(set) != 1 {
			return fmt.Errorf("antichain of %s/%s: %v (%d versions)", coll, key, err, len(set))
		}
		epoch = set[0].env.KeyEpoch
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return epoch
}

// Removing c starts epoch 1: a and b read old and new records, new writes go under
// epoch 1 on both, and c, which holds the mesh key and every old key, opens none of them.
func TestRotateKeyOnRemoval(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	c := peer(t, a, "c", nil)
	writeNotes(t, a, "old", 5)
	syncBoth(t, a, b)
	syncBoth(t, a, c)

	revoke(t, a, c)
	if need, err := a.Keys().NeedsRotation(); err != nil || !need {
		t.Fatalf("a revoked c but does not ask for a new epoch: %v %v", need, err)
	}
	ke, err := a.Keys().RotateKey(map[resolve.DeviceID]string{b.Device().ID: kx(t, b), c.Device().ID: kx(t, c)})
	if err != nil {
		t.Fatal(err)
	}
	want := []resolve.DeviceID{a.Device().ID, b.Device().ID}
	slices.Sort(want)
	if ke.Epoch != 1 || !slices.Equal(ke.Recipients, want) {
		t.Fatalf("new epoch %+v: want epoch 1 granted to a and b only (c is revoked)", ke)
	}
	if need, _ := a.Keys().NeedsRotation(); need {
		t.Error("still asks for a rotation after rotating")
	}
	if err := a.Put("notes", "after", []byte(`"secret"`)); err != nil {
		t.Fatal(err)
	}
	if e := sealedEpoch(t, a, "notes", "after"); e != 1 {
		t.Errorf("a seals a new write under epoch %d, want 1", e)
	}

	// b gets the grant and the new envelope in one batch, the envelope first.
	res := mustApply(t, b, reversed(t, a))
	if res.Added == 0 {
		t.Fatal("b added nothing")
	}
	if err := b.Put("notes", "from-b", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if e := sealedEpoch(t, b, "notes", "from-b"); e != 1 {
		t.Errorf("b seals under epoch %d after adopting the grant, want 1", e)
	}
	for _, s := range []*Store{a, b} {
		for _, k := range []string{"old-0", "old-4", "after"} {
			if _, err := s.Get("notes", k); err != nil {
				t.Errorf("%s reads %s: %v", s.Device().Name, k, err)
			}
		}
	}
	syncBoth(t, a, b)

	// c sees the grant records but cannot open a key, nor any envelope of epoch 1.
	res, err = c.Replication().Apply(allEnvelopes(t, a))
	if err != nil {
		t.Fatal(err)
	}
	unknown := 0
	for _, r := range res.Rejected {
		if errors.Is(r.Err, ErrUnknownKeyEpoch) {
			unknown++
		}
	}
	if unknown < 2 || unknown != len(res.Rejected) {
		t.Errorf("c: %d rejected, %d for an unknown epoch; want both epoch-1 writes refused for that reason", len(res.Rejected), unknown)
	}
	if n, err := c.Keys().AdoptKeys(); err != nil || n != 0 {
		t.Errorf("c adopted %d keys (%v)", n, err)
	}
	if _, err := c.Get("notes", "after"); !errors.Is(err, ErrNotFound) {
		t.Errorf("c reads a record written after its removal: %v", err)
	}
	for _, raw := range allEnvelopes(t, a) {
		e, _ := UnmarshalEnvelope(raw)
		if e.KeyEpoch == 0 {
			continue
		}
		if _, err := c.keys.open(e); err == nil {
			t.Fatal("c's keyring opens an epoch-1 envelope")
		}
	}

	// The keys survive a restart.
	dir := b.Dir()
	b.Close()
	b = reopen(t, dir)
	defer b.Close()
	if err := b.Keys().LoadKeyEpochs(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get("notes", "after"); err != nil {
		t.Errorf("b after restart: %v", err)
	}
	if kes, err := b.Keys().KeyEpochs(); err != nil || len(kes) != 1 || !kes[0].Sealing || kes[0].KeyID != ke.KeyID {
		t.Errorf("b's key epochs after restart: %+v %v", kes, err)
	}
}

// Re-sealing in small batches on two devices at once, interleaved with sync and with
// writes, ends with byte-identical envelope sets on both devices and on a blind replica
// that opens nothing, every envelope under the new epoch (the grants under epoch 0), and
// Verify passing at every step.
func TestResealConverges(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	tok, err := a.Keys().ReplicaToken()
	if err != nil {
		t.Fatal(err)
	}
	r, err := InitReplica(filepath.Join(t.TempDir(), "replica"), testPass, tok, testOpts("r"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustVerifyClose(t, r) })
	const n = 120
	writeNotes(t, a, "a", n)
	writeNotes(t, b, "b", n/2)
	syncBoth(t, a, b)
	copyAll(t, a, r)

	if _, err := a.Keys().RotateKey(map[resolve.DeviceID]string{b.Device().ID: kx(t, b)}); err != nil {
		t.Fatal(err)
	}
	syncBoth(t, a, b)
	verify := func(when string) {
		t.Helper()
		for _, s := range []*Store{a, b, r} {
			rep, err := s.Verify()
			if err != nil || !rep.OK() {
				t.Fatalf("%s: verify %s: %v %v", when, s.Device().Name, err, rep)
			}
		}
	}
	rounds := 0
	for {
		sa, err := a.Keys().Reseal(17)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := b.Keys().Reseal(23)
		if err != nil {
			t.Fatal(err)
		}
		if sa.Unreadable+sb.Unreadable > 0 {
			t.Fatalf("unreadable envelopes: %d %d", sa.Unreadable, sb.Unreadable)
		}
		if rounds%3 == 1 {
			syncBoth(t, a, b)
			mustApply(t, r, reversed(t, b))
			a.Put("notes", fmt.Sprintf("during-%d", rounds), []byte(`1`))
		}
		verify(fmt.Sprintf("round %d", rounds))
		rounds++
		if sa.Done && sb.Done {
			break
		}
		if rounds > 100 {
			t.Fatal("re-seal does not finish")
		}
	}
	syncBoth(t, a, b)
	copyAll(t, a, r)
	copyAll(t, b, r)
	if ea, eb, er := envelopeSet(t, a), envelopeSet(t, b), envelopeSet(t, r); ea != eb || eb != er {
		t.Fatal("envelope sets differ after re-seal and sync")
	}
	ra, _ := a.Replication().Root()
	rr, _ := r.Replication().Root()
	if ra != rr {
		t.Error("Merkle roots differ between a device and the replica")
	}
	ep := epochsOf(t, a)
	if ep[0] != 2 || len(ep) != 2 { // the two grants
		t.Errorf("envelopes per epoch after re-seal: %v; want only the 2 grants under epoch 0", ep)
	}
	verify("end")
	t.Logf("re-sealed %d envelopes in %d rounds", ep[1], rounds)
}

// A removed device's writes after its removal are refused on devices and blind replicas:
// normal writes (a later clock), and forged ones with a clock set back before the removal
// but a counter above it. Its earlier envelopes still apply. The revocation survives a
// restart, and two revocations of one device keep the earlier point.
func TestRevokedWritesRejected(t *testing.T) {
	clk := newFakeClock()
	a := mustInit(t, testOptsClock(clk))
	d := peer(t, a, "d", testOptsClock(clk))
	tok, _ := a.Keys().ReplicaToken()
	r, err := InitReplica(filepath.Join(t.TempDir(), "replica"), testPass, tok, testOpts("r"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustVerifyClose(t, r) })
	writeNotes(t, d, "d", 4)
	clk.Add(time.Minute)
	writeNotes(t, d, "d", 2) // counters 2 on d-0, d-1
	syncBoth(t, a, d)
	before := allEnvelopes(t, d)

	rp := revoke(t, a, d)
	if rp.Counter != 2 || rp.Clock == 0 {
		t.Fatalf("removal point %+v: want counter 2 and d's last clock", rp)
	}
	if err := r.Authority().RevokeDevice(d.Device().ID, rp); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	// Normal writes: a new record, an overwrite, a delete.
	d.Put("notes", "new", []byte(`"after"`))
	d.Put("notes", "d-3", []byte(`"after"`))
	d.Delete("notes", "d-2")
	var forged [][]byte
	// Forged: the clock set back to before the removal, counters above it.
	for i, vv := range []uint64{rp.Counter + 1, rp.Counter + 5} {
		key := fmt.Sprintf("forged-%d", i)
		v := resolve.Version{Device: d.Device().ID, Clock: 1, VV: resolve.VersionVector{d.Device().ID: vv}}
		e, err := d.keys.seal(d.keys.recordID("notes", key), v, &payload{Collection: "notes", Key: key, Value: resolve.Value{Kind: resolve.KindJSON, Data: []byte(`"backdated"`)}})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := e.MarshalBinary()
		forged = append(forged, raw)
	}
	var after [][]byte
	for _, raw := range allEnvelopes(t, d) {
		if !slices.ContainsFunc(before, func(b []byte) bool { return bytes.Equal(b, raw) }) {
			after = append(after, raw)
		}
	}
	after = append(after, forged...)
	if len(after) != 5 {
		t.Fatalf("%d new envelopes on d, want 5", len(after))
	}
	rootA, _ := a.Replication().Root()
	for _, s := range []*Store{a, r} {
		res, err := s.Replication().Apply(after)
		if err != nil {
			t.Fatal(err)
		}
		if res.Added != 0 || len(res.Rejected) != len(after) {
			t.Errorf("%s: %d of %d later writes accepted", s.Device().Name, res.Added, len(after))
		}
		for _, rj := range res.Rejected {
			if !errors.Is(rj.Err, ErrRevoked) {
				t.Errorf("%s: rejected for %v, want ErrRevoked", s.Device().Name, rj.Err)
			}
		}
		// What d wrote before its removal still applies (nothing new, nothing refused).
		if res, err := s.Replication().Apply(before); err != nil || len(res.Rejected) != 0 {
			t.Errorf("%s: earlier envelopes: %v %v", s.Device().Name, err, res.Rejected)
		}
	}
	if root, _ := a.Replication().Root(); root != rootA {
		t.Error("a's root changed")
	}
	if _, err := a.Get("notes", "new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a reads d's later write: %v", err)
	}

	// b accepted d's later writes before it heard of the removal. Nothing it holds is
	// dropped: learning of the removal, b writes how far it had seen d, the cut becomes
	// the furthest of the remaining devices' views, and a then takes what b vouches for,
	// so that a and b hold the same envelopes.
	b := peer(t, a, "b", nil)
	mustApply(t, b, before)
	mustApply(t, b, after[:3])
	mustApply(t, b, allEnvelopes(t, a)) // b hears of the removal and writes its view
	mustApply(t, a, allEnvelopes(t, b)) // a takes the view, then what it covers
	if _, err := b.Get("notes", "new"); err != nil {
		t.Errorf("b lost a write of d it held before it heard of the removal: %v", err)
	}
	if _, err := a.Get("notes", "new"); err != nil {
		t.Errorf("a refuses a write of d that b held before it heard of the removal: %v", err)
	}
	if envelopeSet(t, a) != envelopeSet(t, b) {
		t.Error("a and b hold different envelopes after b's view of the removal")
	}
	// The forged ones were seen by nobody: still refused everywhere.
	for _, s := range []*Store{a, b} {
		if res, err := s.Replication().Apply(forged); err != nil || res.Added != 0 {
			t.Errorf("%s: forged after the views: %v, %d added", s.Device().Name, err, res.Added)
		}
	}

	// On a replica a later point (what the devices report as their views grow) raises the
	// first; an earlier one changes nothing; both survive a restart.
	if err := r.Authority().RevokeDevice(d.Device().ID, RemovalPoint{Counter: rp.Counter, Clock: rp.Clock + 1000}); err != nil {
		t.Fatal(err)
	}
	if err := r.Authority().RevokeDevice(d.Device().ID, RemovalPoint{Counter: rp.Counter, Clock: rp.Clock - 1}); err != nil {
		t.Fatal(err)
	}
	dir := r.Dir()
	r.Close()
	r, err = Open(dir, testPass, testOpts("r"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rev, err := r.Authority().Revoked()
	if err != nil {
		t.Fatal(err)
	}
	if got := rev[d.Device().ID]; got != (RemovalPoint{Counter: rp.Counter, Clock: rp.Clock + 1000}) {
		t.Errorf("removal point after restart %+v", got)
	}
	if res, err := r.Replication().Apply(forged); err != nil || res.Added != 0 {
		t.Errorf("after restart: %v, %d added", err, res.Added)
	}
}

// Two devices remove two others at the same time: both start epoch 1 with different keys,
// each granted to the device the other removed. Both keys are kept (writes under either
// open everywhere), both devices then ask for and start epoch 2, and the mesh ends sealing
// under one key, the same on both, that neither removed device holds.
func TestConcurrentRotations(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	c := peer(t, a, "c", nil)
	d := peer(t, a, "d", nil)
	all := map[resolve.DeviceID]string{}
	for _, s := range []*Store{a, b, c, d} {
		all[s.Device().ID] = kx(t, s)
	}
	writeNotes(t, a, "x", 3)
	syncBoth(t, a, b)

	revoke(t, a, c)
	revoke(t, b, d)
	ka, err := a.Keys().RotateKey(all)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.Keys().RotateKey(all)
	if err != nil {
		t.Fatal(err)
	}
	if ka.Epoch != 1 || kb.Epoch != 1 || ka.KeyID == kb.KeyID {
		t.Fatalf("concurrent rotations: %+v %+v", ka, kb)
	}
	a.Put("notes", "under-a", []byte(`"a1"`))
	b.Put("notes", "under-b", []byte(`"b1"`))
	// Each key reached the device the other removed, so each side refuses the other's
	// write under it (made after the removal) until it is re-sealed under a clean key.
	for _, p := range [][2]*Store{{a, b}, {b, a}} {
		res, err := p[1].Replication().Apply(allEnvelopes(t, p[0]))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rejected) != 1 || !errors.Is(res.Rejected[0].Err, ErrRevoked) {
			t.Errorf("%s took %s's write under a key a removed device holds: %+v", p[1].Device().Name, p[0].Device().Name, res.Rejected)
		}
	}
	for _, s := range []*Store{a, b} {
		kes, _ := s.Keys().KeyEpochs()
		if len(kes) != 2 {
			t.Errorf("%s holds %d epoch keys, want both of epoch 1", s.Device().Name, len(kes))
		}
	}
	// The device list brings each removal to the other side.
	revoke(t, a, d)
	revoke(t, b, c)
	for _, s := range []*Store{a, b} {
		if need, err := s.Keys().NeedsRotation(); err != nil || !need {
			t.Fatalf("%s: the sealing key reached a removed device, yet no new epoch asked (%v)", s.Device().Name, err)
		}
	}
	if _, err := a.Keys().RotateKey(all); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Keys().RotateKey(all); err != nil {
		t.Fatal(err)
	}
	syncRevoked(t, a, b) // the writes under the tainted epoch-1 keys wait for the re-seal
	sealing := func(s *Store) KeyEpoch {
		kes, err := s.Keys().KeyEpochs()
		if err != nil {
			t.Fatal(err)
		}
		for _, ke := range kes {
			if ke.Sealing {
				return ke
			}
		}
		t.Fatalf("%s: no sealing key", s.Device().Name)
		return KeyEpoch{}
	}
	sa, sb := sealing(a), sealing(b)
	if sa.Epoch != 2 || sa.KeyID != sb.KeyID {
		t.Fatalf("sealing keys differ: a %+v, b %+v", sa, sb)
	}
	// Re-sealed under the clean key, each side's write reaches the other.
	for _, s := range []*Store{a, b} {
		for st := (ResealStats{}); !st.Done; {
			var err error
			if st, err = s.Keys().Reseal(0); err != nil {
				t.Fatal(err)
			}
		}
	}
	syncBoth(t, a, b)
	for _, s := range []*Store{a, b} {
		for _, k := range []string{"under-a", "under-b"} {
			if _, err := s.Get("notes", k); err != nil {
				t.Errorf("%s reads %s: %v", s.Device().Name, k, err)
			}
		}
	}
	for _, dev := range sa.Recipients {
		if dev == c.Device().ID || dev == d.Device().ID {
			t.Errorf("the final key went to removed device %s", dev)
		}
	}
	for _, s := range []*Store{a, b} {
		if need, _ := s.Keys().NeedsRotation(); need {
			t.Errorf("%s still asks for a rotation", s.Device().Name)
		}
	}
	a.Put("notes", "final", []byte(`"f"`))
	syncBoth(t, a, b)
	for _, s := range []*Store{a, b} {
		if e := sealedEpoch(t, s, "notes", "final"); e != 2 {
			t.Errorf("%s: final write under epoch %d", s.Device().Name, e)
		}
	}
	// c and d adopt what was granted to them (one epoch-1 key each) but open no epoch-2
	// envelope.
	for _, x := range []*Store{c, d} {
		x.Replication().Apply(allEnvelopes(t, a))
		kes, _ := x.Keys().KeyEpochs()
		if len(kes) != 1 || kes[0].Epoch != 1 {
			t.Errorf("%s holds %+v", x.Device().Name, kes)
		}
		if _, err := x.Get("notes", "final"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s reads the epoch-2 write: %v", x.Device().Name, err)
		}
	}
	// Re-seal on both converges on the same bytes, an open conflict included (both of its
	// versions are re-sealed).
	a.Put("notes", "both", []byte(`"a"`))
	b.Put("notes", "both", []byte(`"b"`))
	syncBoth(t, a, b)
	if _, err := a.Keys().RotateKey(all); err != nil { // epoch 3: the conflict is under epoch 2
		t.Fatal(err)
	}
	syncBoth(t, a, b)
	for _, s := range []*Store{a, b} {
		for {
			st, err := s.Keys().Reseal(0)
			if err != nil {
				t.Fatal(err)
			}
			if st.Done {
				break
			}
		}
	}
	syncBoth(t, a, b)
	if envelopeSet(t, a) != envelopeSet(t, b) {
		t.Error("envelope sets differ")
	}
	if rec, err := b.Get("notes", "both"); err != nil || rec.Versions != 2 {
		t.Errorf("the conflict after re-seal: %+v %v", rec, err)
	}
	if ep := epochsOf(t, a); len(ep) != 2 || ep[0] == 0 || ep[3] == 0 {
		t.Errorf("envelopes per epoch after re-seal: %v", ep)
	}
}

// A device paired after a rotation (it holds only the mesh key) gets every key through
// GrantKeys and reads everything; a revoked device gets nothing.
func TestGrantKeysToLateDevice(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	c := peer(t, a, "c", nil)
	writeNotes(t, a, "x", 2)
	revoke(t, a, c)
	if _, err := a.Keys().RotateKey(nil); err != nil {
		t.Fatal(err)
	}
	a.Put("notes", "new", []byte(`1`))
	e := peer(t, a, "e", nil)
	res, _ := e.Replication().Apply(allEnvelopes(t, a))
	if len(res.Rejected) == 0 {
		t.Fatal("a device without the key opened epoch-1 envelopes")
	}
	// e hears of the removal before it is granted the new key: it waits for the grant
	// instead of starting an epoch of its own.
	revoke(t, e, c)
	if need, err := e.Keys().NeedsRotation(); err != nil || need {
		t.Errorf("a device not granted the newest epoch yet asks for one of its own: %v %v", need, err)
	}
	if n, err := a.Keys().GrantKeys(e.Device().ID, kx(t, e)); err != nil || n != 1 {
		t.Fatalf("grant: %d %v", n, err)
	}
	if n, err := a.Keys().GrantKeys(e.Device().ID, kx(t, e)); err != nil || n != 0 {
		t.Fatalf("second grant wrote %d (%v), want 0", n, err)
	}
	if n, err := a.Keys().GrantKeys(c.Device().ID, kx(t, c)); err != nil || n != 0 {
		t.Fatalf("a revoked device was granted %d keys (%v)", n, err)
	}
	mustApply(t, e, allEnvelopes(t, a))
	if _, err := e.Get("notes", "new"); err != nil {
		t.Errorf("late device: %v", err)
	}
	if _, err := a.Keys().GrantKeys(e.Device().ID, "age1notakey"); err != nil {
		t.Errorf("no grant needed, yet: %v", err)
	}
	f := peer(t, a, "f", nil)
	if _, err := a.Keys().GrantKeys(f.Device().ID, "age1notakey"); !errors.Is(err, ErrNoKeyAgreementKey) {
		t.Errorf("bad key: %v", err)
	}
}

// A grant opens to the key it names; a grant whose name does not match the key inside, or
// addressed to another device's key, does not.
func TestGrantWrapRoundTrip(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	ek := epochKey{Epoch: 3, Key: bytes.Repeat([]byte{7}, 32)}
	g, err := wrapKey(ek, a.Device().ID, kx(t, a), a.Device().ID)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(g)
	g2, err := parseGrant(raw)
	if err != nil {
		t.Fatal(err)
	}
	identity := func(s *Store) *age.X25519Identity {
		var id *age.X25519Identity
		if err := s.db.View(func(tx *bolt.Tx) error {
			var err error
			id, err = s.kxIdentity(tx, false)
			return err
		}); err != nil || id == nil {
			t.Fatalf("identity: %v", err)
		}
		return id
	}
	got, err := unwrapKey(g2, identity(a))
	if err != nil || got.Epoch != 3 || !bytes.Equal(got.Key, ek.Key) {
		t.Fatalf("unwrap: %+v %v", got, err)
	}
	bad := *g2
	bad.Epoch = 4
	if _, err := unwrapKey(&bad, identity(a)); !errors.Is(err, ErrTampered) {
		t.Errorf("grant renamed to another epoch: %v", err)
	}
	kx(t, b)
	if _, err := unwrapKey(g2, identity(b)); err == nil {
		t.Error("another device opens the grant")
	}
}

// FuzzParseGrant: a grant value from any device never panics, and one that parses
// encodes back to a value that parses to the same grant.
func FuzzParseGrant(f *testing.F) {
	ek := epochKey{Epoch: 1, Key: bytes.Repeat([]byte{1}, 32)}
	g := &keyGrant{Epoch: ek.Epoch, KeyID: ek.id(), To: "aa", By: "bb", Wrapped: []byte("age-encryption.org/v1\n")}
	seed, _ := json.Marshal(g)
	f.Add(seed)
	f.Add([]byte(`{"epoch":0}`))
	f.Add([]byte(`{"epoch":1,"key_id":"zz","to":"a","by":"b","wrapped":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := parseGrant(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		g2, err := parseGrant(again)
		if err != nil {
			t.Fatalf("re-encoded grant refused: %v", err)
		}
		if g.recordKey() != g2.recordKey() || !bytes.Equal(g.Wrapped, g2.Wrapped) {
			t.Fatal("grant changed across encode and decode")
		}
	})
}

// BenchmarkReseal measures re-sealing throughput (envelopes of ~100 bytes per second) after
// a rotation, in DefaultResealBatch batches.
func BenchmarkReseal(b *testing.B) {
	const n = 5000
	for range b.N {
		b.StopTimer()
		s := mustInit(b, &Options{KDF: testKDF, DeviceName: "a", NoSync: true})
		writeNotes(b, s, "r", n)
		if _, err := s.Keys().RotateKey(nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		total := 0
		for {
			st, err := s.Keys().Reseal(DefaultResealBatch)
			if err != nil {
				b.Fatal(err)
			}
			total += st.Resealed
			if st.Done {
				break
			}
		}
		if total != n {
			b.Fatalf("re-sealed %d of %d", total, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "envelopes/s")
}

// TestOwnWriteAfterRemovalResealedAtOnce: a writes after it removed c but before the new
// key epoch b started reaches it: the write is sealed under a key c holds, so b refuses
// it. Once a holds the new key, ResealOwn re-seals that write of its own (and nothing
// else), and b takes it; no full re-seal pass is needed for it.
func TestOwnWriteAfterRemovalResealedAtOnce(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	b := peer(t, a, "b", nil)
	c := peer(t, a, "c", nil)
	all := map[resolve.DeviceID]string{}
	for _, s := range []*Store{a, b, c} {
		all[s.Device().ID] = kx(t, s)
	}
	writeNotes(t, a, "before", 3)
	syncBoth(t, a, b)
	revoke(t, a, c)
	syncBoth(t, a, b) // b learns of the removal
	if _, err := b.Keys().RotateKey(all); err != nil {
		t.Fatal(err)
	}
	if err := a.Put("notes", "after-removal", []byte(`"fresh"`)); err != nil {
		t.Fatal(err)
	}
	syncRevoked(t, a, b)
	if _, err := b.Get("notes", "after-removal"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b took a's write under a key the removed device holds: %v", err)
	}
	if _, err := a.Keys().AdoptKeys(); err != nil { // as a node does on a new grant
		t.Fatal(err)
	}
	n, err := a.Keys().ResealOwn()
	if err != nil || n != 1 {
		t.Fatalf("ResealOwn re-sealed %d envelopes (%v), want a's one write after the removal", n, err)
	}
	if n, err := a.Keys().ResealOwn(); err != nil || n != 0 {
		t.Fatalf("a second ResealOwn re-sealed %d (%v)", n, err)
	}
	syncBoth(t, a, b)
	rec, err := b.Get("notes", "after-removal")
	if err != nil || string(rec.Value) != `"fresh"` {
		t.Fatalf("b after the re-seal: %v %v", rec, err)
	}
	mustVerifyClose(t, a)
	mustVerifyClose(t, b)
}

// TestResealInBatchesMissesNone: a re-seal pass in batches of three, each starting where
// the one before stopped, re-seals every record (the cursor names the first record not
// looked at yet: a resumed walk must start at it, not after it).
func TestResealInBatchesMissesNone(t *testing.T) {
	a := mustInit(t, testOpts("a"))
	writeNotes(t, a, "n", 50)
	if _, err := a.Keys().RotateKey(map[resolve.DeviceID]string{a.Device().ID: kx(t, a)}); err != nil {
		t.Fatal(err)
	}
	total := 0
	for range 1000 {
		st, err := a.Keys().Reseal(3)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Resealed
		if st.Done {
			break
		}
	}
	if total != 50 {
		t.Errorf("re-sealed %d envelopes in batches of 3, want the 50 notes", total)
	}
	// Under epoch 0 stay only the key grants and membership records.
	if old, want := epochsOf(t, a)[0], len(mustList(t, a, KeysCollection))+len(mustList(t, a, DevicesCollection)); old != want {
		t.Errorf("%d envelopes left under epoch 0, want the %d grants and device records", old, want)
	}
	mustVerifyClose(t, a)
}

func mustList(t *testing.T, s *Store, c string) []Record {
	t.Helper()
	recs, err := s.List(c, "")
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
