package cpace

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gtank/ristretto255"
)

// fuzzSeeds are messages on both sides of every decoder check: the draft's
// vector shares (valid, not an element, the identity), an AD at the limit, and
// the malformed shapes of TestDecodeMessage.
func fuzzSeeds() [][]byte {
	ya, _ := hexDecode("D6BAC480F2C386C394EFC7C47ADB9925DCD2630B64F240C50F8D0EEC482B9157")
	yi1, _ := hexDecode("2B3C6B8C4F3800E7AEF6864025B4ED79BD599117E427C41BD47D93D654B4A51C")
	base := ristretto255.NewElement().Base().Encode(nil)
	return [][]byte{
		lvCat(ya, []byte("ADa")),
		lvCat(ya, nil),
		lvCat(yi1, []byte("ADb")),
		lvCat(make([]byte, ShareLen), nil),
		lvCat(base, bytes.Repeat([]byte("x"), MaxADLen)),
		lvCat(base, bytes.Repeat([]byte("x"), MaxADLen+1)),
		append(append([]byte{0x20}, base...), 0x80, 0x00),
		append(lvCat(base, nil), 0),
		{0x20},
		nil,
	}
}

// FuzzDecodeMessage checks that the decoder never panics, never returns slices
// outside its input, and is canonical: whatever it accepts encodes back to the
// very same bytes, so a message has one encoding only (no malleability).
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		y, ad, err := DecodeMessage(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if len(y) != ShareLen || len(ad) > MaxADLen {
			t.Fatalf("accepted share of %d bytes, AD of %d", len(y), len(ad))
		}
		if re := encodeMessage(y, ad); !bytes.Equal(re, msg) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", msg, re)
		}
	})
}

// FuzzFinish feeds arbitrary peer messages to a responder built from the draft's
// vector inputs. Finish must never panic, must refuse with one of its sentinels,
// and may accept only a message whose share is a valid, non-identity element;
// then it returns a 64-byte key and the peer's AD.
func FuzzFinish(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	yb, _ := hexDecode("D2316B454718C35362D83D69DF6320F38578ED5984651435E2949762D900B80D")
	in := Inputs{PRS: []byte("Password"), CI: []byte("\x0bA_initiator\x0bB_responder"), SID: []byte("sid"), AD: []byte("ADb")}
	f.Fuzz(func(t *testing.T, msg []byte) {
		st, _, err := start(Responder, in, scalarFromLE(yb))
		if err != nil {
			t.Fatal(err)
		}
		isk, peerAD, err := st.Finish(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidPoint) {
				t.Fatalf("unexpected error %v", err)
			}
			if isk != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		y, ad, derr := DecodeMessage(msg)
		if derr != nil {
			t.Fatalf("Finish accepted what DecodeMessage refuses: %v", derr)
		}
		p := ristretto255.NewElement()
		if p.Decode(y) != nil || p.Equal(ristretto255.NewElement()) == 1 {
			t.Fatalf("Finish accepted share %x", y)
		}
		if len(isk) != ISKLen || !bytes.Equal(peerAD, ad) {
			t.Fatalf("key of %d bytes, AD %q for %q", len(isk), peerAD, ad)
		}
	})
}
