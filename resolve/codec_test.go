package resolve

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		// Key order and whitespace disappear.
		{`{ "b" : 1, "a" : [ 1 , 2 ] }`, `{"a":[1,2],"b":1}`, nil},
		{`{"z":{"y":1,"x":2}}`, `{"z":{"x":2,"y":1}}`, nil},
		// Strings keep UTF-8 and only the required escapes.
		{`"\u00e9\n\u0001\/"`, "\"é\\n\\u0001/\"", nil},
		{`"<&>"`, `"<&>"`, nil},
		// Scalars; numbers kept as written.
		{` 1.50 `, `1.50`, nil},
		{`null`, `null`, nil},
		// Refused.
		{`{"a":1,"a":2}`, "", ErrInvalidJSON},
		{`{"a":1} {}`, "", ErrInvalidJSON},
		{`[1,]`, "", ErrInvalidJSON},
		{"\"\xff\"", "", ErrInvalidJSON},
		{``, "", ErrInvalidJSON},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "", ErrTooDeep},
	}
	for _, tt := range tests {
		got, err := CanonicalJSON([]byte(tt.in))
		if !errors.Is(err, tt.err) {
			t.Errorf("%q: err = %v, want %v", tt.in, err, tt.err)
			continue
		}
		if err == nil && string(got) != tt.want {
			t.Errorf("%q = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestFieldClocksRoundTrip(t *testing.T) {
	fc := FieldClocks{
		"a": {Clock: 5, Device: "d1", Counter: 3},
		"b": {Clock: 7, Device: "d2", Removed: true},
		"c": {Clock: 9, Device: "d1", Children: FieldClocks{"x": {Clock: 9, Device: "d1"}}},
		"e": {Clock: 1, Device: "d3", Children: FieldClocks{}},
	}
	b, err := fc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got FieldClocks
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	b2, _ := got.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed bytes")
	}
	if got["e"].Children == nil || !got["b"].Removed || got["a"].Counter != 3 || got["c"].Children["x"].Device != "d1" {
		t.Errorf("decoded %+v", got)
	}
	// Every truncation is refused.
	for i := 0; i < len(b); i++ {
		if err := new(FieldClocks).UnmarshalBinary(b[:i]); err == nil {
			t.Errorf("truncated at %d accepted", i)
		}
	}
	// A count that cannot fit is refused before allocating.
	if err := new(FieldClocks).UnmarshalBinary([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}); !errors.Is(err, ErrCorruptClocks) {
		t.Errorf("huge count: %v", err)
	}
	// Trailing bytes are refused.
	if err := new(FieldClocks).UnmarshalBinary(append(b, 0)); !errors.Is(err, ErrCorruptClocks) {
		t.Errorf("trailing: %v", err)
	}
}

func TestStamp(t *testing.T) {
	v1, err := Stamp(nil, []byte(`{"a":1,"o":{"x":1}}`), 10, "d1")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Stamp(&v1, []byte(`{"o":{"x":1,"y":2},"n":[1]}`), 20, "d2")
	if err != nil {
		t.Fatal(err)
	}
	f := v2.Fields
	check := func(name string, got FieldClock, clock Timestamp, dev DeviceID, removed bool) {
		t.Helper()
		if got.Clock != clock || got.Device != dev || got.Removed != removed {
			t.Errorf("%s = %+v, want %d %s removed=%v", name, got, clock, dev, removed)
		}
	}
	check("a (removed)", f["a"], 20, "d2", true)
	check("o (kept object)", f["o"], 10, "d1", false)
	check("o.x (unchanged)", f["o"].Children["x"], 10, "d1", false)
	check("o.y (added)", f["o"].Children["y"], 20, "d2", false)
	check("n (added)", f["n"], 20, "d2", false)
	// A removal stays a removal with its first clock.
	v3, _ := Stamp(&v2, []byte(`{"o":{"x":1,"y":2},"n":[1]}`), 30, "d3")
	check("a again", v3.Fields["a"], 20, "d2", true)
	// Non-objects carry no field clocks.
	if v, _ := Stamp(&v3, []byte(`[1]`), 40, "d1"); v.Fields != nil || string(v.Data) != `[1]` {
		t.Errorf("array: %+v", v)
	}
	if _, err := Stamp(nil, []byte(`{`), 1, "d"); !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("bad JSON: %v", err)
	}
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x"]}`, `"\u00e9\ud800"`, `1e400`, `{"a":{"b":{}}}`, `[]`, `{"a":1,"a":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := CanonicalJSON(b)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form is not JSON: %q", c)
		}
		c2, err := CanonicalJSON(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("not idempotent: %q -> %q (%v)", c, c2, err)
		}
		var x, y any
		if json.Unmarshal(b, &x) == nil && json.Unmarshal(c, &y) == nil {
			xb, _ := json.Marshal(x)
			yb, _ := json.Marshal(y)
			if !bytes.Equal(xb, yb) {
				t.Fatalf("meaning changed: %s vs %s", xb, yb)
			}
		}
	})
}

func FuzzFieldClocks(f *testing.F) {
	seed, _ := FieldClocks{
		"a": {Clock: 5, Device: "d1", Counter: 3},
		"b": {Clock: 7, Device: "d2", Removed: true},
		"c": {Clock: 9, Device: "d1", Children: FieldClocks{"x": {Clock: 9}}},
	}.MarshalBinary()
	f.Add(seed)
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 0x80, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fc FieldClocks
		if err := fc.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := fc.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("decode→encode changed bytes:\n%x\n%x", b, out)
		}
	})
}
