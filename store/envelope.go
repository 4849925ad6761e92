package store

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"slices"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
	"golang.org/x/crypto/chacha20poly1305"
)

// Hard limits of the envelope format, checked before anything is allocated.
const (
	// envelopeFormat is the format of an envelope without a collection tag, as every
	// envelope was before tags (layout.go); it is also the first byte of the associated
	// data of every envelope, tagged or not, so that tagging an envelope keeps its
	// ciphertext. envelopeFormatTagged adds the tag after the id.
	envelopeFormat       = 1
	envelopeFormatTagged = 2
	// MaxValueSize is the largest value a record may hold.
	MaxValueSize = 1 << 20
	// MaxNameSize is the longest collection name or key, in bytes.
	MaxNameSize = 1024
	// MaxDeviceIDSize is the longest device id in a version.
	MaxDeviceIDSize = 64
	// MaxVectorEntries is the most devices one version vector may name.
	MaxVectorEntries = 1024
	// MaxEnvelopeSize bounds one encoded envelope.
	MaxEnvelopeSize = MaxValueSize + 256<<10
	maxPayloadSize  = MaxEnvelopeSize - 1024
	maxFieldsSize   = 128 << 10
)

// Envelope is a record as it is stored and shipped: a keyed-hash id, the version in clear,
// and the payload sealed with XChaCha20-Poly1305 under the data key of KeyEpoch. The id,
// epoch and version are the payload's associated data, so a ciphertext moved to another id
// or version fails to open.
//
// Tag names the record's collection in the clear (a keyed hash, Keyring.tag), so that a
// peer or a blind replica can group records by collection without learning its name. It
// is not part of the associated data: a device checks it against the collection inside
// when it opens the envelope. The zero Tag is an envelope written before tags, which only
// a blind replica still holds.
type Envelope struct {
	ID         merkle.ID
	Tag        Tag
	KeyEpoch   uint32
	Version    resolve.Version
	Nonce      [chacha20poly1305.NonceSizeX]byte
	Ciphertext []byte

	// clear is the clear header as received (format, id, tag, epoch, version), when the
	// envelope was decoded from bytes it aliases (unmarshalEnvelope with alias): the
	// associated data is cut from it instead of encoded again (aad).
	clear []byte
}

// aad returns the associated data of e: the header of format 1 (appendHeader). Decoding
// is canonical, so for a decoded envelope it is the received header, retagged.
func (e *Envelope) aad() []byte {
	switch {
	case e.clear == nil:
		return e.appendHeader(nil)
	case e.clear[0] == envelopeFormat:
		return e.clear
	}
	const at = 1 + len(e.ID) // the tag's place in the tagged format
	ad := make([]byte, 0, len(e.clear)-len(e.Tag))
	ad = append(ad, envelopeFormat)
	ad = append(ad, e.clear[1:at]...)
	return append(ad, e.clear[at+len(e.Tag):]...)
}

// appendHeader encodes everything that is authenticated but not encrypted: the header of
// format 1, which is the associated data of every envelope.
func (e *Envelope) appendHeader(b []byte) []byte {
	return e.appendHeaderAs(b, false)
}

func (e *Envelope) appendHeaderAs(b []byte, tagged bool) []byte {
	if tagged {
		b = append(b, envelopeFormatTagged)
		b = append(b, e.ID[:]...)
		b = append(b, e.Tag[:]...)
	} else {
		b = append(b, envelopeFormat)
		b = append(b, e.ID[:]...)
	}
	b = binary.AppendUvarint(b, uint64(e.KeyEpoch))
	b = appendString(b, string(e.Version.Device))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Version.Clock))
	devs := sortedDevices(e.Version.VV)
	b = binary.AppendUvarint(b, uint64(len(devs)))
	for _, d := range devs {
		b = appendString(b, string(d))
		b = binary.AppendUvarint(b, e.Version.VV[d])
	}
	return b
}

// MarshalBinary encodes the envelope in its canonical form.
func (e *Envelope) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 104+len(e.Ciphertext)+24*len(e.Version.VV))
	b = e.appendHeaderAs(b, e.Tag != Tag{})
	b = append(b, e.Nonce[:]...)
	b = binary.AppendUvarint(b, uint64(len(e.Ciphertext)))
	b = append(b, e.Ciphertext...)
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("encode envelope: %w", ErrTooLarge)
	}
	return b, nil
}

// UnmarshalEnvelope decodes an envelope. Only the canonical encoding is accepted (sorted,
// unique version-vector entries without zero counters; no trailing bytes), so decoding and
// encoding again gives the same bytes.
func UnmarshalEnvelope(b []byte) (*Envelope, error) { return unmarshalEnvelope(b, false) }

// unmarshalEnvelope is UnmarshalEnvelope; with alias the ciphertext is a slice of b (not a
// copy), for a caller that keeps b unchanged as long as the envelope.
func unmarshalEnvelope(b []byte, alias bool) (*Envelope, error) {
	e := &Envelope{}
	if err := unmarshalEnvelopeInto(e, b, alias, nil); err != nil {
		return nil, err
	}
	return e, nil
}

// deviceNames interns the device ids of the envelopes one goroutine decodes: a batch
// names the same few devices over and over, and each name would otherwise be a new
// string (at least two per envelope). A nil *deviceNames interns nothing.
type deviceNames []string

// maxDeviceNames bounds the names kept: a batch naming more devices costs a string each,
// as without interning.
const maxDeviceNames = 16

func (d *deviceNames) str(b []byte) string {
	if d == nil {
		return string(b)
	}
	for _, s := range *d {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	if len(*d) < maxDeviceNames {
		*d = append(*d, s)
	}
	return s
}

// unmarshalEnvelopeInto is unmarshalEnvelope into a zero Envelope the caller holds, with
// the device ids interned in names (nil: none).
func unmarshalEnvelopeInto(e *Envelope, b []byte, alias bool, names *deviceNames) error {
	if len(b) > MaxEnvelopeSize {
		return fmt.Errorf("decode envelope: %w: %d bytes", ErrTooLarge, len(b))
	}
	r := reader{b: b}
	f := r.byte()
	if f != envelopeFormat && f != envelopeFormatTagged {
		if r.err != nil {
			return fmt.Errorf("decode envelope: %w", r.err)
		}
		return fmt.Errorf("decode envelope: %w: unknown format %d", ErrMalformed, f)
	}
	copy(e.ID[:], r.bytes(32))
	if f == envelopeFormatTagged {
		copy(e.Tag[:], r.bytes(len(e.Tag)))
		if e.Tag == (Tag{}) && r.err == nil {
			r.fail("zero collection tag")
		}
	}
	ep := r.uvarint()
	if ep > 1<<32-1 {
		r.fail("key epoch out of range")
	}
	e.KeyEpoch = uint32(ep)
	e.Version.Device = resolve.DeviceID(names.str(r.blob(MaxDeviceIDSize)))
	if e.Version.Device == "" {
		r.fail("empty device id")
	}
	e.Version.Clock = resolve.Timestamp(r.uint64())
	n := r.uvarint()
	if n > MaxVectorEntries {
		r.fail("version vector too long")
	}
	if r.err == nil {
		e.Version.VV = make(resolve.VersionVector, n)
		prev := ""
		for i := uint64(0); i < n && r.err == nil; i++ {
			d := names.str(r.blob(MaxDeviceIDSize))
			c := r.uvarint()
			if d == "" || c == 0 || (i > 0 && d <= prev) {
				r.fail("version vector not canonical")
			}
			prev = d
			e.Version.VV[resolve.DeviceID(d)] = c
		}
		if e.Version.VV[e.Version.Device] == 0 && r.err == nil {
			r.fail("version vector does not count its own device")
		}
	}
	if alias && r.err == nil {
		e.clear = b[: len(b)-len(r.b) : len(b)-len(r.b)]
	}
	copy(e.Nonce[:], r.bytes(len(e.Nonce)))
	cl := r.uvarint()
	if cl > maxPayloadSize+chacha20poly1305.Overhead {
		r.fail("payload too large")
	}
	if cl < chacha20poly1305.Overhead {
		r.fail("payload shorter than its tag")
	}
	if e.Ciphertext = r.bytes(int(cl)); !alias {
		e.Ciphertext = slices.Clone(e.Ciphertext)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return fmt.Errorf("decode envelope: %w", r.err)
	}
	return nil
}

// Hash is the SHA-256 of the envelope's canonical encoding.
func (e *Envelope) Hash() [32]byte {
	b, _ := e.MarshalBinary()
	return sha256.Sum256(b)
}

// EnvelopeID returns the id of an encoded envelope without decoding the rest: a receiver
// checks that an envelope was asked for before it holds on to it.
func EnvelopeID(raw []byte) (merkle.ID, error) {
	var id merkle.ID
	if len(raw) < 1+len(id) || (raw[0] != envelopeFormat && raw[0] != envelopeFormatTagged) {
		return id, fmt.Errorf("envelope id: %w", ErrMalformed)
	}
	copy(id[:], raw[1:])
	return id, nil
}

// EnvelopeTag returns the collection tag of an encoded envelope without decoding the rest
// (the zero Tag for an envelope written before tags).
func EnvelopeTag(raw []byte) (Tag, error) {
	var t Tag
	id, err := EnvelopeID(raw)
	if err != nil {
		return t, err
	}
	if raw[0] == envelopeFormatTagged {
		if len(raw) < 1+len(id)+len(t) {
			return t, fmt.Errorf("envelope tag: %w", ErrMalformed)
		}
		copy(t[:], raw[1+len(id):])
	}
	return t, nil
}

// Kind says what a payload holds.
type Kind = resolve.Kind

// payload is the plaintext sealed inside an envelope.
type payload struct {
	Collection string
	Key        string
	Value      resolve.Value
	// Sig is the writer's Ed25519 signature over the record (authority.go): set on every
	// record of a reserved collection, empty on data records.
	Sig []byte

	keyID string // the id of the epoch key that opened it ("" for epoch 0); not encoded
}

// Payload formats: 1 holds no signature (data records, and every record written before
// signatures existed); 2 adds the writer's signature before the padding. A data record is
// still written as format 1, so its bytes are what older versions read.
const (
	payloadFormat       = 1
	payloadFormatSigned = 2
)

func (p *payload) marshal() ([]byte, error) {
	fields, err := p.Value.Fields.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode field clocks: %w", err)
	}
	b := make([]byte, 0, 32+len(p.Collection)+len(p.Key)+len(p.Value.Data)+len(fields))
	format := byte(payloadFormat)
	if len(p.Sig) > 0 {
		format = payloadFormatSigned
	}
	b = append(b, format, byte(p.Value.Kind))
	b = appendString(b, p.Collection)
	b = appendString(b, p.Key)
	b = appendBytes(b, p.Value.Data)
	b = appendBytes(b, fields)
	if format == payloadFormatSigned {
		b = appendBytes(b, p.Sig)
	}
	// Pad to a Padmé bucket so that sizes leak little (at most 12 % overhead): a uvarint
	// count followed by that many zero bytes.
	b = appendPadding(b)
	if len(b) > maxPayloadSize {
		return nil, fmt.Errorf("encode payload: %w", ErrTooLarge)
	}
	return b, nil
}

// unmarshalPayload decodes a payload; its Data aliases b, which the caller must not
// change afterwards.
func unmarshalPayload(b []byte) (*payload, error) {
	r := reader{b: b}
	f := r.byte()
	if f != payloadFormat && f != payloadFormatSigned && r.err == nil {
		return nil, fmt.Errorf("%w: unknown payload format %d (written by a newer meshsync: upgrade this one)", ErrMalformed, f)
	}
	p := &payload{}
	p.Value.Kind = resolve.Kind(r.byte())
	p.Collection = r.str(MaxNameSize)
	p.Key = r.str(MaxNameSize)
	data := r.blob(MaxValueSize)
	fields := r.blob(maxFieldsSize)
	if f == payloadFormatSigned {
		sig := r.blob(ed25519.SignatureSize)
		if len(sig) != ed25519.SignatureSize {
			r.fail("signature of the wrong size")
		}
		p.Sig = slices.Clone(sig)
	}
	pad := r.uvarint()
	if pad != uint64(len(r.b)) {
		r.fail("bad padding")
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode payload: %w", r.err)
	}
	if len(data) > 0 {
		p.Value.Data = data // b is the caller's (open's fresh plaintext): no copy
	}
	if len(fields) > 0 {
		if err := p.Value.Fields.UnmarshalBinary(fields); err != nil {
			return nil, fmt.Errorf("decode payload fields: %w: %v", ErrMalformed, err)
		}
	}
	return p, nil
}

// padme rounds n up so that only O(log log n) bits of the length show (Padmé, PURBs paper).
func padme(n int) int {
	if n < 2 {
		return n
	}
	e := 0
	for v := n; v > 1; v >>= 1 {
		e++
	}
	s := 0
	for v := e; v > 0; v >>= 1 {
		s++
	}
	last := e - s
	mask := (1 << last) - 1
	return (n + mask) &^ mask
}

// aeadOf returns the XChaCha20-Poly1305 instance of a data key, made once per key (an
// instance holds only its key: it is safe for concurrent use).
func (k *keyring) aeadOf(key []byte) (cipher.AEAD, error) {
	if a, ok := k.aeads.Load(string(key)); ok {
		return a.(cipher.AEAD), nil
	}
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	k.aeads.Store(string(key), a)
	return a, nil
}

// seal encrypts p into a new envelope with a random 192-bit nonce.
func (k *keyring) seal(id merkle.ID, v resolve.Version, p *payload) (*Envelope, error) {
	plain, err := p.marshal()
	if err != nil {
		return nil, err
	}
	// New writes go under the newest key epoch held; the key records themselves stay
	// under epoch 0, so that a device that holds only the mesh key can always read them
	// (rotate.go).
	epoch, key := k.sealKey()
	if underMeshKey(p) {
		epoch, key = 0, k.data[0]
	}
	return k.sealWith(id, k.tag(p.Collection), v, plain, epoch, key)
}

// sealWith seals an encoded payload under the given epoch and key with a fresh nonce.
func (k *keyring) sealWith(id merkle.ID, tag Tag, v resolve.Version, plain []byte, epoch uint32, key []byte) (*Envelope, error) {
	e := &Envelope{ID: id, Tag: tag, KeyEpoch: epoch, Version: v}
	if _, err := rand.Read(e.Nonce[:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	aead, err := k.aeadOf(key)
	if err != nil {
		return nil, err
	}
	e.Ciphertext = aead.Seal(nil, e.Nonce[:], plain, e.appendHeader(nil))
	return e, nil
}

// open authenticates and decrypts an envelope, and checks that its id matches the
// collection and key inside.
func (k *keyring) open(e *Envelope) (*payload, error) {
	p, _, err := k.openTo(e, nil)
	return p, err
}

// openTo is open with the plaintext appended to dst (in place when it has the room): the
// payload's value aliases it.
func (k *keyring) openTo(e *Envelope, dst []byte) (*payload, []byte, error) {
	keys := k.keysOf(e.KeyEpoch)
	if len(keys) == 0 {
		return nil, nil, fmt.Errorf("open envelope %x: %w %d", e.ID[:6], ErrUnknownKeyEpoch, e.KeyEpoch)
	}
	// Two devices that removed devices at the same time each started the same epoch
	// number with a key of their own: try each key of the epoch.
	var plain []byte
	opened := false
	ad := e.aad()
	keyID := ""
	for _, key := range keys {
		aead, err := k.aeadOf(key)
		if err != nil {
			return nil, nil, err
		}
		if plain, err = aead.Open(dst[:0], e.Nonce[:], e.Ciphertext, ad); err == nil {
			opened = true
			if e.KeyEpoch != 0 {
				keyID = epochKey{Key: key}.id()
			}
			break
		}
	}
	if !opened {
		if e.KeyEpoch != 0 {
			// Or sealed under another key of the epoch, one this device does not hold (yet).
			return nil, nil, fmt.Errorf("open envelope %x: %w, or %w %d by a key this device does not hold", e.ID[:6], ErrTampered, ErrUnknownKeyEpoch, e.KeyEpoch)
		}
		return nil, nil, fmt.Errorf("open envelope %x: %w", e.ID[:6], ErrTampered)
	}
	p, err := unmarshalPayload(plain)
	if err != nil {
		return nil, nil, fmt.Errorf("open envelope %x: %w", e.ID[:6], err)
	}
	if k.recordID(p.Collection, p.Key) != e.ID {
		return nil, nil, fmt.Errorf("open envelope %x: %w: id does not match its record", e.ID[:6], ErrTampered)
	}
	if e.Tag != (Tag{}) && e.Tag != k.tag(p.Collection) {
		return nil, nil, fmt.Errorf("open envelope %x: %w: collection tag does not match its record", e.ID[:6], ErrTampered)
	}
	p.keyID = keyID
	return p, plain, nil
}

// recordID is the keyed hash that names a record everywhere outside a device.
func (k *keyring) recordID(collection, key string) merkle.ID {
	m, _ := k.idMACs.Get().(*idMAC) // a MAC under k.id costs two hash blocks to set up
	if m == nil {
		m = &idMAC{h: hmac.New(sha256.New, k.id)}
	} else {
		m.h.Reset()
	}
	// One write of the whole message from a buffer kept with the MAC: writing the strings
	// one by one cost an allocation each (hash.Hash takes no string).
	b := binary.AppendUvarint(m.buf[:0], uint64(len(collection)))
	b = append(append(b, collection...), key...)
	m.h.Write(b)
	if cap(b) <= maxIDMACBuf {
		m.buf = b[:0]
	}
	var id merkle.ID
	m.h.Sum(id[:0])
	k.idMACs.Put(m)
	return id
}

// idMAC is an HMAC state under the id key with a buffer for its message (recordID).
type idMAC struct {
	h   hash.Hash
	buf []byte
}

// maxIDMACBuf bounds the message buffer an idMAC keeps for the next record.
const maxIDMACBuf = 4 << 10

// Tag names a collection outside a device without revealing its name: the first 8 bytes
// of a keyed hash of the name under the id key (which never rotates, so a tag is stable
// across key epochs). Its top bit says whether the collection is reserved (every device
// holds those, whatever its scope); the zero Tag is never a collection's.
type Tag [8]byte

// Reserved reports whether the tag names a reserved collection.
func (t Tag) Reserved() bool { return t[0]&0x80 != 0 }

// String returns the tag in hex.
func (t Tag) String() string { return fmt.Sprintf("%x", t[:]) }

// maxTagCache bounds the collection tags a keyring remembers.
const maxTagCache = 4096

// tag is the collection's Tag.
func (k *keyring) tag(collection string) Tag {
	if t, ok := k.tags.Load(collection); ok {
		return t.(Tag)
	}
	t := k.newTag(collection)
	if k.tagged.Add(1) <= maxTagCache { // the id key never rotates: a tag never changes
		k.tags.Store(collection, t)
	}
	return t
}

func (k *keyring) newTag(collection string) Tag {
	m := hmac.New(sha256.New, k.id)
	m.Write([]byte("meshsync collection tag\x00"))
	m.Write([]byte(collection))
	var t Tag
	copy(t[:], m.Sum(nil))
	t[0] &^= 0x80
	if reservedCollection(collection) {
		t[0] |= 0x80
	}
	if t == (Tag{}) {
		t[7] = 1
	}
	return t
}

func sortedDevices(vv resolve.VersionVector) []resolve.DeviceID {
	ds := make([]resolve.DeviceID, 0, len(vv))
	for d, c := range vv {
		if c != 0 {
			ds = append(ds, d)
		}
	}
	slices.Sort(ds)
	return ds
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// reader decodes length-prefixed fields with hard limits; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, msg)
	}
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail("truncated")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) uint64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	if n != uvarintLen(v) {
		r.fail("varint not minimal")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) blob(max int) []byte {
	n := r.uvarint()
	if n > uint64(max) {
		if r.err == nil {
			r.err = fmt.Errorf("%w: field of %d bytes exceeds %d", ErrTooLarge, n, max)
		}
		return nil
	}
	return r.bytes(int(n))
}

func (r *reader) str(max int) string { return string(r.blob(max)) }

// appendPadding appends a uvarint n and n zero bytes so that the total length lands on a
// Padmé size.
func appendPadding(b []byte) []byte {
	base := len(b)
	for target := padme(base + 1); ; target = padme(target + 1) {
		rem := target - base
		for l := 1; l <= 3; l++ {
			n := rem - l
			if n >= 0 && uvarintLen(uint64(n)) == l {
				b = binary.AppendUvarint(b, uint64(n))
				return append(b, make([]byte, n)...)
			}
		}
	}
}
