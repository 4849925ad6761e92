package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
)

// Authority: who may change the mesh.
//
// The mesh key says "a member wrote this", never which member, and members leave. So every
// record of a reserved collection (the device list, removals, key grants, policies, consent
// grants and revocations, the audit log) carries its writer's Ed25519 signature (payload
// format 2), made with the device's signing key — the same key is the device's libp2p
// identity. Apply verifies it before anything else, against the membership as this store
// computes it, and refuses a forged, unsigned or ex-member signature with a named reason.
// Data records stay unsigned: within a mesh every device is the same person, and a
// signature per record would cost an initial sync more than the rest of it.
//
// Membership is computed, deterministically, from the records every device holds:
//
//   - Anchors are devices this store trusts without proof: the device itself when it
//     created the mesh, the members its inviter vouched for over the authenticated pairing
//     channel, or the members it knew when it was upgraded from a release without
//     signatures.
//   - A device record (DevicesCollection) carries an Admission: a member's signature over
//     the mesh, the device id, its signing key and a time. A device is admitted when its
//     admission was signed by an admitted device (or it is an anchor). A device record may
//     be written only by the device itself or by its admitter, and a device id never
//     changes key: a removed id can come back only by pairing under a new id.
//   - A removal is a record of its own in RemovalsCollection, keyed by the removed device
//     and the remover, written only by the remover. It never un-happens: nothing dominates
//     another writer's record, and removal records cannot be deleted. Every remaining
//     device that learns of a removal writes one too, saying how far it had seen the
//     removed device's writes; the removed device's writes are accepted up to the furthest
//     of these points (the cut). A remover cannot purge history another device holds, and
//     nothing a store holds is dropped because of a removal.
//   - A removal by a device that was itself removed counts when it was written no later
//     than DuelWindow after that device's own removal: two devices that remove each other
//     at about the same time are both removed (removal wins, as in a 2P-set), while a
//     removed device that goes on removing others is ignored. An admission signed by a
//     removed device counts under the same rule.
//
// Key epochs belong to members (rotate.go): a key grant is written and signed by its
// granter; new writes are sealed only under a key started by a device that remains, after
// the latest removal, and granted to no removed device (otherwise the node starts a new
// epoch); data envelopes under an epoch a removed device holds are accepted only up to the
// time of its removal (the epoch cut).

// DevicesCollection is the reserved collection of the device list: one record per device
// id, holding the device's signing key and admission (deviceCert) beside what the node
// keeps there (name, role, addresses, key-agreement key).
const DevicesCollection = "_devices"

// RemovalsCollection is the reserved collection of removals: one record per removed device
// and device that removed it or learned of its removal, keyed "removed/by".
const RemovalsCollection = "_removals"

// DuelWindow is how long after its own removal a removed device's removals and admissions
// still count (see the package's authority rules): about the clock skew the mesh allows, so
// that two devices removing each other concurrently are both removed.
const DuelWindow = 10 * 60 * 1000 // milliseconds

const (
	localSigningKey = "signing-key" // this device's Ed25519 seed
	localAnchors    = "anchors"     // device id -> public key trusted without proof
	sigContext      = "meshsync/v2/authority\x00"
	admitContext    = "meshsync/v2/admit\x00"
)

// Admission is a member's signed statement that a device, with this signing key, belongs
// to the mesh. It travels inside the device's record, in every version of it.
type Admission struct {
	// By is the admitting device (the device itself for an anchor's own record).
	By resolve.DeviceID `json:"by"`
	// At is the admitter's clock when it signed.
	At resolve.Timestamp `json:"at"`
	// Sig is By's signature over the mesh id, the admitted device id, its key and At.
	Sig []byte `json:"sig"`
}

func admissionMessage(mesh [16]byte, dev resolve.DeviceID, key ed25519.PublicKey, by resolve.DeviceID, at resolve.Timestamp) []byte {
	b := append([]byte(admitContext), mesh[:]...)
	b = appendString(b, string(dev))
	b = appendBytes(b, key)
	b = appendString(b, string(by))
	return binary.BigEndian.AppendUint64(b, uint64(at))
}

// deviceCert is what the store reads of a device record.
type deviceCert struct {
	ID        resolve.DeviceID `json:"id"`
	Key       []byte           `json:"key"`
	Admission *Admission       `json:"admission"`
}

func parseDeviceCert(b []byte) (*deviceCert, error) {
	var c deviceCert
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: device record: %v", ErrMalformed, err)
	}
	if c.ID == "" || len(c.ID) > MaxDeviceIDSize || len(c.Key) != ed25519.PublicKeySize || c.Admission == nil ||
		c.Admission.By == "" || len(c.Admission.By) > MaxDeviceIDSize || len(c.Admission.Sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: device record without id, key or admission", ErrUnsigned)
	}
	return &c, nil
}

// removalRec is the value of a record in RemovalsCollection.
type removalRec struct {
	Device resolve.DeviceID `json:"device"`
	By     resolve.DeviceID `json:"by"`
	// Point is the latest of Device's writes that By held when it wrote the record.
	Point RemovalPoint `json:"point"`

	at resolve.Timestamp // the record version's clock: when By wrote it
}

func removalKey(dev, by resolve.DeviceID) string { return string(dev) + "/" + string(by) }

func parseRemoval(b []byte) (*removalRec, error) {
	var r removalRec
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: removal record: %v", ErrMalformed, err)
	}
	if r.Device == "" || r.By == "" || r.Device == r.By || len(r.Device) > MaxDeviceIDSize || len(r.By) > MaxDeviceIDSize ||
		r.Point.Counter > MaxCounter {
		return nil, fmt.Errorf("%w: removal record without devices, or a device removing itself", ErrMalformed)
	}
	return &r, nil
}

// signMessage is what a record's signature covers: the mesh, the record id, its version
// and its content (not the key epoch or nonce, so that a re-sealed envelope keeps it).
func signMessage(mesh [16]byte, id merkle.ID, v resolve.Version, p *payload) ([]byte, error) {
	fields, err := p.Value.Fields.MarshalBinary()
	if err != nil {
		return nil, err
	}
	e := Envelope{ID: id, Version: v}
	b := append([]byte(sigContext), mesh[:]...)
	b = e.appendHeader(b)
	b = append(b, byte(p.Value.Kind))
	b = appendString(b, p.Collection)
	b = appendString(b, p.Key)
	b = appendBytes(b, p.Value.Data)
	return appendBytes(b, fields), nil
}

// sign sets p.Sig: the signature of this device over the record.
func (s *Store) sign(id merkle.ID, v resolve.Version, p *payload) error {
	if s.signer == nil {
		return fmt.Errorf("sign %s/%s: %w", p.Collection, p.Key, ErrNoSigningKey)
	}
	msg, err := signMessage(s.keys.meshID, id, v, p)
	if err != nil {
		return err
	}
	p.Sig = ed25519.Sign(s.signer, msg)
	return nil
}

// reservedCollection reports whether records of c carry authority (and so a signature).
func reservedCollection(c string) bool { return strings.HasPrefix(c, "_") }

// membershipCollection reports whether records of c decide who is a member.
func membershipCollection(c string) bool { return c == DevicesCollection || c == RemovalsCollection }

// checkAuthority verifies a reserved record arriving from elsewhere: a valid signature by
// its writer, a writer that is a member and may write this record. ErrUnknownSigner is
// the one refusal that may pass later (the writer's own record has not arrived yet).
func (t *Tx) checkAuthority(a *authority, e *Envelope, p *payload) error {
	w := e.Version.Device
	fail := func(err error, format string, args ...any) error {
		return fmt.Errorf("%s/%s by %s: %w: %s", p.Collection, p.Key, w, err, fmt.Sprintf(format, args...))
	}
	if len(p.Sig) == 0 {
		return fail(ErrUnsigned, "a record of a reserved collection carries no signature")
	}
	key := ed25519.PublicKey(nil)
	if m, ok := a.member(w); ok {
		key = m.Key
	} else if w == t.s.device.ID && t.s.signer != nil {
		key = t.s.signer.Public().(ed25519.PublicKey) // its own record, before its admission arrived
	}
	switch p.Collection {
	case DevicesCollection:
		if p.Value.Kind == resolve.KindDeleted {
			return fail(ErrNotAllowed, "device records are never deleted")
		}
		c, err := parseDeviceCert(p.Value.Data)
		if err != nil {
			return fail(err, "device record")
		}
		if string(c.ID) != p.Key {
			return fail(ErrNotAllowed, "device record names another device")
		}
		if m, ok := a.member(c.ID); ok && !bytes.Equal(m.Key, c.Key) {
			return fail(ErrNotAllowed, "device %s already has another key (re-pair under a new id)", c.ID)
		}
		by, ok := a.member(c.Admission.By)
		if c.Admission.By == c.ID {
			if m, anchored := a.member(c.ID); anchored && m.By == "" {
				by, ok = m, true // an anchor's own record
			} else {
				ok = false
			}
		}
		if !ok {
			return fail(ErrUnknownSigner, "admitted by %s, not a member this device knows", c.Admission.By)
		}
		if !ed25519.Verify(by.Key, admissionMessage(t.s.keys.meshID, c.ID, c.Key, c.Admission.By, c.Admission.At), c.Admission.Sig) {
			return fail(ErrBadSignature, "admission of %s", c.ID)
		}
		switch w {
		case c.ID:
			key = c.Key
		case c.Admission.By:
		default:
			return fail(ErrNotAllowed, "only the device or the device that admitted it may write its record")
		}
	case RemovalsCollection:
		if p.Value.Kind == resolve.KindDeleted {
			return fail(ErrNotAllowed, "a removal never un-happens")
		}
		r, err := parseRemoval(p.Value.Data)
		if err != nil {
			return fail(err, "removal record")
		}
		if r.By != w || removalKey(r.Device, r.By) != p.Key {
			return fail(ErrNotAllowed, "only %s may write its removal record", r.By)
		}
	case KeysCollection:
		if p.Value.Kind != resolve.KindDeleted {
			g, err := parseGrant(p.Value.Data)
			if err != nil {
				return fail(err, "key grant")
			}
			if g.By != w || g.recordKey() != p.Key {
				return fail(ErrNotAllowed, "a key grant is written by its granter")
			}
			if err := t.checkEpoch(g.Epoch); err != nil {
				return fail(err, "key grant")
			}
		}
	}
	if key == nil {
		return fail(ErrUnknownSigner, "not a member this device knows")
	}
	msg, err := signMessage(t.s.keys.meshID, e.ID, e.Version, p)
	if err != nil {
		return fail(ErrMalformed, "%v", err)
	}
	if !ed25519.Verify(key, msg, p.Sig) {
		return fail(ErrBadSignature, "not by %s's key", w)
	}
	return nil
}

// authCache is a membership computed from the committed records of one authority
// generation (metaAuthGen, bumped in every transaction that changes a record the
// membership reads), so that a cached value always matches the snapshot that reads it.
type authCache struct {
	gen uint64
	a   *authority
}

// metaAuthGen counts the transactions that changed a record the membership reads.
var metaAuthGen = []byte("authgen")

func (t *Tx) authGen() uint64 {
	if v := t.tx.Bucket(bucketMeta).Get(metaAuthGen); len(v) == 8 {
		return be64(v)
	}
	return 0
}

func (t *Tx) bumpAuthGen() error {
	return t.tx.Bucket(bucketMeta).Put(metaAuthGen, u64be(t.authGen()+1))
}

// authority returns the membership as of this transaction.
func (t *Tx) authority() (*authority, error) {
	if t.auth != nil {
		return t.auth, nil
	}
	gen := t.authGen()
	if !t.authDirty {
		if c := t.s.auth.Load(); c != nil && c.gen == gen {
			t.auth = c.a
			return c.a, nil
		}
	}
	a, err := t.computeAuthority()
	if err != nil {
		return nil, err
	}
	t.auth = a
	if !t.authDirty {
		t.s.auth.Store(&authCache{gen: gen, a: a})
	}
	return a, nil
}

// touchAuthority notes that this transaction changed a record the membership reads.
func (t *Tx) touchAuthority(collection string) {
	if membershipCollection(collection) || collection == KeysCollection {
		t.authDirty = true
		t.auth = nil
	}
}

func (t *Tx) computeAuthority() (*authority, error) {
	in := authorityInput{mesh: t.s.keys.meshID, self: t.s.device.ID}
	var err error
	if in.anchors, err = t.s.anchors(t.tx); err != nil {
		return nil, err
	}
	err = t.versions(DevicesCollection, func(v resolve.Version, p *payload) {
		if c, err := parseDeviceCert(p.Value.Data); err == nil && string(c.ID) == p.Key && len(p.Sig) > 0 {
			in.certs = append(in.certs, *c)
		}
	})
	if err != nil {
		return nil, err
	}
	err = t.versions(RemovalsCollection, func(v resolve.Version, p *payload) {
		if r, err := parseRemoval(p.Value.Data); err == nil && r.By == v.Device && len(p.Sig) > 0 {
			r.at = v.Clock
			in.removals = append(in.removals, *r)
		}
	})
	if err != nil {
		return nil, err
	}
	err = t.versions(KeysCollection, func(v resolve.Version, p *payload) {
		if g, err := parseGrant(p.Value.Data); err == nil && g.By == v.Device && g.recordKey() == p.Key {
			in.grants = append(in.grants, grantVersion{keyGrant: *g, at: v.Clock})
		}
	})
	if err != nil {
		return nil, err
	}
	return computeAuthority(in), nil
}

// versions calls fn with every version (every envelope of every antichain) of the records
// of a reserved collection that this store can open.
func (t *Tx) versions(collection string, fn func(resolve.Version, *payload)) error {
	if t.s.keys.blind {
		return nil
	}
	return t.eachID(collection, func(id merkle.ID) error {
		set, err := t.antichain(id)
		if err != nil {
			return err
		}
		for _, h := range set {
			p, err := t.s.keys.open(h.env)
			if err != nil || p.Collection != collection || p.Value.Kind == resolve.KindDeleted {
				continue
			}
			fn(h.env.Version, p)
		}
		return nil
	})
}

// Admit signs the admission of a device (its id and signing key) into the mesh, for its
// inviter to put in the device's record.
func (h Authority) Admit(dev resolve.DeviceID, key ed25519.PublicKey) (Admission, error) {
	s := h.s
	if s.signer == nil {
		return Admission{}, fmt.Errorf("admit %s: %w", dev, ErrNoSigningKey)
	}
	if len(key) != ed25519.PublicKeySize || dev == "" || len(dev) > MaxDeviceIDSize {
		return Admission{}, fmt.Errorf("admit %s: %w: device id or key", dev, ErrInvalid)
	}
	s.mu.Lock()
	at := s.clock.Now(s.opts.Now())
	s.mu.Unlock()
	by := s.device.ID
	return Admission{By: by, At: at, Sig: ed25519.Sign(s.signer, admissionMessage(s.keys.meshID, dev, key, by, at))}, nil
}

// Members lists every device the signed records admit, removed ones included, sorted by
// id. A blind replica, which cannot read the records, has none.
func (h Authority) Members() ([]Member, error) {
	s := h.s
	var out []Member
	err := s.View(func(t *Tx) error {
		a, err := t.authority()
		if err != nil {
			return err
		}
		for _, id := range slices.Sorted(maps.Keys(a.members)) {
			m := *a.members[id]
			m.RemovedBy = slices.Clone(m.RemovedBy)
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	return out, nil
}

// Remove records that this device removes dev from the mesh: a signed removal record with
// the furthest of dev's writes this store holds. From then on every store that learns of
// it refuses dev's later writes, and the node starts a new key epoch. It is idempotent.
func (h Authority) Remove(dev resolve.DeviceID) error {
	s := h.s
	if err := s.needKey("remove device"); err != nil {
		return err
	}
	if dev == s.device.ID {
		return fmt.Errorf("remove device %s: %w: a device cannot remove itself", dev, ErrNotAllowed)
	}
	err := s.Update(func(t *Tx) error { return t.writeRemoval(dev) })
	if err != nil {
		return fmt.Errorf("remove device %s: %w", dev, err)
	}
	return nil
}

// writeRemoval writes this device's removal record of dev, unless it has one.
func (t *Tx) writeRemoval(dev resolve.DeviceID) error {
	key := removalKey(dev, t.s.device.ID)
	if _, err := t.Get(RemovalsCollection, key); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	rp, err := t.removalPoint(dev)
	if err != nil {
		return err
	}
	b, err := json.Marshal(removalRec{Device: dev, By: t.s.device.ID, Point: rp})
	if err != nil {
		return err
	}
	return t.PutReserved(RemovalsCollection, key, b)
}

// writeViews writes this device's view of every removal it has not written one for
// (Apply calls it after a batch that brought removals).
func (s *Store) writeViews() error {
	if s.keys.blind || s.signer == nil {
		return nil
	}
	var due bool
	if err := s.View(func(t *Tx) error {
		a, err := t.authority()
		due = err == nil && len(a.viewsDue) > 0
		return err
	}); err != nil || !due {
		return err
	}
	return s.Update(func(t *Tx) error { return t.writeViews() })
}

// writeViews writes this device's view of every removal it has not written one for, so
// that no write of the removed device that this store holds is refused elsewhere.
func (t *Tx) writeViews() error {
	a, err := t.authority()
	if err != nil || len(a.viewsDue) == 0 || t.s.signer == nil {
		return err
	}
	for _, dev := range a.viewsDue {
		if err := t.writeRemoval(dev); err != nil {
			return err
		}
	}
	return nil
}

// checkEpoch refuses a key epoch beyond MaxEpoch or far above every epoch the store knows.
func (t *Tx) checkEpoch(epoch uint32) error {
	if epoch > MaxEpoch {
		return fmt.Errorf("%w: key epoch %d exceeds %d", ErrEpochRange, epoch, MaxEpoch)
	}
	known := t.maxEpoch()
	if epoch > known+MaxEpochStep {
		return fmt.Errorf("%w: key epoch %d jumps more than %d above %d", ErrEpochRange, epoch, MaxEpochStep, known)
	}
	return nil
}

// MaxEpoch is the highest key epoch; MaxEpochStep the most an epoch may jump above every
// epoch a store knows. Epochs count removals, so neither is ever reached honestly.
const (
	MaxEpoch     = 1 << 31
	MaxEpochStep = 16
)

// maxEpoch is the highest epoch of a key grant or key this store holds.
func (t *Tx) maxEpoch() uint32 {
	var m uint32
	if es := t.s.keys.epochs.Load(); es != nil {
		for e := range es.byEpoch {
			m = max(m, e)
		}
	}
	_ = t.versions(KeysCollection, func(_ resolve.Version, p *payload) {
		if g, err := parseGrant(p.Value.Data); err == nil && g.Epoch <= MaxEpoch {
			m = max(m, g.Epoch)
		}
	})
	return m
}
