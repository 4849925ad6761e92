package wire

import (
	"encoding/binary"
	"fmt"
)

// Version is the sync protocol version carried in Hello. Version 2 added the tombstone
// horizon and the last contact; version 3 (same layout) means that records of reserved
// collections are signed, so that a peer of version 2, whose unsigned records would be
// refused one by one, is told to upgrade instead. An older hello still decodes, so that a
// node can name the version an old peer speaks. Version 4 adds the sender's scope and the
// root of each collection tree it holds (after the fixed part): envelopes carry
// collection tags, and two devices reconcile over the collections both hold. Version 5
// adds the resume cursor of an initial sync in record-id order (ResumeSnap, ResumeAfter,
// in the fixed part) and means that the side can send and receive that order: two
// version-5 sides send a receiver that holds nothing of the sender in id order. A
// version-5 node still speaks version 4 (the sequence order) with a version-4 peer.
const Version = 5

// MinVersion is the oldest version this side still speaks with a peer.
const MinVersion = 4

// Bounds of a version-4 hello's lists.
const (
	// MaxScopeTags bounds the collections a scope names.
	MaxScopeTags = 4096
	// MaxRoots bounds the collection trees a hello reports.
	MaxRoots = 4096
)

// TagRoot is the root of one collection's tree: the collection tag, count and
// fingerprint.
type TagRoot struct {
	Tag   [8]byte
	Count uint64
	FP    [32]byte
}

// MaxEnvelope bounds one envelope inside a Batch (the store's own cap is lower).
const MaxEnvelope = 2 << 20

// Hello opens a sync session, sent by both sides.
type Hello struct {
	// Version is the protocol version (Version).
	Version byte
	// Proof is the mesh proof: HMAC-SHA256 under the mesh's pairing subkey over the role,
	// the sender's and the receiver's peer ids.
	Proof [32]byte
	// Epoch is the sender's store epoch.
	Epoch [16]byte
	// KnownEpoch is the receiver's store epoch as the sender remembers it (zero: none).
	KnownEpoch [16]byte
	// KnownSeq is the last sequence of the receiver's store (of KnownEpoch) that the
	// sender has applied with nothing missing below it.
	KnownSeq uint64
	// LastSeq is the sender's own last sequence number.
	LastSeq uint64
	// RootCount and RootFP are the sender's Merkle root.
	RootCount uint64
	RootFP    [32]byte
	// Horizon is the sender's tombstone horizon in Unix milliseconds (0: never
	// collected): it may have dropped any tombstone older. Version 2 on.
	Horizon int64
	// LastContact is when the sender last completed a session with another device, in
	// Unix milliseconds (0: never). Version 2 on.
	LastContact int64
	// ScopeAll says the sender holds every collection; otherwise Scope lists the tags of
	// the application collections it holds (reserved ones always). Version 4 on.
	ScopeAll bool
	Scope    [][8]byte
	// Roots is the root of every collection tree the sender holds, in tag order.
	// Version 4 on.
	Roots []TagRoot
	// ResumeSnap, when not zero, says that the sender of this hello received part of an
	// initial sync in record-id order from the receiver's store epoch KnownEpoch: every
	// record of ids up to ResumeAfter as the receiver held it at its sequence ResumeSnap.
	// Version 5 on.
	ResumeSnap  uint64
	ResumeAfter [32]byte
}

// HelloSize is the length of the fixed part of an encoded version-4 Hello (the scope and
// roots follow it).
const HelloSize = helloSizeV1 + 8 + 8

// helloSizeV5 is the length of the fixed part of a version-5 Hello: the resume cursor
// follows the last contact.
const helloSizeV5 = HelloSize + 8 + 32

// helloSizeV1 is the length of a version-1 Hello (no horizon, no last contact).
const helloSizeV1 = 1 + 32 + 16 + 16 + 8 + 8 + 8 + 32

// Marshal encodes h in the form of h.Version: the version-1, version-2/3, version-4 or
// version-5 form.
func (h *Hello) Marshal() []byte {
	b := make([]byte, 0, HelloSize)
	b = append(b, h.Version)
	b = append(b, h.Proof[:]...)
	b = append(b, h.Epoch[:]...)
	b = append(b, h.KnownEpoch[:]...)
	b = binary.BigEndian.AppendUint64(b, h.KnownSeq)
	b = binary.BigEndian.AppendUint64(b, h.LastSeq)
	b = binary.BigEndian.AppendUint64(b, h.RootCount)
	b = append(b, h.RootFP[:]...)
	if h.Version == 1 {
		return b
	}
	b = binary.BigEndian.AppendUint64(b, uint64(h.Horizon))
	b = binary.BigEndian.AppendUint64(b, uint64(h.LastContact))
	if h.Version < 4 {
		return b
	}
	if h.Version >= 5 {
		b = binary.BigEndian.AppendUint64(b, h.ResumeSnap)
		b = append(b, h.ResumeAfter[:]...)
	}
	all := byte(0)
	if h.ScopeAll {
		all = 1
	}
	b = append(b, all)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Scope)))
	for _, t := range h.Scope {
		b = append(b, t[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Roots)))
	for _, r := range h.Roots {
		b = append(b, r.Tag[:]...)
		b = binary.BigEndian.AppendUint64(b, r.Count)
		b = append(b, r.FP[:]...)
	}
	return b
}

// UnmarshalHello decodes a Hello. Its length must be that of its version's form.
func UnmarshalHello(b []byte) (*Hello, error) {
	want := HelloSize
	switch {
	case len(b) > 0 && b[0] == 1:
		want = helloSizeV1
	case len(b) > 0 && b[0] >= 5:
		want = helloSizeV5
	}
	var rest []byte
	if len(b) > 0 && b[0] >= 4 && len(b) >= want {
		b, rest = b[:want], b[want:]
	}
	if len(b) != want {
		return nil, fmt.Errorf("hello of %d bytes, want %d: %w", len(b), want, ErrMalformed)
	}
	h := &Hello{Version: b[0]}
	p := b[1:]
	p = p[copy(h.Proof[:], p):]
	p = p[copy(h.Epoch[:], p):]
	p = p[copy(h.KnownEpoch[:], p):]
	h.KnownSeq = binary.BigEndian.Uint64(p)
	h.LastSeq = binary.BigEndian.Uint64(p[8:])
	h.RootCount = binary.BigEndian.Uint64(p[16:])
	p = p[24+copy(h.RootFP[:], p[24:]):]
	if h.Version != 1 {
		h.Horizon = int64(binary.BigEndian.Uint64(p))
		h.LastContact = int64(binary.BigEndian.Uint64(p[8:]))
	}
	if h.Version >= 5 {
		h.ResumeSnap = binary.BigEndian.Uint64(p[16:])
		copy(h.ResumeAfter[:], p[24:])
	}
	if h.Version >= 4 {
		if err := h.unmarshalScope(rest); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// unmarshalScope decodes the version-4 trailer: scope flag, scope tags, tag roots, with
// every count checked against what is left before anything is allocated.
func (h *Hello) unmarshalScope(b []byte) error {
	bad := func(what string) error { return fmt.Errorf("hello: %s: %w", what, ErrMalformed) }
	if len(b) < 3 || b[0] > 1 {
		return bad("scope missing")
	}
	h.ScopeAll = b[0] == 1
	n := int(binary.BigEndian.Uint16(b[1:]))
	b = b[3:]
	if n > MaxScopeTags || len(b) < 8*n || (h.ScopeAll && n > 0) {
		return bad("scope tags")
	}
	h.Scope = make([][8]byte, n)
	for i := range h.Scope {
		b = b[copy(h.Scope[i][:], b):]
	}
	if len(b) < 2 {
		return bad("roots missing")
	}
	n = int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > MaxRoots || len(b) != 48*n {
		return bad("collection roots")
	}
	h.Roots = make([]TagRoot, n)
	for i := range h.Roots {
		r := &h.Roots[i]
		copy(r.Tag[:], b)
		r.Count = binary.BigEndian.Uint64(b[8:])
		copy(r.FP[:], b[16:48])
		b = b[48:]
		if i > 0 && string(h.Roots[i-1].Tag[:]) >= string(r.Tag[:]) {
			return bad("collection roots out of order")
		}
	}
	return nil
}

// Batch carries envelopes. In sequence order (the fast path and push) From and To are the
// sender's sequence range (From, To]: the receiver that already holds everything up to From
// holds everything up to To once the batch is applied. Outside sequence order (after a
// Merkle reconciliation) both are zero.
type Batch struct {
	From, To  uint64
	Envelopes [][]byte
}

// Marshal encodes the batch: From and To (8 bytes each), a uvarint count, then each
// envelope as a uvarint length and its bytes.
func (m *Batch) Marshal() []byte {
	n := 16 + binary.MaxVarintLen64
	for _, e := range m.Envelopes {
		n += binary.MaxVarintLen64 + len(e)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint64(b, m.From)
	b = binary.BigEndian.AppendUint64(b, m.To)
	b = binary.AppendUvarint(b, uint64(len(m.Envelopes)))
	for _, e := range m.Envelopes {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b
}

// UnmarshalBatch decodes a Batch. The envelopes alias b.
func UnmarshalBatch(b []byte) (*Batch, error) {
	if len(b) < 17 {
		return nil, fmt.Errorf("batch of %d bytes: %w", len(b), ErrMalformed)
	}
	m := &Batch{From: binary.BigEndian.Uint64(b), To: binary.BigEndian.Uint64(b[8:])}
	if m.To < m.From {
		return nil, fmt.Errorf("batch range (%d, %d]: %w", m.From, m.To, ErrMalformed)
	}
	p := b[16:]
	count, p, err := uvarint(p)
	if err != nil {
		return nil, fmt.Errorf("batch count: %w", err)
	}
	if count > MaxBatchEnvelopes || count > uint64(len(p)) {
		return nil, fmt.Errorf("batch of %d envelopes: %w", count, ErrTooLarge)
	}
	m.Envelopes = make([][]byte, 0, count)
	for range count {
		var n uint64
		n, p, err = uvarint(p)
		if err != nil {
			return nil, fmt.Errorf("batch envelope length: %w", err)
		}
		if n == 0 || n > MaxEnvelope {
			return nil, fmt.Errorf("batch envelope of %d bytes: %w", n, ErrTooLarge)
		}
		if n > uint64(len(p)) {
			return nil, fmt.Errorf("batch envelope truncated: %w", ErrMalformed)
		}
		m.Envelopes = append(m.Envelopes, p[:n:n])
		p = p[n:]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("batch has %d trailing bytes: %w", len(p), ErrMalformed)
	}
	return m, nil
}

// End tells the receiver that the sender sent every envelope of the session.
type End struct {
	Sent uint64 // envelopes sent in this session
}

// Done tells the sender what the receiver did with the session's envelopes.
type Done struct {
	Applied, Stale, Rejected, Conflicts uint64
}

// PushOpen is the first frame of a push stream.
type PushOpen struct {
	Epoch [16]byte // the sender's store epoch
}

// Ack acknowledges one pushed Batch.
type Ack struct {
	To      uint64 // the Batch's To
	Applied uint64 // envelopes that changed the receiver's store
}

// Marshal encodes End in 8 bytes.
func (m *End) Marshal() []byte { return binary.BigEndian.AppendUint64(nil, m.Sent) }

// UnmarshalEnd decodes End.
func UnmarshalEnd(b []byte) (*End, error) {
	if len(b) != 8 {
		return nil, fmt.Errorf("end of %d bytes: %w", len(b), ErrMalformed)
	}
	return &End{Sent: binary.BigEndian.Uint64(b)}, nil
}

// Marshal encodes Done in 32 bytes.
func (m *Done) Marshal() []byte {
	b := binary.BigEndian.AppendUint64(nil, m.Applied)
	b = binary.BigEndian.AppendUint64(b, m.Stale)
	b = binary.BigEndian.AppendUint64(b, m.Rejected)
	return binary.BigEndian.AppendUint64(b, m.Conflicts)
}

// UnmarshalDone decodes Done.
func UnmarshalDone(b []byte) (*Done, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("done of %d bytes: %w", len(b), ErrMalformed)
	}
	return &Done{
		Applied:   binary.BigEndian.Uint64(b),
		Stale:     binary.BigEndian.Uint64(b[8:]),
		Rejected:  binary.BigEndian.Uint64(b[16:]),
		Conflicts: binary.BigEndian.Uint64(b[24:]),
	}, nil
}

// Marshal encodes PushOpen in 16 bytes.
func (m *PushOpen) Marshal() []byte { return append([]byte(nil), m.Epoch[:]...) }

// UnmarshalPushOpen decodes PushOpen.
func UnmarshalPushOpen(b []byte) (*PushOpen, error) {
	if len(b) != 16 {
		return nil, fmt.Errorf("push open of %d bytes: %w", len(b), ErrMalformed)
	}
	m := &PushOpen{}
	copy(m.Epoch[:], b)
	return m, nil
}

// Marshal encodes Ack in 16 bytes.
func (m *Ack) Marshal() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, m.To), m.Applied)
}

// UnmarshalAck decodes Ack.
func UnmarshalAck(b []byte) (*Ack, error) {
	if len(b) != 16 {
		return nil, fmt.Errorf("ack of %d bytes: %w", len(b), ErrMalformed)
	}
	return &Ack{To: binary.BigEndian.Uint64(b), Applied: binary.BigEndian.Uint64(b[8:])}, nil
}

// uvarint decodes a canonical (shortest-form) uvarint.
func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, ErrMalformed
	}
	if n != minUvarintLen(v) {
		return 0, nil, fmt.Errorf("non-canonical uvarint: %w", ErrMalformed)
	}
	return v, b[n:], nil
}

// minUvarintLen is the length of the minimal uvarint encoding of v (without allocating).
func minUvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// batchHead is the room a BatchFrame keeps before its envelopes: the frame's length and
// type, From and To, and the count at its longest.
const batchHead = 5 + 16 + binary.MaxVarintLen64

// BatchFrame builds a Batch frame in place: each envelope is copied once, straight into
// the buffer that goes on the wire, and the head (frame length, type, From, To, count) is
// written in front of them when the frame is taken. The bytes equal WriteFrame of
// Batch.Marshal. The zero value is ready; Reset reuses the buffer.
type BatchFrame struct {
	buf []byte
	n   int
}

// Reset empties f for a new batch, keeping its buffer (the frame taken last is
// overwritten) and making room for at least size envelope bytes.
func (f *BatchFrame) Reset(size int) {
	if cap(f.buf) < batchHead+size {
		f.buf = make([]byte, batchHead, batchHead+size)
	}
	f.buf, f.n = f.buf[:batchHead], 0
}

// Add appends one envelope.
func (f *BatchFrame) Add(env []byte) {
	if len(f.buf) < batchHead {
		f.Reset(0)
	}
	f.buf = binary.AppendUvarint(f.buf, uint64(len(env)))
	f.buf = append(f.buf, env...)
	f.n++
}

// Len is the number of envelopes added.
func (f *BatchFrame) Len() int { return f.n }

// Frame writes the head for the range (from, to] and returns the whole frame, length
// prefix and type included: WriteFrame(w, TypeBatch, b.Marshal()) writes the same bytes.
// It aliases f's buffer until the next Reset.
func (f *BatchFrame) Frame(from, to uint64) []byte {
	if len(f.buf) < batchHead {
		f.Reset(0)
	}
	var head [batchHead]byte
	h := binary.BigEndian.AppendUint64(head[:5], from)
	h = binary.BigEndian.AppendUint64(h, to)
	h = binary.AppendUvarint(h, uint64(f.n))
	start := batchHead - len(h)
	body := len(f.buf) - start - 5 // From, To, count and envelopes
	binary.BigEndian.PutUint32(h, uint32(body+1))
	h[4] = byte(TypeBatch)
	copy(f.buf[start:], h)
	return f.buf[start:]
}
