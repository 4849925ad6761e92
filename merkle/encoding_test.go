package merkle

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func idFromHex(t testing.TB, s string) ID {
	t.Helper()
	var id ID
	for i := range len(s) {
		c := s[i]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			t.Fatalf("bad hex %q", s)
		}
		if i%2 == 0 {
			id[i/2] |= v << 4
		} else {
			id[i/2] |= v
		}
	}
	return id
}

func TestPrefixKey(t *testing.T) {
	id := idFromHex(t, "3a7f")
	for _, c := range []struct {
		level int
		key   []byte
		str   string
	}{
		// The root is one zero byte.
		{0, []byte{0}, "root"},
		// An odd level leaves the low nibble of its last byte zero.
		{1, []byte{1, 0x30}, "3"},
		{2, []byte{2, 0x3a}, "3a"},
		{3, []byte{3, 0x3a, 0x70}, "3a7"},
		{4, []byte{4, 0x3a, 0x7f}, "3a7f"},
	} {
		p := PrefixOf(id, c.level)
		if got := p.Key(); !bytes.Equal(got, c.key) {
			t.Errorf("level %d: key %x, want %x", c.level, got, c.key)
		}
		if p.String() != c.str || p.Level() != c.level {
			t.Errorf("level %d: %q level %d", c.level, p.String(), p.Level())
		}
		back, err := ParsePrefixKey(c.key)
		if err != nil || back != p {
			t.Errorf("level %d: parse %v %v, want %v", c.level, back, err, p)
		}
	}
	// Keys that Key never produces are refused.
	for _, bad := range [][]byte{nil, {65}, {1}, {1, 0x31}, {2, 0x3a, 0}, {0, 0}} {
		if _, err := ParsePrefixKey(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePrefixKey(%x) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestPrefixKeyOrder(t *testing.T) {
	// Within a level keys sort like the ids; a level sorts before the next.
	ids := []ID{idFromHex(t, "00"), idFromHex(t, "0f"), idFromHex(t, "10"), idFromHex(t, "ff")}
	for level := 1; level <= 3; level++ {
		for i := 1; i < len(ids); i++ {
			a, b := PrefixOf(ids[i-1], level).Key(), PrefixOf(ids[i], level).Key()
			if bytes.Compare(a, b) > 0 {
				t.Errorf("level %d: key %x after %x", level, a, b)
			}
		}
		if bytes.Compare(PrefixOf(ids[3], level).Key(), PrefixOf(ids[0], level+1).Key()) >= 0 {
			t.Errorf("level %d does not sort before level %d", level, level+1)
		}
	}
}

func TestPathRangeChild(t *testing.T) {
	id := idFromHex(t, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	path := Path(id)
	if len(path) != Depth {
		t.Fatalf("len(Path) = %d, want %d", len(path), Depth)
	}
	for l, p := range path {
		if p.Level() != l || !p.Contains(id) {
			t.Errorf("path[%d] = %v (level %d) does not hold the id", l, p, p.Level())
		}
		lo, hi := p.Range()
		if bytes.Compare(lo[:], id[:]) > 0 || bytes.Compare(id[:], hi[:]) > 0 {
			t.Errorf("level %d: id outside range %x..%x", l, lo, hi)
		}
		if !p.Contains(lo) || !p.Contains(hi) {
			t.Errorf("level %d: range ends outside the prefix", l)
		}
		if l > 0 {
			if p.Parent() != path[l-1] || path[l-1].Child(p.Digit(l-1)) != p {
				t.Errorf("level %d: parent/child do not invert", l)
			}
		}
	}
	full := PrefixOf(id, MaxLevel)
	if lo, hi := full.Range(); lo != id || hi != id {
		t.Errorf("full prefix range %x..%x", lo, hi)
	}
	if full.Child(3) != full {
		t.Error("Child of a full prefix changed it")
	}
	if lo, hi := Root().Range(); lo != (ID{}) || hi[0] != 0xff || hi[31] != 0xff {
		t.Errorf("root range %x..%x", lo, hi)
	}
}

func TestNodeEncoding(t *testing.T) {
	var n Node
	a := Item{ID: idFromHex(t, "01"), Digest: Digest{1}}
	b := Item{ID: idFromHex(t, "02"), Digest: Digest{2}}
	n.Add(a)
	n.Add(b)
	raw, err := n.MarshalBinary()
	if err != nil || len(raw) != NodeSize {
		t.Fatalf("marshal: %d bytes, %v", len(raw), err)
	}
	if raw[7] != 2 {
		t.Errorf("count not big-endian in the first 8 bytes: %x", raw[:8])
	}
	var back Node
	if err := back.UnmarshalBinary(raw); err != nil || back != n {
		t.Fatalf("round trip: %v %v", back, err)
	}
	// Order does not matter, and Remove undoes Add.
	var m Node
	m.Add(b)
	m.Add(a)
	if m != n {
		t.Error("fingerprint depends on insertion order")
	}
	m.Remove(a)
	m.Remove(b)
	if m != (Node{}) {
		t.Errorf("add then remove left %v", m)
	}
	for _, l := range []int{0, 39, 41} {
		if err := back.UnmarshalBinary(make([]byte, l)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes: %v, want ErrMalformed", l, err)
		}
	}
}

func TestMessageEncoding(t *testing.T) {
	id := idFromHex(t, "abcd")
	for _, c := range []struct {
		name string
		m    message
		want []byte
	}{
		{"empty final", message{flags: flagFinal, k: 2, h: 3}, []byte{1, 2, 0, 0x23}},
		{"root", message{k: 2, h: 3, entries: []entry{{kind: kindRoot, count: 300, fp: Fingerprint{9}}}},
			append([]byte{1, 0, 0, 0x23, kindRoot, 0xac, 0x02, 9}, make([]byte, 31)...)},
		{"list at level 3", message{pass: 1, k: 4, h: 1, entries: []entry{{kind: kindList, prefix: PrefixOf(id, 3), tags: []uint64{7, 255}}}},
			[]byte{1, 0, 1, 0x41, kindList, 3, 0xab, 0xc0, 2, 7, 255}},
		{"reply with bitmap and id", message{flags: flagIDSum, k: 1, h: 1, idSum: 5, entries: []entry{{kind: kindReply, prefix: Root(), want: []bool{false, true, false}, ids: []ID{id}}}},
			append(append([]byte{1, 8, 0, 0x11, kindReply, 0, 3, 2, 1}, id[:]...), 5, 0, 0, 0, 0, 0, 0, 0)},
	} {
		got := appendMessage(nil, &c.m)
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: encoded %x, want %x", c.name, got, c.want)
			continue
		}
		back, err := decodeMessage(got)
		if err != nil {
			t.Errorf("%s: decode: %v", c.name, err)
			continue
		}
		if again := appendMessage(nil, back); !bytes.Equal(again, got) {
			t.Errorf("%s: round trip %x", c.name, again)
		}
		for i := range c.m.entries {
			if s := c.m.entries[i].size(c.m.k, c.m.h); s > len(got) {
				t.Errorf("%s: size %d above message length %d", c.name, s, len(got))
			}
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short header", []byte{1, 0, 0}, ErrMalformed},
		{"unknown version", []byte{2, 0, 0, 0x23}, ErrVersion},
		{"unknown flag", []byte{1, 0x40, 0, 0x23}, ErrMalformed},
		{"pass too high", []byte{1, 0, 3, 0x23}, ErrMalformed},
		{"zero width", []byte{1, 0, 0, 0x03}, ErrMalformed},
		{"width 9", []byte{1, 0, 0, 0x93}, ErrMalformed},
		{"unknown entry", []byte{1, 0, 0, 0x23, 9}, ErrMalformed},
		{"prefix deeper than an id", []byte{1, 0, 0, 0x23, kindList, 65}, ErrMalformed},
		{"fps below the last level", append([]byte{1, 0, 0, 0x23, kindFPS, 63}, make([]byte, 32)...), ErrMalformed},
		{"fps jump 3", []byte{1, 0, 0, 0x23, kindFPS, 0, 3}, ErrMalformed},
		{"truncated fps", []byte{1, 0, 0, 0x23, kindFPS, 0, 1, 1, 2}, ErrMalformed},
		{"list count past the end", []byte{1, 0, 0, 0x13, kindList, 0, 100, 1, 2, 3}, ErrMalformed},
		{"huge list count", []byte{1, 0, 0, 0x11, kindList, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrMalformed},
		{"overlong varint", []byte{1, 0, 0, 0x11, kindList, 0, 0x80, 0x00}, ErrMalformed},
		{"padding nibble", []byte{1, 0, 0, 0x11, kindList, 1, 0x31, 0}, ErrMalformed},
		{"bitmap padding", []byte{1, 0, 0, 0x11, kindReply, 0, 3, 0x08, 0}, ErrMalformed},
		{"id count past the end", []byte{1, 0, 0, 0x11, kindIDs, 0, 2, 1}, ErrMalformed},
		{"truncated id sum", []byte{1, flagIDSum, 0, 0x11, 1, 2}, ErrMalformed},
		{"oversize", make([]byte, maxWireBytes+1), ErrTooLarge},
	} {
		if _, err := decodeMessage(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, seed := range honestMessages(f) {
		f.Add(seed)
	}
	f.Add([]byte{1, 2, 0, 0x23})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		if again := appendMessage(nil, m); !bytes.Equal(again, b) {
			t.Fatalf("round trip:\n in %x\nout %x", b, again)
		}
	})
}

func FuzzParsePrefixKey(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{3, 0xab, 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePrefixKey(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Key(), b) {
			t.Fatalf("round trip %x -> %x", b, p.Key())
		}
	})
}

func FuzzNodeUnmarshal(f *testing.F) {
	f.Add(make([]byte, NodeSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		var n Node
		if err := n.UnmarshalBinary(b); err != nil {
			return
		}
		out, _ := n.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip %x -> %x", b, out)
		}
	})
}

// FuzzSessionHandle feeds arbitrary bytes to a responder, and to an initiator after its
// first message: no panic, and an error is one of the package's sentinels.
func FuzzSessionHandle(f *testing.F) {
	for _, seed := range honestMessages(f) {
		f.Add(seed)
	}
	a, b := randomPair(1, 300, 5)
	f.Fuzz(func(t *testing.T, msg []byte) {
		r := NewResponder(b, Config{})
		_, err := r.Handle(msg)
		checkSentinel(t, err)
		i := NewInitiator(a, Config{})
		if _, err := i.Start(); err != nil {
			t.Fatal(err)
		}
		_, err = i.Handle(msg)
		checkSentinel(t, err)
	})
}

func checkSentinel(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []error{ErrMalformed, ErrVersion, ErrTooLarge, ErrProtocol, ErrBudget, ErrMismatch} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error without a sentinel: %v", err)
}

// honestMessages returns every message of a few honest sessions.
func honestMessages(t testing.TB) [][]byte {
	var out [][]byte
	for seed, d := range []int{0, 3, 40} {
		a, b := randomPair(int64(seed), 2000, d)
		_, err := relay(NewInitiator(a, Config{}), NewResponder(b, Config{}), func(_ int, m []byte) []byte {
			out = append(out, slices.Clone(m))
			return m
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
