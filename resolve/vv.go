package resolve

import (
	"slices"
	"strconv"
	"strings"
)

// DeviceID is a short opaque device identifier (16 hex characters in
// practice). Ties between equal clocks are broken by comparing DeviceIDs as
// byte strings.
type DeviceID string

// Ordering is the causal relation between two version vectors.
type Ordering int8

// The four causal relations.
const (
	Equal      Ordering = iota // both have seen exactly the same writes
	Before                     // the receiver is strictly older than the argument
	After                      // the receiver strictly dominates the argument
	Concurrent                 // each has seen a write the other has not
)

// String returns the name of the ordering.
func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Before:
		return "before"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return "ordering(" + strconv.Itoa(int(o)) + ")"
}

// VersionVector maps a device to the number of writes of that device a
// version has seen (for one record). Missing entries and zero entries mean
// the same thing.
type VersionVector map[DeviceID]uint64

// Compare returns the causal relation of v to o.
func (v VersionVector) Compare(o VersionVector) Ordering {
	less, greater := false, false
	for d, n := range v {
		if m := o[d]; n > m {
			greater = true
		} else if n < m {
			less = true
		}
	}
	for d, m := range o {
		if _, ok := v[d]; !ok && m > 0 {
			less = true
		}
	}
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	}
	return Equal
}

// Dominates reports whether v has seen everything o has seen (v is After or
// Equal to o).
func (v VersionVector) Dominates(o VersionVector) bool {
	c := v.Compare(o)
	return c == After || c == Equal
}

// Merge returns a new vector holding the larger entry of v and o for every
// device. Neither input is modified.
func (v VersionVector) Merge(o VersionVector) VersionVector {
	r := v.Clone()
	for d, m := range o {
		if m > r[d] {
			r[d] = m
		}
	}
	return r
}

// Clone returns a copy of v without its zero entries. Clone of nil is an
// empty, non-nil vector.
func (v VersionVector) Clone() VersionVector {
	r := make(VersionVector, len(v))
	for d, n := range v {
		if n > 0 {
			r[d] = n
		}
	}
	return r
}

// String formats the vector deterministically, devices sorted, e.g.
// "{a:1 b:3}".
func (v VersionVector) String() string {
	devs := v.devices()
	var b strings.Builder
	b.WriteByte('{')
	for i, d := range devs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(d))
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(v[d], 10))
	}
	b.WriteByte('}')
	return b.String()
}

// devices returns the devices with a non-zero entry, sorted.
func (v VersionVector) devices() []DeviceID {
	devs := make([]DeviceID, 0, len(v))
	for d, n := range v {
		if n > 0 {
			devs = append(devs, d)
		}
	}
	slices.Sort(devs)
	return devs
}

// sharesDevice reports whether v and o both have a non-zero entry for some device.
func (v VersionVector) sharesDevice(o VersionVector) bool {
	for d, n := range v {
		if n > 0 && o[d] > 0 {
			return true
		}
	}
	return false
}

// Version identifies one write of a record: the device that wrote it, its
// hybrid clock and the version vector after the write.
type Version struct {
	Device DeviceID
	Clock  Timestamp
	VV     VersionVector
}

// Counter returns the writing device's own entry in the version vector, the
// sequence number of this write among that device's writes of the record.
func (v Version) Counter() uint64 { return v.VV[v.Device] }
