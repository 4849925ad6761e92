package resolve

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// FieldClocks holds the clock of every field of a JSON object, keyed by the
// field's name; nested objects carry their own FieldClocks in Children.
// Fields that were removed keep a removal marker so that a removal wins
// over an older concurrent value. It is a last-writer-wins map per JSON path.
type FieldClocks map[string]FieldClock

// FieldClock is the clock of one field.
type FieldClock struct {
	// Clock and Device name the write that last set the field (for a leaf),
	// removed it (for a removal marker) or made it an object (for an object).
	Clock  Timestamp
	Device DeviceID
	// Counter is Device's version-vector entry for that write, or 0 when it
	// is not known (see Stamp and StampVersion). It lets Resolve tell whether
	// another version has seen this change, for critical fields.
	Counter uint64
	// Removed marks a field that was removed at Clock.
	Removed bool
	// Children is non-nil exactly when the field holds a JSON object: the
	// clocks of its fields.
	Children FieldClocks
}

// stamp is the (clock, device, counter) identity of one write.
type stamp struct {
	Clock   Timestamp
	Device  DeviceID
	Counter uint64
}

func (f FieldClock) stamp() stamp { return stamp{f.Clock, f.Device, f.Counter} }

// cmpStamp orders stamps by clock, then device, then counter.
func cmpStamp(a, b stamp) int {
	if c := cmp.Compare(a.Clock, b.Clock); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Device, b.Device); c != 0 {
		return c
	}
	return cmp.Compare(a.Counter, b.Counter)
}

// Clone returns a deep copy.
func (f FieldClocks) Clone() FieldClocks {
	if f == nil {
		return nil
	}
	r := make(FieldClocks, len(f))
	for k, c := range f {
		c.Children = c.Children.Clone()
		r[k] = c
	}
	return r
}

const fieldClocksVersion = 1

const (
	flagRemoved = 1 << iota
	flagObject
)

// minEntrySize is the smallest encoding of one entry: key length, clock,
// device length, counter, flags.
const minEntrySize = 1 + 8 + 1 + 1 + 1

// MarshalBinary returns the canonical encoding: a format byte (1), then the
// map as a uvarint count and, for every key in byte order, uvarint key
// length, key, clock (8 bytes big-endian), uvarint device length, device,
// uvarint counter, a flags byte (1 removed, 2 object) and, for an object,
// its children the same way. Equal maps give equal bytes; nil and empty
// maps encode alike.
func (f FieldClocks) MarshalBinary() ([]byte, error) {
	b := []byte{fieldClocksVersion}
	return f.appendBinary(b, 0)
}

func (f FieldClocks) appendBinary(b []byte, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return nil, fmt.Errorf("encode field clocks: %w (max %d)", ErrTooDeep, MaxDepth)
	}
	b = binary.AppendUvarint(b, uint64(len(f)))
	for _, k := range slices.Sorted(maps.Keys(f)) {
		c := f[k]
		if len(k) > MaxKeyLen {
			return nil, fmt.Errorf("encode field clocks: key of %d bytes: %w", len(k), ErrTooLarge)
		}
		if len(c.Device) > MaxDeviceIDLen {
			return nil, fmt.Errorf("encode field clocks: device id of %d bytes: %w", len(c.Device), ErrTooLarge)
		}
		if c.Removed && c.Children != nil {
			return nil, fmt.Errorf("encode field clocks: field %q is both removed and an object: %w", k, ErrCorruptClocks)
		}
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint64(b, uint64(c.Clock))
		b = binary.AppendUvarint(b, uint64(len(c.Device)))
		b = append(b, c.Device...)
		b = binary.AppendUvarint(b, c.Counter)
		var fl byte
		if c.Removed {
			fl |= flagRemoved
		}
		if c.Children != nil {
			fl |= flagObject
		}
		b = append(b, fl)
		if c.Children != nil {
			var err error
			if b, err = c.Children.appendBinary(b, depth+1); err != nil {
				return nil, err
			}
		}
		if len(b) > MaxFieldClocksSize {
			return nil, fmt.Errorf("encode field clocks: %w (max %d bytes)", ErrTooLarge, MaxFieldClocksSize)
		}
	}
	return b, nil
}

// UnmarshalBinary decodes the encoding written by MarshalBinary. It refuses
// anything that MarshalBinary would not have written (unsorted or duplicate
// keys, non-minimal varints, unknown flags, trailing bytes), so decoding and
// encoding again gives the same bytes. Sizes are checked against the caps
// before anything is allocated.
func (f *FieldClocks) UnmarshalBinary(data []byte) error {
	if len(data) > MaxFieldClocksSize {
		return fmt.Errorf("decode field clocks of %d bytes: %w", len(data), ErrTooLarge)
	}
	if len(data) == 0 || data[0] != fieldClocksVersion {
		return fmt.Errorf("decode field clocks: %w: unknown format", ErrCorruptClocks)
	}
	d := decoder{b: data[1:]}
	m, err := d.fields(0)
	if err != nil {
		return fmt.Errorf("decode field clocks at byte %d: %w", len(data)-len(d.b), err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("decode field clocks: %w: %d trailing bytes", ErrCorruptClocks, len(d.b))
	}
	*f = m
	return nil
}

type decoder struct{ b []byte }

func (d *decoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varint", ErrCorruptClocks)
	}
	if n != minUvarintLen(v) {
		return 0, fmt.Errorf("%w: non-minimal varint", ErrCorruptClocks)
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) bytes(n uint64, max int) ([]byte, error) {
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: length %d over %d", ErrTooLarge, n, max)
	}
	if n > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: truncated", ErrCorruptClocks)
	}
	r := d.b[:n]
	d.b = d.b[n:]
	return r, nil
}

func (d *decoder) fields(depth int) (FieldClocks, error) {
	if depth >= MaxDepth {
		return nil, fmt.Errorf("%w (max %d)", ErrTooDeep, MaxDepth)
	}
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.b)/minEntrySize) {
		return nil, fmt.Errorf("%w: %d entries cannot fit in %d bytes", ErrCorruptClocks, n, len(d.b))
	}
	m := make(FieldClocks, n)
	prev := ""
	for i := uint64(0); i < n; i++ {
		kl, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		kb, err := d.bytes(kl, MaxKeyLen)
		if err != nil {
			return nil, err
		}
		k := string(kb)
		if i > 0 && k <= prev {
			return nil, fmt.Errorf("%w: keys not in strictly increasing order", ErrCorruptClocks)
		}
		prev = k
		if len(d.b) < 8 {
			return nil, fmt.Errorf("%w: truncated", ErrCorruptClocks)
		}
		var c FieldClock
		c.Clock = Timestamp(binary.BigEndian.Uint64(d.b))
		d.b = d.b[8:]
		dl, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		db, err := d.bytes(dl, MaxDeviceIDLen)
		if err != nil {
			return nil, err
		}
		c.Device = DeviceID(db)
		if c.Counter, err = d.uvarint(); err != nil {
			return nil, err
		}
		if len(d.b) < 1 {
			return nil, fmt.Errorf("%w: truncated", ErrCorruptClocks)
		}
		fl := d.b[0]
		d.b = d.b[1:]
		switch fl {
		case 0:
		case flagRemoved:
			c.Removed = true
		case flagObject:
			if c.Children, err = d.fields(depth + 1); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: bad flags %#x", ErrCorruptClocks, fl)
		}
		m[k] = c
	}
	return m, nil
}

// checkFields checks what MarshalBinary would refuse, without encoding.
func checkFields(f FieldClocks, depth int) error {
	if len(f) > 0 && depth >= MaxDepth {
		return fmt.Errorf("field clocks: %w (max %d)", ErrTooDeep, MaxDepth)
	}
	for k, c := range f {
		switch {
		case len(k) > MaxKeyLen:
			return fmt.Errorf("field clocks: key of %d bytes: %w", len(k), ErrTooLarge)
		case len(c.Device) > MaxDeviceIDLen:
			return fmt.Errorf("field clocks: device id of %d bytes: %w", len(c.Device), ErrTooLarge)
		case c.Removed && c.Children != nil:
			return fmt.Errorf("field clocks: field %q is both removed and an object: %w", k, ErrCorruptClocks)
		}
		if err := checkFields(c.Children, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// minUvarintLen is the length of the minimal uvarint encoding of v (without allocating).
func minUvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}
