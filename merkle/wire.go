package merkle

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Wire format, version 1. Not public API: only Session produces and consumes it.
//
//	message = version:1 (=1) | flags:1 | pass:1 | widths:1 | entry* | [idsum:8]
//	widths  = k<<4 | h      fingerprint width k and tag width h in bytes, 1..8 each
//	flags   = bit0 more (the sender has more to send), bit1 final (the sender is done and
//	          expects no answer), bit2 restart (this message opens pass `pass`), bit3 idsum
//	          present (the sum of lane 0 of the item hashes of all full ids in the message)
//	entry   = kind:1 | body
//	prefix  = level:1 (0..64) | ceil(level/2) digit bytes (an odd level leaves a zero low nibble)
//
//	kind 1 root:  count:uvarint | fingerprint:32               the sender's root summary
//	kind 2 fps:   prefix | jump:1 (1 or 2) | 16^jump × k bytes  truncated fingerprints of the
//	              descendants jump levels below prefix, in digit order, little-endian
//	kind 3 list:  prefix | n:uvarint (≤ maxList) | n × h bytes  tags of the sender's items under
//	              prefix, in id order
//	kind 4 reply: prefix | n:uvarint (≤ maxList) | ceil(n/8) bitmap | m:uvarint | m × 32 ids
//	              answer to a list: bit i (LSB first) set = "send me your item i"; the ids are
//	              the replier's items under prefix that the list lacks
//	kind 5 ids:   prefix | m:uvarint | m × 32 ids               the items a reply asked for
//	kind 6 push:  prefix | m:uvarint | m × 32 ids               all the sender's items under
//	              a prefix the receiver reported empty
//
// Every count is checked against the bytes left before anything is allocated, varints must
// be minimal and padding must be zero, so a message has exactly one encoding.

const (
	wireVersion = 1

	flagMore    = 1
	flagFinal   = 2
	flagRestart = 4
	flagIDSum   = 8
	flagsKnown  = flagMore | flagFinal | flagRestart | flagIDSum

	kindRoot  = 1
	kindFPS   = 2
	kindList  = 3
	kindReply = 4
	kindIDs   = 5
	kindPush  = 6

	maxList   = 1024 // items in one list entry
	maxPasses = 3
	headerLen = 4
)

type message struct {
	flags    byte
	pass     int
	k, h     int
	entries  []entry
	idSum    uint64
	hasIDSum bool
}

type entry struct {
	kind   byte
	prefix Prefix
	// root
	count uint64
	fp    Fingerprint
	// fps
	jump int
	fps  []uint64
	// list
	tags []uint64
	// reply: want[i] = the replier lacks list item i
	want []bool
	// reply, ids, push
	ids []ID

	// local bookkeeping, not encoded: the items behind tags or ids this side sends.
	items []Item
	sum   uint64 // lane 0 sum of items whose full ids this entry carries
}

func (e *entry) size(k, h int) int {
	n := 1
	if e.kind != kindRoot {
		n += 1 + (e.prefix.Level()+1)/2
	}
	switch e.kind {
	case kindRoot:
		n += uvarintLen(e.count) + 32
	case kindFPS:
		n += 1 + len(e.fps)*k
	case kindList:
		n += uvarintLen(uint64(len(e.tags))) + len(e.tags)*h
	case kindReply:
		n += uvarintLen(uint64(len(e.want))) + (len(e.want)+7)/8 + uvarintLen(uint64(len(e.ids))) + 32*len(e.ids)
	case kindIDs, kindPush:
		n += uvarintLen(uint64(len(e.ids))) + 32*len(e.ids)
	}
	return n
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func appendMessage(b []byte, m *message) []byte {
	b = append(b, wireVersion, m.flags, byte(m.pass), byte(m.k<<4|m.h))
	for i := range m.entries {
		b = appendEntry(b, &m.entries[i], m.k, m.h)
	}
	if m.flags&flagIDSum != 0 {
		b = binary.LittleEndian.AppendUint64(b, m.idSum)
	}
	return b
}

func appendPrefix(b []byte, p Prefix) []byte {
	b = append(b, p.level)
	return append(b, p.digits[:(p.level+1)/2]...)
}

func appendEntry(b []byte, e *entry, k, h int) []byte {
	b = append(b, e.kind)
	if e.kind != kindRoot {
		b = appendPrefix(b, e.prefix)
	}
	switch e.kind {
	case kindRoot:
		b = binary.AppendUvarint(b, e.count)
		b = append(b, e.fp[:]...)
	case kindFPS:
		b = append(b, byte(e.jump))
		for _, v := range e.fps {
			b = appendLE(b, v, k)
		}
	case kindList:
		b = binary.AppendUvarint(b, uint64(len(e.tags)))
		for _, v := range e.tags {
			b = appendLE(b, v, h)
		}
	case kindReply:
		b = binary.AppendUvarint(b, uint64(len(e.want)))
		var cur byte
		for i, w := range e.want {
			if w {
				cur |= 1 << (i % 8)
			}
			if i%8 == 7 || i == len(e.want)-1 {
				b = append(b, cur)
				cur = 0
			}
		}
		b = appendIDs(b, e.ids)
	case kindIDs, kindPush:
		b = appendIDs(b, e.ids)
	}
	return b
}

func appendIDs(b []byte, ids []ID) []byte {
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for i := range ids {
		b = append(b, ids[i][:]...)
	}
	return b
}

func appendLE(b []byte, v uint64, n int) []byte {
	for i := range n {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// decoder reads one message; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("decode message: "+format+": %w", append(args, ErrMalformed)...)
	}
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != uvarintLen(v) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a uvarint count of elements of size each and checks that they fit in the
// bytes left and under limit before the caller allocates.
func (d *decoder) count(size, limit int) int {
	v := d.uvarint()
	if d.err != nil {
		return 0
	}
	if v > uint64(limit) || v*uint64(size) > uint64(len(d.b)) {
		d.fail("count %d too large", v)
		return 0
	}
	return int(v)
}

func (d *decoder) prefix() Prefix {
	level := int(d.byte1())
	if d.err != nil {
		return Prefix{}
	}
	if level > MaxLevel {
		d.fail("prefix level %d above %d", level, MaxLevel)
		return Prefix{}
	}
	raw := d.take((level + 1) / 2)
	if d.err != nil {
		return Prefix{}
	}
	if level%2 == 1 && raw[len(raw)-1]&0x0f != 0 {
		d.fail("prefix padding nibble set")
		return Prefix{}
	}
	p := Prefix{level: uint8(level)}
	copy(p.digits[:], raw)
	return p
}

func (d *decoder) le(n int) uint64 {
	raw := d.take(n)
	var v uint64
	for i, c := range raw {
		v |= uint64(c) << (8 * i)
	}
	return v
}

func (d *decoder) ids() []ID {
	n := d.count(32, maxWireBytes/32)
	if d.err != nil {
		return nil
	}
	out := make([]ID, n)
	for i := range out {
		copy(out[i][:], d.take(32))
	}
	return out
}

// decodeMessage parses one message. Errors wrap ErrMalformed, ErrVersion or ErrTooLarge.
func decodeMessage(b []byte) (*message, error) {
	if len(b) > maxWireBytes {
		return nil, fmt.Errorf("decode message: %d bytes: %w", len(b), ErrTooLarge)
	}
	if len(b) < headerLen {
		return nil, fmt.Errorf("decode message: %d bytes, shorter than a header: %w", len(b), ErrMalformed)
	}
	if b[0] != wireVersion {
		return nil, fmt.Errorf("decode message: version %d: %w", b[0], ErrVersion)
	}
	m := &message{flags: b[1], pass: int(b[2]), k: int(b[3] >> 4), h: int(b[3] & 0xf)}
	if m.flags&^flagsKnown != 0 {
		return nil, fmt.Errorf("decode message: unknown flags %#x: %w", m.flags, ErrMalformed)
	}
	if m.pass >= maxPasses {
		return nil, fmt.Errorf("decode message: pass %d: %w", m.pass, ErrMalformed)
	}
	if m.k < 1 || m.k > 8 || m.h < 1 || m.h > 8 {
		return nil, fmt.Errorf("decode message: widths %d/%d: %w", m.k, m.h, ErrMalformed)
	}
	d := &decoder{b: b[headerLen:]}
	if m.flags&flagIDSum != 0 {

		if len(d.b) < 8 {
			return nil, fmt.Errorf("decode message: truncated id sum: %w", ErrMalformed)
		}
		m.idSum = binary.LittleEndian.Uint64(d.b[len(d.b)-8:])
		m.hasIDSum = true
		d.b = d.b[:len(d.b)-8]
	}
	for len(d.b) > 0 && d.err == nil {
		e := entry{kind: d.byte1()}
		if e.kind != kindRoot {
			e.prefix = d.prefix()
		}
		switch e.kind {
		case kindRoot:
			e.count = d.uvarint()
			copy(e.fp[:], d.take(32))
		case kindFPS:
			e.jump = int(d.byte1())
			if d.err == nil && (e.jump < 1 || e.jump > 2 || e.prefix.Level()+e.jump > MaxLevel) {
				d.fail("fps jump %d from level %d", e.jump, e.prefix.Level())
			}
			if d.err == nil {
				n := 1 << (4 * e.jump)
				if n*m.k > len(d.b) {
					d.fail("truncated fps")
					break
				}
				e.fps = make([]uint64, n)
				for i := range e.fps {
					e.fps[i] = d.le(m.k)
				}
			}
		case kindList:
			n := d.count(m.h, maxList)
			if d.err == nil {
				e.tags = make([]uint64, n)
				for i := range e.tags {
					e.tags[i] = d.le(m.h)
				}
			}
		case kindReply:
			n := d.count(0, maxList)
			raw := d.take((n + 7) / 8)
			if d.err == nil {
				if n%8 != 0 && raw[len(raw)-1]>>(n%8) != 0 {
					d.fail("reply bitmap padding set")
					break
				}
				e.want = make([]bool, n)
				for i := range e.want {
					e.want[i] = raw[i/8]>>(i%8)&1 == 1
				}
				e.ids = d.ids()
			}
		case kindIDs, kindPush:
			e.ids = d.ids()
		default:
			d.fail("unknown entry kind %d", e.kind)
		}
		if d.err == nil {
			m.entries = append(m.entries, e)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}
