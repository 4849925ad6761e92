package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func testInvite(t testing.TB) *Invite {
	t.Helper()
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	sk, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	inv := &Invite{Peer: id, Expires: time.Unix(1_800_000_000, 0)}
	for _, s := range []string{"/ip4/192.168.1.20/tcp/4747", "/ip4/192.168.1.20/udp/4747/quic-v1"} {
		inv.Addrs = append(inv.Addrs, ma.StringCast(s))
	}
	copy(inv.Secret[:], "0123456789abcdef")
	return inv
}

func TestInviteRoundTrip(t *testing.T) {
	inv := testInvite(t)
	code, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("code (%d chars): %s", len(code), code)
	// Pasted in lower case, with line breaks and spaces: still the same invite.
	messy := strings.ToLower(strings.ReplaceAll(code, "-", " \n"))
	got, err := ParseInvite(messy)
	if err != nil {
		t.Fatal(err)
	}
	if got.Peer != inv.Peer || got.Secret != inv.Secret || !got.Expires.Equal(inv.Expires) || len(got.Addrs) != 2 || !got.Addrs[1].Equal(inv.Addrs[1]) {
		t.Fatalf("round trip changed the invite: %+v", got)
	}
}

func TestInviteTypo(t *testing.T) {
	code, err := testInvite(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Change every character in turn: each typo is refused with ErrBadInvite.
	for i := 0; i < len(code); i++ {
		if code[i] == '-' {
			continue
		}
		c := byte('A')
		if code[i] == 'A' {
			c = 'B'
		}
		typo := code[:i] + string(c) + code[i+1:]
		if _, err := ParseInvite(typo); !errors.Is(err, ErrBadInvite) {
			t.Fatalf("typo at %d accepted: %v", i, err)
		}
	}
	for _, bad := range []string{"", "hello world", code[:len(code)-3], code + "AAAA", "!!"} {
		if _, err := ParseInvite(bad); !errors.Is(err, ErrBadInvite) {
			t.Errorf("ParseInvite(%q) = %v, want ErrBadInvite", bad, err)
		}
	}
}

func TestFrameCap(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, TypeEnd, (&End{Sent: 3}).Marshal()); err != nil {
		t.Fatal(err)
	}
	typ, body, err := ReadFrame(&buf, MaxFrame)
	if err != nil || typ != TypeEnd {
		t.Fatalf("read back: %v %v", typ, err)
	}
	if e, err := UnmarshalEnd(body); err != nil || e.Sent != 3 {
		t.Fatalf("end: %+v %v", e, err)
	}
	// A length prefix of 1 GiB is refused before the body is read.
	huge := []byte{0x40, 0, 0, 0, byte(TypeBatch)}
	if _, _, err := ReadFrame(bytes.NewReader(huge), MaxFrame); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge frame: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 100, 'E', 1}), MaxFrame); err == nil {
		t.Fatal("truncated frame accepted")
	}
}

func TestBatchRoundTrip(t *testing.T) {
	m := &Batch{From: 5, To: 9, Envelopes: [][]byte{[]byte("one"), bytes.Repeat([]byte{9}, 300)}}
	got, err := UnmarshalBatch(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got.From != 5 || got.To != 9 || len(got.Envelopes) != 2 || !bytes.Equal(got.Envelopes[1], m.Envelopes[1]) {
		t.Fatalf("got %+v", got)
	}
	// A count that claims more envelopes than there are bytes is refused before allocating.
	bad := append(make([]byte, 16), 0xff, 0xff, 0x03)
	if _, err := UnmarshalBatch(bad); err == nil {
		t.Fatal("absurd count accepted")
	}
}

func TestHelloRoundTrip(t *testing.T) {
	h := &Hello{Version: Version, KnownSeq: 7, LastSeq: 99, RootCount: 3, Horizon: 1767225600000, LastContact: -5,
		ResumeSnap: 5, ResumeAfter: [32]byte{7, 31: 8},
		Scope: [][8]byte{{1, 2}, {3}}, Roots: []TagRoot{{Tag: [8]byte{1}, Count: 5}, {Tag: [8]byte{0x80, 1}, Count: 1, FP: [32]byte{9}}}}
	h.Epoch[0], h.Proof[31], h.RootFP[5] = 1, 2, 3
	b := h.Marshal()
	if len(b) != helloSizeV5+3+16+2+96 {
		t.Fatalf("hello of %d bytes, want %d", len(b), helloSizeV5+3+16+2+96)
	}
	got, err := UnmarshalHello(b)
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("got %+v, %v", got, err)
	}
	// Lists that claim more than the bytes hold, or roots out of order, are refused.
	for _, cut := range []int{1, 48, 50} {
		if _, err := UnmarshalHello(b[:len(b)-cut]); err == nil {
			t.Errorf("hello cut by %d bytes accepted", cut)
		}
	}
	h.Roots[0], h.Roots[1] = h.Roots[1], h.Roots[0]
	if _, err := UnmarshalHello(h.Marshal()); err == nil {
		t.Error("roots out of order accepted")
	}
	// A version-4 hello (no resume cursor) still decodes: a version-5 node speaks it.
	v4 := *h
	v4.Version, v4.ResumeSnap, v4.ResumeAfter = 4, 0, [32]byte{}
	v4.Roots[0], v4.Roots[1] = v4.Roots[1], v4.Roots[0]
	if b := v4.Marshal(); len(b) != HelloSize+3+16+2+96 {
		t.Fatalf("version-4 hello of %d bytes", len(b))
	}
	if got, err := UnmarshalHello(v4.Marshal()); err != nil || !reflect.DeepEqual(got, &v4) {
		t.Fatalf("version 4: got %+v, %v", got, err)
	}
	// A version-5 hello without its cursor is refused.
	if _, err := UnmarshalHello(append([]byte{5}, v4.Marshal()[1:]...)); err == nil {
		t.Fatal("a version-5 hello of the version-4 length was accepted")
	}
	// A version-1 hello still decodes, so that the node can name the old version.
	old := &Hello{Version: 1, LastSeq: 4}
	got, err = UnmarshalHello(old.Marshal())
	if err != nil || !reflect.DeepEqual(got, old) {
		t.Fatalf("version 1: got %+v, %v", got, err)
	}
	// Each version has exactly one length.
	if _, err := UnmarshalHello(append([]byte{1}, make([]byte, HelloSize-1)...)); err == nil {
		t.Fatal("a version-1 hello of the version-2 length was accepted")
	}
	if _, err := UnmarshalHello(append([]byte{2}, make([]byte, helloSizeV1-1)...)); err == nil {
		t.Fatal("a version-2 hello of the version-1 length was accepted")
	}
}

// A batch built in place is, byte for byte, the frame of its marshalled form, at counts
// whose uvarint changes length, and again after its buffer is reused.
func TestBatchFrameEqualsMarshal(t *testing.T) {
	var f BatchFrame
	for _, n := range []int{0, 1, 127, 128, 300, 16384} {
		b := &Batch{From: uint64(n), To: uint64(3 * n)}
		f.Reset(64)
		for i := range n {
			e := bytes.Repeat([]byte{byte(i)}, 1+(i*37)%200)
			b.Envelopes = append(b.Envelopes, e)
			f.Add(e)
		}
		var want bytes.Buffer
		if err := WriteFrame(&want, TypeBatch, b.Marshal()); err != nil {
			t.Fatal(err)
		}
		got := f.Frame(b.From, b.To)
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%d envelopes: built frame differs from the marshalled one (%d vs %d bytes)", n, len(got), want.Len())
		}
		if f.Len() != n {
			t.Fatalf("Len %d, want %d", f.Len(), n)
		}
		var out bytes.Buffer
		if err := WriteFramed(&out, got); err != nil {
			t.Fatal(err)
		}
		typ, body, err := ReadFrame(&out, MaxFrame)
		if err != nil || typ != TypeBatch {
			t.Fatalf("read back: %v %c", err, typ)
		}
		back, err := UnmarshalBatch(body)
		if err != nil || back.From != b.From || back.To != b.To || len(back.Envelopes) != n {
			t.Fatalf("read back: %v", err)
		}
	}
	if err := WriteFramed(io.Discard, []byte{0, 0, 0, 9, 'E'}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a frame whose length prefix lies was written: %v", err)
	}
}

// firstRead records the size of the first buffer a reader is handed.
type firstRead struct {
	r     io.Reader
	first int
}

func (f *firstRead) Read(p []byte) (int, error) {
	if f.first == 0 {
		f.first = len(p)
	}
	return f.r.Read(p)
}

// A frame read into a spare buffer with room reuses it, whatever length the peer
// announced; one without room is read as ReadFrameAfter reads it; a body cut short is
// io.ErrUnexpectedEOF either way.
func TestReadFrameIntoSpare(t *testing.T) {
	body := bytes.Repeat([]byte{7}, 100_000)
	var enc bytes.Buffer
	if err := WriteFrame(&enc, TypeBatch, body); err != nil {
		t.Fatal(err)
	}
	spare := make([]byte, 200_000)
	typ, got, err := ReadFrameInto(bytes.NewReader(enc.Bytes()), MaxFrame, 0, spare)
	if err != nil || typ != TypeBatch || !bytes.Equal(got, body) || &got[0] != &spare[0] {
		t.Fatalf("with room: %c %d bytes, %v (into spare: %v)", typ, len(got), err, len(got) > 0 && &got[0] == &spare[0])
	}
	small := make([]byte, 10)
	typ, got, err = ReadFrameInto(bytes.NewReader(enc.Bytes()), MaxFrame, 0, small)
	if err != nil || typ != TypeBatch || !bytes.Equal(got, body) || &got[0] == &small[0] {
		t.Fatalf("without room: %c %d bytes, %v", typ, len(got), err)
	}
	for _, sp := range [][]byte{spare, nil} {
		_, _, err = ReadFrameInto(bytes.NewReader(enc.Bytes()[:50_000]), MaxFrame, 0, sp)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut short (spare %d): %v", len(sp), err)
		}
	}
	// The spare buffer is memory already held: the cap still refuses before reading.
	if _, _, err = ReadFrameInto(bytes.NewReader(enc.Bytes()), 1000, 0, spare); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the cap: %v", err)
	}
}

// A frame body is read into memory that grows with what arrived, except up to the size of
// a frame the stream already delivered in full.
func TestReadFrameAllocatesWhatArrivedOrWasProven(t *testing.T) {
	body := bytes.Repeat([]byte{1}, 1<<20)
	var enc bytes.Buffer
	if err := WriteFrame(&enc, TypeBatch, body); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ proven, most int }{{0, initialFrameBuf}, {4096, initialFrameBuf}, {2 << 20, 1<<20 + 1}} {
		fr := &firstRead{r: bytes.NewReader(enc.Bytes()[4:])}
		// The length prefix is read apart: hand it over, then the counted reader.
		r := io.MultiReader(bytes.NewReader(enc.Bytes()[:4]), fr)
		typ, got, err := ReadFrameAfter(r, MaxFrame, c.proven)
		if err != nil || typ != TypeBatch || !bytes.Equal(got, body) {
			t.Fatalf("proven %d: %v", c.proven, err)
		}
		if fr.first > c.most {
			t.Errorf("proven %d: the first read was handed %d bytes, more than %d", c.proven, fr.first, c.most)
		}
	}
}
