package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
)

func testEnvelope() *Envelope {
	e := &Envelope{
		ID:       merkle.ID{1, 2, 3},
		KeyEpoch: 0,
		Version: resolve.Version{Device: "aaaa", Clock: resolve.MakeTimestamp(1700000000000, 3),
			VV: resolve.VersionVector{"aaaa": 2, "bbbb": 7}},
		Ciphertext: bytes.Repeat([]byte{9}, 40),
	}
	e.Nonce[0] = 5
	return e
}

func TestEnvelopeEncoding(t *testing.T) {
	good, err := testEnvelope().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	e, err := UnmarshalEnvelope(good)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := e.MarshalBinary()
	if !bytes.Equal(good, again) {
		t.Fatal("decode then encode changed the bytes")
	}
	mutate := func(f func(e *Envelope)) []byte {
		e := testEnvelope()
		f(e)
		b, _ := e.MarshalBinary()
		return b
	}
	cases := []struct {
		name string
		in   []byte
		err  error
	}{
		// Framing.
		{"empty", nil, ErrMalformed},
		{"unknown format", append([]byte{9}, good[1:]...), ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"trailing byte", append(bytes.Clone(good), 0), ErrMalformed},
		{"too large", make([]byte, MaxEnvelopeSize+1), ErrTooLarge},
		// Version rules.
		{"empty device", mutate(func(e *Envelope) { e.Version.Device = "" }), ErrMalformed},
		{"own device not counted", mutate(func(e *Envelope) { e.Version.Device = "cccc" }), ErrMalformed},
		{"short ciphertext", mutate(func(e *Envelope) { e.Ciphertext = e.Ciphertext[:3] }), ErrMalformed},
	}
	for _, c := range cases {
		if _, err := UnmarshalEnvelope(c.in); !errors.Is(err, c.err) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.err)
		}
	}
	// A non-canonical vector (unsorted entries) is refused: hand-build one by swapping.
	swapped := bytes.Replace(good, []byte("\x04aaaa\x02\x04bbbb\x07"), []byte("\x04bbbb\x07\x04aaaa\x02"), 1)
	if bytes.Equal(swapped, good) {
		t.Fatal("test setup: vector bytes not found")
	}
	if _, err := UnmarshalEnvelope(swapped); !errors.Is(err, ErrMalformed) {
		t.Errorf("unsorted vector accepted: %v", err)
	}
}

func FuzzEnvelope(f *testing.F) {
	good, _ := testEnvelope().MarshalBinary()
	f.Add(good)
	tagged := testEnvelope()
	tagged.Tag = Tag{0x81, 2}
	tb, _ := tagged.MarshalBinary()
	f.Add(tb)
	f.Add([]byte{1})
	f.Add(good[:50])
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := UnmarshalEnvelope(b)
		if err != nil {
			return
		}
		again, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode/encode not canonical:\n in %x\nout %x", b, again)
		}
		// The associated data cut from the received bytes is the one encoded.
		aliased, err := unmarshalEnvelope(b, true)
		if err != nil {
			t.Fatalf("decodes only without alias: %v", err)
		}
		if got, want := aliased.aad(), e.appendHeader(nil); !bytes.Equal(got, want) {
			t.Fatalf("associated data from the received header %x, encoded %x", got, want)
		}
		// Decoded as a prepared batch decodes (device ids interned, names already held
		// from another envelope), it is the same envelope.
		names := deviceNames{"a", "dev-1"}
		var interned Envelope
		if err := unmarshalEnvelopeInto(&interned, b, true, &names); err != nil {
			t.Fatalf("decodes only without interned names: %v", err)
		}
		if got, _ := interned.MarshalBinary(); !bytes.Equal(got, b) {
			t.Fatalf("with interned names:\n in %x\nout %x", b, got)
		}
	})
}

func FuzzPayload(f *testing.F) {
	p := &payload{Collection: "c", Key: "k", Value: resolve.Value{Kind: resolve.KindJSON, Data: []byte(`{"a":1}`)}}
	b, _ := p.marshal()
	f.Add(b)
	p.Sig = bytes.Repeat([]byte{7}, 64) // a signed one (format 2)
	b, _ = p.marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := unmarshalPayload(b)
		if err != nil {
			return
		}
		again, err := p.marshal()
		if err != nil {
			return // e.g. fields that do not re-encode within limits
		}
		if _, err := unmarshalPayload(again); err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
	})
}

func TestPadme(t *testing.T) {
	for n := 1; n < 70000; n++ {
		p := padme(n)
		if p < n || float64(p-n) > 0.12*float64(n)+1 {
			t.Fatalf("padme(%d) = %d", n, p)
		}
		b := appendPadding(make([]byte, n))
		if len(b) != padme(len(b)) && len(b) < n {
			t.Fatalf("padding of %d gave %d", n, len(b))
		}
	}
}

// TestSealBinding: a ciphertext moved to another id, version, epoch or mesh fails to open.
func TestSealBinding(t *testing.T) {
	k := newKeyring(bytes.Repeat([]byte{1}, 32))
	other := newKeyring(bytes.Repeat([]byte{2}, 32))
	id := k.recordID("c", "k")
	v := resolve.Version{Device: "aaaa", Clock: 5, VV: resolve.VersionVector{"aaaa": 1}}
	e, err := k.seal(id, v, &payload{Collection: "c", Key: "k", Value: resolve.Value{Kind: resolve.KindJSON, Data: []byte(`1`)}})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := k.open(e); err != nil || p.Key != "k" {
		t.Fatalf("open: %v", err)
	}
	e2, _ := k.seal(k.recordID("c", "other"), v, &payload{Collection: "c", Key: "other", Value: resolve.Value{Kind: resolve.KindJSON, Data: []byte(`2`)}})
	moves := map[string]func(x *Envelope){
		"other id":      func(x *Envelope) { x.ID = e2.ID },
		"other clock":   func(x *Envelope) { x.Version.Clock++ },
		"other vector":  func(x *Envelope) { x.Version.VV = resolve.VersionVector{"aaaa": 2} },
		"other device":  func(x *Envelope) { x.Version.Device = "bbbb"; x.Version.VV = resolve.VersionVector{"bbbb": 1} },
		"flipped byte":  func(x *Envelope) { x.Ciphertext = bytes.Clone(x.Ciphertext); x.Ciphertext[3] ^= 1 },
		"swapped bytes": func(x *Envelope) { x.Ciphertext = e2.Ciphertext; x.Nonce = e2.Nonce },
	}
	for name, f := range moves {
		x := *e
		x.Version.VV = e.Version.VV.Clone()
		f(&x)
		if _, err := k.open(&x); !errors.Is(err, ErrTampered) {
			t.Errorf("%s: open = %v, want ErrTampered", name, err)
		}
	}
	// Swapping whole envelopes between ids is caught by the id check inside the payload.
	x := *e2
	x.ID = e.ID
	if _, err := k.open(&x); !errors.Is(err, ErrTampered) {
		t.Errorf("moved envelope: %v", err)
	}
	if _, err := other.open(e); !errors.Is(err, ErrTampered) {
		t.Errorf("other mesh opens: %v", err)
	}
	x = *e
	x.KeyEpoch = 3
	if _, err := k.open(&x); !errors.Is(err, ErrUnknownKeyEpoch) {
		t.Errorf("unknown epoch: %v", err)
	}
}

// Device ids are interned up to maxDeviceNames: a name seen again is the string held,
// and a batch naming more devices still decodes each name.
func TestDeviceNamesIntern(t *testing.T) {
	var names deviceNames
	a := names.str([]byte("device-a"))
	if b := names.str([]byte("device-a")); b != a || unsafe.StringData(b) != unsafe.StringData(a) {
		t.Fatalf("a name seen again is a new string")
	}
	for i := range 3 * maxDeviceNames {
		if got, want := names.str([]byte(fmt.Sprint("d", i))), fmt.Sprint("d", i); got != want {
			t.Fatalf("name %d reads %q", i, got)
		}
	}
	if len(names) != maxDeviceNames {
		t.Fatalf("%d names kept, want at most %d", len(names), maxDeviceNames)
	}
	var none *deviceNames
	if got := none.str([]byte("x")); got != "x" {
		t.Fatalf("without interning: %q", got)
	}
}
