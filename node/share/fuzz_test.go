package share

import (
	"bytes"
	"testing"
)

// FuzzParseHeader: no panic on any bytes, and a header that decodes encodes to the same
// bytes (one header, one encoding).
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		`{"grant":"0123abcd","purpose":"research","fields":["at=generalize:day","title=keep"],"count":2}`,
		`{"grant":"0123abcd","purpose":"p","fields":[],"count":0}`,
		`{"grant":"0123abcd","purpose":"p","fields":["a=drop"],"count":0}`,
		`{"grant":"0123abcd","purpose":"p","fields":[],"count":0,"x":1}`,
		`{"count":-1}`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		enc, err := h.marshal()
		if err != nil {
			t.Fatalf("parsed header does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("round trip: %q → %q", b, enc)
		}
	})
}

// FuzzParseBatch: no panic, lengths checked before allocation, and decode → encode gives
// the same bytes.
func FuzzParseBatch(f *testing.F) {
	good, _ := marshalBatch([][]byte{[]byte(`{"a":1}`), []byte(`{"b":"x"}`)})
	f.Add(good)
	f.Add([]byte{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 3, '{', ' ', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		docs, err := parseBatch(b)
		if err != nil {
			return
		}
		enc, err := marshalBatch(docs)
		if err != nil {
			t.Fatalf("parsed batch does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("round trip: %x → %x", b, enc)
		}
	})
}

// FuzzParseReason: no panic, and what parses is what the sender would print.
func FuzzParseReason(f *testing.F) {
	f.Add([]byte("too many documents"))
	f.Add([]byte("a\nb"))
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseReason(b)
		if err != nil {
			return
		}
		if s != string(b) || !bytes.Equal(reason(errString(s)), b) {
			t.Fatalf("reason %q does not round-trip", b)
		}
	})
}

type errString string

func (e errString) Error() string { return string(e) }
