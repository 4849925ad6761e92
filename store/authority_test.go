package store

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/meshsync/meshsync/resolve"
)

// The authority tests build meshes the way pairing does (no autoPair): the founder admits
// every other device in a signed device record, and each joiner trusts the founder.

// soloMesh makes a mesh of len(names) devices on one fake clock: names[0] founds it and
// admits the others; every device then holds every device record.
func soloMesh(t *testing.T, clk *fakeClock, names ...string) []*Store {
	t.Helper()
	o := &Options{KDF: testKDF, DeviceName: "solo-" + names[0], Now: clk.Now}
	a := mustInit(t, o)
	writeDeviceRecord(t, a, a.device.ID, pubOf(a), nil)
	out := []*Store{a}
	for _, n := range names[1:] {
		out = append(out, peerOfMesh(t, a, clk, n))
	}
	for _, p := range out[1:] {
		mustApply(t, p, allEnvelopes(t, a))
	}
	return out
}

func pubOf(s *Store) ed25519.PublicKey { return s.signer.Public().(ed25519.PublicKey) }

// writeDeviceRecord has by (a member) admit dev with key, or dev's own record when by is
// nil and dev is by's own id.
func writeDeviceRecord(t *testing.T, by *Store, dev resolve.DeviceID, key ed25519.PublicKey, extra map[string]any) {
	t.Helper()
	ad, err := by.Authority().Admit(dev, key)
	if err != nil {
		t.Fatal(err)
	}
	rec := map[string]any{"id": dev, "key": []byte(key), "admission": ad}
	for k, v := range extra {
		rec[k] = v
	}
	b, _ := json.Marshal(rec)
	if err := by.Update(func(tx *Tx) error { return tx.PutReserved(DevicesCollection, string(dev), b) }); err != nil {
		t.Fatal(err)
	}
}

// forge seals a record of any collection under any version, signed by signer (nil: no
// signature), with the mesh key held by s: what a hostile member can make.
func forge(t *testing.T, s *Store, signer ed25519.PrivateKey, v resolve.Version, coll, key string, kind resolve.Kind, value []byte) []byte {
	t.Helper()
	p := &payload{Collection: coll, Key: key, Value: resolve.Value{Kind: kind, Data: value}}
	id := s.keys.recordID(coll, key)
	if signer != nil {
		msg, err := signMessage(s.keys.meshID, id, v, p)
		if err != nil {
			t.Fatal(err)
		}
		p.Sig = ed25519.Sign(signer, msg)
	}
	plain, err := p.marshal()
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.keys.sealWith(id, s.keys.tag(coll), v, plain, 0, s.keys.data[0])
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func versionAt(dev resolve.DeviceID, clk *fakeClock, counter uint64) resolve.Version {
	return resolve.Version{Device: dev, Clock: resolve.MakeTimestamp(clk.Now().UnixMilli(), 0), VV: resolve.VersionVector{dev: counter}}
}

func memberOf(t *testing.T, s *Store, dev resolve.DeviceID) (Member, bool) {
	t.Helper()
	ms, err := s.Authority().Members()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ms, func(m Member) bool { return m.ID == dev })
	if i < 0 {
		return Member{}, false
	}
	return ms[i], true
}

// A hostile member (it holds the mesh key and its own signing key) crafts records that
// carry authority; each is refused for its own named reason, and the store is unchanged.
func TestAuthorityRefusesForgeries(t *testing.T) {
	clk := newFakeClock()
	ms := soloMesh(t, clk, "a", "b", "m")
	a, b, m := ms[0], ms[1], ms[2]
	_, stranger, _ := ed25519.GenerateKey(nil)
	strangerID := resolve.DeviceID("5717a96e75a1e600")
	grant := func(by resolve.DeviceID, epoch uint32) []byte {
		g := keyGrant{Epoch: epoch, KeyID: "0123456789abcdef", To: m.device.ID, By: by, Wrapped: []byte("x")}
		out, _ := json.Marshal(g)
		return out
	}
	grantKey := func(by resolve.DeviceID, epoch uint32) string {
		return (&keyGrant{Epoch: epoch, KeyID: "0123456789abcdef", To: m.device.ID, By: by}).recordKey()
	}
	policy := []byte(`{"strategy":"priority"}`)
	removal := func(dev, by resolve.DeviceID) []byte {
		out, _ := json.Marshal(removalRec{Device: dev, By: by})
		return out
	}
	strangerAd := Admission{By: strangerID, At: 1}
	strangerAd.Sig = ed25519.Sign(stranger, admissionMessage(a.keys.meshID, strangerID, stranger.Public().(ed25519.PublicKey), strangerID, 1))
	strangerRec, _ := json.Marshal(map[string]any{"id": strangerID, "key": []byte(stranger.Public().(ed25519.PublicKey)), "admission": strangerAd})
	_, other, _ := ed25519.GenerateKey(nil)
	rekeyAd, _ := m.Authority().Admit(b.device.ID, other.Public().(ed25519.PublicKey))
	rekey, _ := json.Marshal(map[string]any{"id": b.device.ID, "key": []byte(other.Public().(ed25519.PublicKey)), "admission": rekeyAd})
	self := m.device.ID
	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		// Unsigned, or signed by another key than the writer's.
		{"unsigned policy", forge(t, m, nil, versionAt(self, clk, 7), PolicyCollection, "notes", resolve.KindJSON, policy), ErrUnsigned},
		{"policy in a's name", forge(t, m, m.signer, versionAt(a.device.ID, clk, 7), PolicyCollection, "notes", resolve.KindJSON, policy), ErrBadSignature},
		{"policy by a stranger", forge(t, m, stranger, versionAt(strangerID, clk, 1), PolicyCollection, "notes", resolve.KindJSON, policy), ErrUnknownSigner},
		// Membership: a device admitted by no member, a member's key changed, another
		// device's removal written or deleted.
		{"self-admitted stranger", forge(t, m, stranger, versionAt(strangerID, clk, 1), DevicesCollection, string(strangerID), resolve.KindJSON, strangerRec), ErrUnknownSigner},
		{"b re-keyed by m", forge(t, m, m.signer, versionAt(self, clk, 8), DevicesCollection, string(b.device.ID), resolve.KindJSON, rekey), ErrNotAllowed},
		{"b's record deleted", forge(t, m, m.signer, versionAt(self, clk, 9), DevicesCollection, string(b.device.ID), resolve.KindDeleted, nil), ErrNotAllowed},
		{"removal in a's name", forge(t, m, m.signer, versionAt(self, clk, 1), RemovalsCollection, removalKey(b.device.ID, a.device.ID), resolve.KindJSON, removal(b.device.ID, a.device.ID)), ErrNotAllowed},
		{"removal deleted", forge(t, m, m.signer, versionAt(self, clk, 2), RemovalsCollection, removalKey(b.device.ID, self), resolve.KindDeleted, nil), ErrNotAllowed},
		// Key epochs: a grant in another's name, an epoch that would wrap, a jump.
		{"grant in a's name", forge(t, m, m.signer, versionAt(self, clk, 1), KeysCollection, grantKey(a.device.ID, 1), resolve.KindJSON, grant(a.device.ID, 1)), ErrNotAllowed},
		{"epoch 2^32-1", forge(t, m, m.signer, versionAt(self, clk, 1), KeysCollection, grantKey(self, 1<<32-1), resolve.KindJSON, grant(self, 1<<32-1)), ErrEpochRange},
		{"epoch jump", forge(t, m, m.signer, versionAt(self, clk, 1), KeysCollection, grantKey(self, MaxEpochStep+1), resolve.KindJSON, grant(self, MaxEpochStep+1)), ErrEpochRange},
		// Counters that would wrap a device's next write.
		{"counter 2^64-1", forge(t, m, m.signer, resolve.Version{Device: self, Clock: 5, VV: resolve.VersionVector{self: 1, a.device.ID: 1<<64 - 1}}, PolicyCollection, "x", resolve.KindJSON, policy), ErrCounterRange},
	}
	root, _ := a.Replication().Root()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := a.Replication().Apply([][]byte{c.raw})
			if err != nil {
				t.Fatal(err)
			}
			if res.Added != 0 || len(res.Rejected) != 1 || !errors.Is(res.Rejected[0].Err, c.want) {
				t.Fatalf("added %d, rejected %v; want refused for %v", res.Added, res.Rejected, c.want)
			}
			t.Logf("refused: %v", res.Rejected[0].Err)
		})
	}
	if r, _ := a.Replication().Root(); r != root {
		t.Error("a's store changed")
	}
	if _, ok := memberOf(t, a, strangerID); ok {
		t.Error("the stranger became a member")
	}
	// The same records signed properly by m are taken: the refusals were about authority.
	ok := forge(t, m, m.signer, versionAt(self, clk, 7), PolicyCollection, "notes", resolve.KindJSON, policy)
	mustApply(t, a, [][]byte{ok})
}

// A removed device cannot undo its removal: whatever it writes (its own record with a
// clock 50 years ahead, versions dominating the removal, a deleted removal record) and in
// whatever order three devices receive it, every device counts it removed and refuses its
// later writes. Nothing any device held is dropped.
func TestRemovalNeverUnhappens(t *testing.T) {
	clk := newFakeClock()
	ms := soloMesh(t, clk, "a", "b", "c", "m")
	a, b, c, m := ms[0], ms[1], ms[2], ms[3]
	mustPut(t, m, "notes", "before", `"m wrote this as a member"`)
	for _, s := range []*Store{a, b, c} {
		mustApply(t, s, allEnvelopes(t, m))
	}
	clk.Add(time.Minute)
	if err := a.Authority().Remove(m.device.ID); err != nil {
		t.Fatal(err)
	}
	removal := allEnvelopes(t, a)
	clk.Add(time.Minute)
	// m, not knowing, fights back.
	future := resolve.MakeTimestamp(clk.Now().AddDate(50, 0, 0).UnixMilli(), 0)
	huge := resolve.VersionVector{m.device.ID: 1 << 40, a.device.ID: 1 << 40, b.device.ID: 1 << 40}
	rec, _ := json.Marshal(map[string]any{"id": m.device.ID, "key": []byte(pubOf(m)), "removed": false})
	var hostile [][]byte
	hostile = append(hostile,
		forge(t, m, m.signer, resolve.Version{Device: m.device.ID, Clock: future, VV: huge}, DevicesCollection, string(m.device.ID), resolve.KindJSON, rec),
		forge(t, m, m.signer, resolve.Version{Device: m.device.ID, Clock: future, VV: huge}, RemovalsCollection, removalKey(m.device.ID, a.device.ID), resolve.KindDeleted, nil),
		forge(t, m, m.signer, resolve.Version{Device: m.device.ID, Clock: future, VV: huge}, "notes", "after", resolve.KindJSON, []byte(`"m after its removal"`)),
	)
	mustPut(t, m, "notes", "after-normal", `"m after its removal"`)
	hostile = append(hostile, allEnvelopes(t, m)...)
	batch := append(slices.Clone(hostile), removal...)
	// b and c receive the removal and m's writes in a random order, and in a random split
	// that always keeps the removal with or before m's later writes: a device that takes
	// m's writes before it hears of the removal holds them, and vouches for them when it
	// does (the gap the threat model names; TestRemovalGapVouches).
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for _, dst := range []*Store{b, c} {
		order := slices.Clone(batch)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		last := 0 // the split may not put a write of m before the last removal envelope
		for i, raw := range order {
			if slices.ContainsFunc(removal, func(r []byte) bool { return string(r) == string(raw) }) {
				last = i
			}
		}
		cut := last + 1 + rng.IntN(len(order)-last)
		for _, part := range [][][]byte{order[:cut], order[cut:]} {
			if _, err := dst.Replication().Apply(part); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 2 {
		for _, s := range []*Store{b, c} {
			mustApply(t, s, allEnvelopes(t, a))
			mustApply(t, a, allEnvelopes(t, s))
		}
	}
	for _, s := range []*Store{a, b, c} {
		mem, ok := memberOf(t, s, m.device.ID)
		if !ok || !mem.Removed {
			t.Errorf("%s: m is %+v, want removed", s.device.Name, mem)
		}
		for _, k := range []string{"after", "after-normal"} {
			if _, err := s.Get("notes", k); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s reads m's %s: %v", s.device.Name, k, err)
			}
		}
		if _, err := s.Get("notes", "before"); err != nil {
			t.Errorf("%s lost m's write from before its removal: %v", s.device.Name, err)
		}
	}
	if envelopeSet(t, b) != envelopeSet(t, c) {
		t.Error("b and c hold different envelopes")
	}
}

// A device that takes a removed device's writes before it hears of the removal keeps
// them: learning of it, it writes how far it had seen the removed device, and the others
// take what it vouches for. Nothing that reached a remaining device is dropped, and the
// mesh converges; what no remaining device held stays refused.
func TestRemovalGapVouches(t *testing.T) {
	clk := newFakeClock()
	ms := soloMesh(t, clk, "a", "b", "m")
	a, b, m := ms[0], ms[1], ms[2]
	clk.Add(time.Minute)
	if err := a.Authority().Remove(m.device.ID); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	mustPut(t, m, "notes", "gap", `"taken by b before it heard"`)
	gap := allEnvelopes(t, m)
	mustApply(t, b, gap)
	mustPut(t, m, "notes", "later", `"after b heard"`)
	for range 2 {
		mustApply(t, b, allEnvelopes(t, a))
		mustApply(t, a, allEnvelopes(t, b))
	}
	res, err := b.Replication().Apply(allEnvelopes(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 0 {
		t.Errorf("b took %d writes of m after it heard of the removal", res.Added)
	}
	for _, s := range []*Store{a, b} {
		if _, err := s.Get("notes", "gap"); err != nil {
			t.Errorf("%s: the write b held before it heard: %v", s.device.Name, err)
		}
		if _, err := s.Get("notes", "later"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s reads m's later write: %v", s.device.Name, err)
		}
	}
	if envelopeSet(t, a) != envelopeSet(t, b) {
		t.Error("a and b differ")
	}
}

func mustPut(t *testing.T, s *Store, coll, key, value string) {
	t.Helper()
	if err := s.Put(coll, key, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

// A member that removes a device with a removal point of zero (finding 6: it would purge
// everything the victim ever wrote) purges nothing: each remaining device writes how far
// it had seen the victim, and the cut is the furthest of those points.
func TestRemovalPointCannotPurge(t *testing.T) {
	clk := newFakeClock()
	ms := soloMesh(t, clk, "a", "b", "v", "h")
	a, b, v, h := ms[0], ms[1], ms[2], ms[3]
	for i := range 5 {
		mustPut(t, v, "notes", fmt.Sprintf("v%d", i), `"the victim's work"`)
	}
	for _, s := range []*Store{a, b, h} {
		mustApply(t, s, allEnvelopes(t, v))
	}
	before := map[*Store]string{a: envelopeSet(t, a), b: envelopeSet(t, b)}
	clk.Add(time.Minute)
	zero, _ := json.Marshal(removalRec{Device: v.device.ID, By: h.device.ID, Point: RemovalPoint{}})
	evil := forge(t, h, h.signer, versionAt(h.device.ID, clk, 1), RemovalsCollection, removalKey(v.device.ID, h.device.ID), resolve.KindJSON, zero)
	for _, s := range []*Store{a, b} {
		mustApply(t, s, [][]byte{evil})
		mustApply(t, s, allEnvelopes(t, a))
		mustApply(t, a, allEnvelopes(t, s))
	}
	for _, s := range []*Store{a, b} {
		mem, _ := memberOf(t, s, v.device.ID)
		if !mem.Removed {
			t.Errorf("%s: a signed removal by a member did not count", s.device.Name)
		}
		if mem.Cut.Counter == 0 {
			t.Errorf("%s: the cut stayed at zero: %+v", s.device.Name, mem.Cut)
		}
		for i := range 5 {
			if _, err := s.Get("notes", fmt.Sprintf("v%d", i)); err != nil {
				t.Errorf("%s lost the victim's v%d: %v", s.device.Name, i, err)
			}
		}
		if got := envelopeSet(t, s); len(got) < len(before[s]) {
			t.Errorf("%s holds fewer envelopes than before", s.device.Name)
		}
	}
	// v's earlier writes, offered again, are still taken by a device that never had them.
	late := peerOfMesh(t, a, clk, "late")
	mustApply(t, late, allEnvelopes(t, a))
	mustApply(t, late, allEnvelopes(t, v))
	if _, err := late.Get("notes", "v4"); err != nil {
		t.Errorf("a late device refuses the victim's earlier write: %v", err)
	}
}

// peerOfMesh admits a new device (by a) that trusts a, as pairing does.
func peerOfMesh(t *testing.T, a *Store, clk *fakeClock, name string) *Store {
	t.Helper()
	p, err := Init(filepath.Join(t.TempDir(), name), testPass, &Options{KDF: testKDF, DeviceName: "solo-" + name, MeshKey: a.keys.mesh, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustVerifyClose(t, p) })
	writeDeviceRecord(t, a, p.device.ID, pubOf(p), nil)
	if err := p.Authority().AddAnchors(map[resolve.DeviceID]ed25519.PublicKey{a.device.ID: pubOf(a)}); err != nil {
		t.Fatal(err)
	}
	return p
}

// Two devices that remove each other at about the same time are both removed, on every
// device, in any order (removal wins). A removed device that goes on removing others long
// after its own removal is ignored.
func TestDuellingRemovals(t *testing.T) {
	clk := newFakeClock()
	ms := soloMesh(t, clk, "a", "p", "l", "c")
	a, p, l, c := ms[0], ms[1], ms[2], ms[3]
	clk.Add(time.Minute)
	if err := p.Authority().Remove(l.device.ID); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	if err := l.Authority().Remove(p.device.ID); err != nil {
		t.Fatal(err)
	}
	fromP, fromL := allEnvelopes(t, p), allEnvelopes(t, l)
	for i, s := range []*Store{a, c} {
		first, second := fromP, fromL
		if i == 1 {
			first, second = fromL, fromP
		}
		mustApply(t, s, first)
		if _, err := s.Replication().Apply(second); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*Store{a, c} {
		for _, d := range []*Store{p, l} {
			if mem, _ := memberOf(t, s, d.device.ID); !mem.Removed {
				t.Errorf("%s: %s is not removed after the duel", s.device.Name, d.device.Name)
			}
		}
	}
	// p, removed, removes a an hour later: ignored everywhere.
	clk.Add(time.Hour)
	late, _ := json.Marshal(removalRec{Device: a.device.ID, By: p.device.ID})
	raw := forge(t, p, p.signer, versionAt(p.device.ID, clk, 9), RemovalsCollection, removalKey(a.device.ID, p.device.ID), resolve.KindJSON, late)
	for _, s := range []*Store{a, c} {
		s.Replication().Apply([][]byte{raw})
		if mem, _ := memberOf(t, s, a.device.ID); mem.Removed {
			t.Errorf("%s: a removed by a device removed an hour earlier", s.device.Name)
		}
	}
}

// Key epochs belong to members (finding 2): an epoch m started before its removal does
// not stand in for the rotation its removal needs, and the mesh's next key is one m
// cannot open; the epoch count never wraps.
func TestEpochsBelongToMembers(t *testing.T) {
	clk := newFakeClock()
	ms := soloMesh(t, clk, "a", "b", "m")
	a, b, m := ms[0], ms[1], ms[2]
	// m starts epoch 1 for a and b and keeps the key itself.
	if _, err := m.Keys().RotateKey(map[resolve.DeviceID]string{a.device.ID: kx(t, a), b.device.ID: kx(t, b)}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{a, b} {
		mustApply(t, s, allEnvelopes(t, m))
	}
	clk.Add(time.Minute)
	if err := a.Authority().Remove(m.device.ID); err != nil {
		t.Fatal(err)
	}
	if need, err := a.Keys().NeedsRotation(); err != nil || !need {
		t.Fatalf("a removed m, whose epoch it seals under, yet asks no rotation (%v)", err)
	}
	ke, err := a.Keys().RotateKey(map[resolve.DeviceID]string{b.device.ID: kx(t, b), m.device.ID: kx(t, m)})
	if err != nil {
		t.Fatal(err)
	}
	if ke.Epoch != 2 || slices.Contains(ke.Recipients, m.device.ID) {
		t.Fatalf("new epoch %+v", ke)
	}
	mustPut(t, a, "notes", "secret", `"after m's removal"`)
	mustApply(t, b, allEnvelopes(t, a))
	if e := sealedEpoch(t, b, "notes", "secret"); e != 2 {
		t.Errorf("written under epoch %d, want 2", e)
	}
	m.Replication().Apply(allEnvelopes(t, a))
	if _, err := m.Get("notes", "secret"); err == nil {
		t.Error("m reads a write made after its removal")
	}
	// The epoch count stops at MaxEpoch instead of wrapping.
	err = a.Update(func(tx *Tx) error {
		g := &keyGrant{Epoch: MaxEpoch, KeyID: "0123456789abcdef", To: a.device.ID, By: a.device.ID, Wrapped: []byte("x")}
		return tx.putGrant(g)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Keys().RotateKey(nil); !errors.Is(err, ErrEpochRange) {
		t.Errorf("rotation past MaxEpoch: %v, want ErrEpochRange", err)
	}
}

// A data write under the mesh key in a remaining device's name, made after a removal (what
// the removed device can forge), is refused; the remaining device's own write gets through
// once re-sealed under the new key.
func TestForgedWriteUnderOldKeyRefused(t *testing.T) {
	clk := newFakeClock()
	ms := soloMesh(t, clk, "a", "b", "m")
	a, b, m := ms[0], ms[1], ms[2]
	clk.Add(time.Minute)
	if err := a.Authority().Remove(m.device.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Keys().RotateKey(map[resolve.DeviceID]string{b.device.ID: kx(t, b)}); err != nil {
		t.Fatal(err)
	}
	mustApply(t, b, allEnvelopes(t, a))
	clk.Add(time.Minute)
	forged := forge(t, m, nil, versionAt(b.device.ID, clk, 3), "notes", "forged", resolve.KindJSON, []byte(`"m in b's name"`))
	res, err := a.Replication().Apply([][]byte{forged})
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 0 || len(res.Rejected) != 1 || !errors.Is(res.Rejected[0].Err, ErrRevoked) {
		t.Errorf("forged write in b's name: added %d, %v", res.Added, res.Rejected)
	}
}

// FuzzAuthorityRecord feeds the decoders of authority record values (device records,
// removals) and the membership computation with arbitrary bytes: no panic, and whatever
// decodes can be judged.
func FuzzAuthorityRecord(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	dev, _ := json.Marshal(map[string]any{"id": "0011223344556677", "key": []byte(key.Public().(ed25519.PublicKey)),
		"admission": Admission{By: "0011223344556677", At: 5, Sig: make([]byte, 64)}})
	rem, _ := json.Marshal(removalRec{Device: "0011223344556677", By: "8899aabbccddeeff", Point: RemovalPoint{Counter: 3, Clock: 9}})
	f.Add(dev, rem)
	f.Add([]byte(`{"id":"x","key":"","admission":null}`), []byte(`{"device":"a","by":"a"}`))
	f.Fuzz(func(t *testing.T, d, r []byte) {
		in := authorityInput{self: "0011223344556677", anchors: map[resolve.DeviceID]ed25519.PublicKey{"0011223344556677": key.Public().(ed25519.PublicKey)}}
		if c, err := parseDeviceCert(d); err == nil {
			if len(c.Key) != ed25519.PublicKeySize || c.Admission == nil {
				t.Fatalf("accepted a device record without key or admission: %+v", c)
			}
			in.certs = append(in.certs, *c)
		}
		if rec, err := parseRemoval(r); err == nil {
			if rec.Device == rec.By {
				t.Fatal("accepted a device removing itself")
			}
			in.removals = append(in.removals, *rec)
		}
		computeAuthority(in)
	})
}
