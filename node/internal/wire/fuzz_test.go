package wire

import (
	"bytes"
	"testing"
)

// FuzzFrame feeds arbitrary bytes to the frame reader and every message decoder, and
// checks that what decodes encodes back to the same bytes.
func FuzzFrame(f *testing.F) {
	var buf bytes.Buffer
	WriteFrame(&buf, TypeBatch, (&Batch{From: 1, To: 2, Envelopes: [][]byte{[]byte("x")}}).Marshal())
	f.Add(buf.Bytes())
	buf.Reset()
	WriteFrame(&buf, TypeHello, (&Hello{Version: 1, LastSeq: 4}).Marshal())
	f.Add(buf.Bytes())
	buf.Reset()
	WriteFrame(&buf, TypeHello, (&Hello{Version: Version, LastSeq: 4, Horizon: 1 << 40, LastContact: 1 << 41}).Marshal())
	f.Add(buf.Bytes())
	buf.Reset()
	WriteFrame(&buf, TypeHello, (&Hello{Version: Version, Scope: [][8]byte{{1}}, Roots: []TagRoot{{Tag: [8]byte{1}, Count: 2}, {Tag: [8]byte{0x80}}}}).Marshal())
	f.Add(buf.Bytes())
	buf.Reset()
	WriteFrame(&buf, TypeHello, (&Hello{Version: 4, Scope: [][8]byte{{1}}, Roots: []TagRoot{{Tag: [8]byte{1}, Count: 2}}}).Marshal())
	f.Add(buf.Bytes())
	buf.Reset()
	WriteFrame(&buf, TypeHello, (&Hello{Version: Version, KnownEpoch: [16]byte{1}, ResumeSnap: 9, ResumeAfter: [32]byte{0x80}, ScopeAll: true}).Marshal())
	f.Add(buf.Bytes())
	buf.Reset()
	WriteFrame(&buf, TypeDone, (&Done{Applied: 1}).Marshal())
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 3, 'A', 1, 2})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, body, err := ReadFrame(bytes.NewReader(data), 1<<16)
		// Read into a spare buffer (a receiver's recycled frame), the same bytes give the
		// same frame or the same refusal.
		spare := make([]byte, 1<<16)
		styp, sbody, serr := ReadFrameInto(bytes.NewReader(data), 1<<16, 0, spare)
		if (err == nil) != (serr == nil) || err == nil && (styp != typ || !bytes.Equal(sbody, body)) {
			t.Fatalf("into a spare buffer: %c %x %v, allocated: %c %x %v", styp, sbody, serr, typ, body, err)
		}
		if serr == nil && len(sbody) > 0 && &sbody[0] != &spare[0] {
			t.Fatalf("a body of %d bytes was not read into the spare buffer of %d", len(sbody), len(spare))
		}
		if err != nil {
			return
		}
		var re []byte
		switch typ {
		case TypeHello:
			if m, err := UnmarshalHello(body); err == nil {
				re = m.Marshal()
			}
		case TypeBatch:
			if m, err := UnmarshalBatch(body); err == nil {
				re = m.Marshal()
			}
		case TypeEnd:
			if m, err := UnmarshalEnd(body); err == nil {
				re = m.Marshal()
			}
		case TypeDone:
			if m, err := UnmarshalDone(body); err == nil {
				re = m.Marshal()
			}
		case TypeAck:
			if m, err := UnmarshalAck(body); err == nil {
				re = m.Marshal()
			}
		case TypePushOpen:
			if m, err := UnmarshalPushOpen(body); err == nil {
				re = m.Marshal()
			}
		default:
			return
		}
		if re != nil && !bytes.Equal(re, body) {
			t.Fatalf("type %c: decode→encode changed the bytes:\n%x\n%x", typ, body, re)
		}
	})
}

// FuzzInvite feeds arbitrary text to the invite decoder; a decoded invite must encode to
// binary that decodes to the same invite.
func FuzzInvite(f *testing.F) {
	inv := testInvite(f)
	code, _ := inv.Encode()
	f.Add(code)
	f.Add("")
	f.Add("AAAA-BBBB")
	f.Add(code[:20])
	f.Fuzz(func(t *testing.T, code string) {
		inv, err := ParseInvite(code)
		if err != nil {
			return
		}
		b, err := inv.Marshal()
		if err != nil {
			t.Fatalf("decoded invite does not encode: %v", err)
		}
		again, err := UnmarshalInvite(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		b2, _ := again.Marshal()
		if !bytes.Equal(b, b2) {
			t.Fatal("encode is not stable")
		}
		text, err := inv.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseInvite(text); err != nil {
			t.Fatalf("own code refused: %v", err)
		}
	})
}
