package cpace

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gtank/ristretto255"
)

const testProto = "/meshsync/pair-short/1.0.0"

var (
	joinerID  = []byte("\x00\x24\x08\x01\x12\x20joiner-peer-id-multihash-bytes!!")
	inviterID = []byte("\x00\x24\x08\x01\x12\x20inviter-peer-id-multihash-bytes!")
)

// run plays one full exchange and returns both sides' keys and errors.
func run(t *testing.T, a, b Inputs) (iskA, iskB []byte, errA, errB error) {
	t.Helper()
	stA, msgA, err := Start(Initiator, a, rand.Reader)
	if err != nil {
		t.Fatalf("Start initiator: %v", err)
	}
	stB, msgB, err := Start(Responder, b, rand.Reader)
	if err != nil {
		t.Fatalf("Start responder: %v", err)
	}
	iskA, _, errA = stA.Finish(msgB)
	iskB, _, errB = stB.Finish(msgA)
	return iskA, iskB, errA, errB
}

func inputs(code string, bind Binding, ad string) Inputs {
	return Inputs{PRS: []byte(code), CI: bind.CI, SID: bind.SID, AD: []byte(ad)}
}

func TestRoundTrip(t *testing.T) {
	bind := Bind(testProto, joinerID, inviterID, nil)
	code := "4-gravity-orbit-lantern"

	// Same password, same binding: one key, 64 bytes, each side sees the other's AD.
	stA, msgA, err := Start(Initiator, inputs(code, bind, "v1 joiner"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stB, msgB, err := Start(Responder, inputs(code, bind, "v1 inviter"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgA) > MaxMessageLen || len(msgB) > MaxMessageLen {
		t.Fatalf("message lengths %d, %d over MaxMessageLen", len(msgA), len(msgB))
	}
	iskA, adB, err := stA.Finish(msgB)
	if err != nil {
		t.Fatal(err)
	}
	iskB, adA, err := stB.Finish(msgA)
	if err != nil {
		t.Fatal(err)
	}
	if len(iskA) != ISKLen || !bytes.Equal(iskA, iskB) {
		t.Fatalf("keys differ or wrong length:\n%x\n%x", iskA, iskB)
	}
	if string(adB) != "v1 inviter" || string(adA) != "v1 joiner" {
		t.Errorf("peer AD: A saw %q, B saw %q", adB, adA)
	}

	// Fresh scalars every run: same inputs, new key.
	again, _, errA, errB := run(t, inputs(code, bind, ""), inputs(code, bind, ""))
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if bytes.Equal(again, iskA) {
		t.Error("two runs gave the same key")
	}
}

// Every input that the draft says both sides must share changes the key when
// only one side has it different; nothing errors, the keys just disagree (key
// confirmation, outside this package, turns that into a failed attempt).
func TestMismatchGivesDifferentKeys(t *testing.T) {
	bind := Bind(testProto, joinerID, inviterID, nil)
	good := inputs("4-gravity-orbit-lantern", bind, "")
	cases := []struct {
		name string
		b    Inputs
	}{
		{"wrong password", inputs("4-gravity-orbit-lanterm", bind, "")},
		{"wrong nameplate", inputs("5-gravity-orbit-lantern", bind, "")},
		{"other CI (relay to a third peer)", inputs("4-gravity-orbit-lantern",
			Bind(testProto, joinerID, []byte("some-other-peer"), nil), "")},
		{"roles swapped in CI", inputs("4-gravity-orbit-lantern",
			Bind(testProto, inviterID, joinerID, nil), "")},
		{"other protocol in sid", inputs("4-gravity-orbit-lantern",
			Bind("/meshsync/pair-short/2.0.0", joinerID, inviterID, nil), "")},
		{"other nonce in sid", inputs("4-gravity-orbit-lantern",
			Bind(testProto, joinerID, inviterID, []byte("n")), "")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			iskA, iskB, errA, errB := run(t, good, c.b)
			if errA != nil || errB != nil {
				t.Fatalf("errors: %v, %v", errA, errB)
			}
			if bytes.Equal(iskA, iskB) {
				t.Fatal("same key despite the mismatch")
			}
		})
	}

	// Both sides claiming the same role put the transcript in different orders.
	t.Run("both initiators", func(t *testing.T) {
		stA, msgA, _ := Start(Initiator, good, rand.Reader)
		stB, msgB, _ := Start(Initiator, good, rand.Reader)
		iskA, _, errA := stA.Finish(msgB)
		iskB, _, errB := stB.Finish(msgA)
		if errA != nil || errB != nil || bytes.Equal(iskA, iskB) {
			t.Fatalf("two initiators agreed: %v %v", errA, errB)
		}
	})
}

// A man in the middle who changes the initiator's message in flight either has
// it refused or leaves the two sides with different keys, whichever bit it flips.
func TestTamperedMessage(t *testing.T) {
	bind := Bind(testProto, joinerID, inviterID, nil)
	in := inputs("4-gravity-orbit-lantern", bind, "ad")
	msgLen := len(lvCat(make([]byte, ShareLen), in.AD))

	// exchange runs one initiator and one responder, the responder seeing the
	// initiator's message through edit. errB is the responder's Finish error.
	exchange := func(edit func([]byte) []byte) (iskA, iskB []byte, errB error) {
		stA, msgA, err := Start(Initiator, in, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		stB, msgB, err := Start(Responder, in, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		iskB, _, errB = stB.Finish(edit(bytes.Clone(msgA)))
		iskA, _, errA := stA.Finish(msgB)
		if errA != nil {
			t.Fatalf("initiator: %v", errA)
		}
		return iskA, iskB, errB
	}

	refused, accepted := 0, 0
	for i := range msgLen {
		for _, mask := range []byte{0x01, 0x80} {
			iskA, iskB, err := exchange(func(m []byte) []byte { m[i] ^= mask; return m })
			switch {
			case err == nil:
				accepted++
				if bytes.Equal(iskA, iskB) {
					t.Errorf("byte %d ^ %#x: keys still agree", i, mask)
				}
			case errors.Is(err, ErrMalformed), errors.Is(err, ErrInvalidPoint):
				refused++
			default:
				t.Errorf("byte %d ^ %#x: unexpected error %v", i, mask, err)
			}
		}
	}
	if refused == 0 || accepted == 0 {
		t.Errorf("refused %d, accepted %d: expected some of each", refused, accepted)
	}

	// Substitutions that keep the message well-formed.
	for _, c := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"share replaced by another valid share", func(m []byte) []byte {
			other := ristretto255.NewElement().FromUniformBytes(bytes.Repeat([]byte{7}, 64)).Encode(nil)
			return lvCat(other, in.AD)
		}},
		{"share replaced by the generator of ristretto255", func(m []byte) []byte {
			return lvCat(ristretto255.NewElement().Base().Encode(nil), in.AD)
		}},
		{"AD changed", func(m []byte) []byte { return lvCat(m[1:1+ShareLen], []byte("AD")) }},
		{"AD dropped", func(m []byte) []byte { return lvCat(m[1:1+ShareLen], nil) }},
	} {
		iskA, iskB, err := exchange(c.edit)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if bytes.Equal(iskA, iskB) {
			t.Errorf("%s: keys still agree", c.name)
		}
	}
}

func TestFinishIsSingleUse(t *testing.T) {
	bind := Bind(testProto, joinerID, inviterID, nil)
	in := inputs("code", bind, "")
	stA, _, _ := Start(Initiator, in, rand.Reader)
	_, msgB, _ := Start(Responder, in, rand.Reader)
	if _, _, err := stA.Finish(msgB); err != nil {
		t.Fatal(err)
	}
	if _, _, err := stA.Finish(msgB); !errors.Is(err, ErrUsed) {
		t.Errorf("second Finish: %v, want ErrUsed", err)
	}

	// A failed Finish spends the state too: no second guess on one scalar.
	stA, _, _ = Start(Initiator, in, rand.Reader)
	if _, _, err := stA.Finish([]byte("junk")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("junk: %v", err)
	}
	if _, _, err := stA.Finish(msgB); !errors.Is(err, ErrUsed) {
		t.Errorf("Finish after a failure: %v, want ErrUsed", err)
	}

	var nilState *State
	if _, _, err := nilState.Finish(msgB); !errors.Is(err, ErrUsed) {
		t.Errorf("nil state: %v", err)
	}
}

func TestStartRefusesBadInput(t *testing.T) {
	bind := Bind(testProto, joinerID, inviterID, nil)
	for _, c := range []struct {
		name string
		role Role
		in   Inputs
	}{
		{"no role", 0, inputs("code", bind, "")},
		{"unknown role", 3, inputs("code", bind, "")},
		{"empty password", Initiator, inputs("", bind, "")},
		{"AD too long", Responder, inputs("code", bind, strings.Repeat("x", MaxADLen+1))},
	} {
		if _, _, err := Start(c.role, c.in, rand.Reader); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: %v, want ErrInvalidInput", c.name, err)
		}
	}
	// AD of exactly MaxADLen is fine and its message decodes.
	_, msg, err := Start(Initiator, inputs("code", bind, strings.Repeat("x", MaxADLen)), rand.Reader)
	if err != nil || len(msg) != MaxMessageLen {
		t.Fatalf("max AD: %d bytes, %v", len(msg), err)
	}
	if _, _, err := DecodeMessage(msg); err != nil {
		t.Errorf("max AD message: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestSampleScalar(t *testing.T) {
	bind := Bind(testProto, joinerID, inviterID, nil)
	if _, _, err := Start(Initiator, inputs("code", bind, ""), errReader{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("failing rand: %v", err)
	}
	if _, _, err := Start(Initiator, inputs("code", bind, ""), bytes.NewReader(make([]byte, 32))); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("zero rand: %v", err)
	}
	// The bits above 252 are cleared: all-ones input gives 2^252 - 1.
	s, err := sampleScalar(bytes.NewReader(bytes.Repeat([]byte{0xff}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte{0xff}, 31), 0x0f)
	checkBytes(t, "sample_scalar(ff…ff)", s.Encode(nil), want)
	// Only the 252 low bits of the 32 random bytes are used.
	s2, _ := sampleScalar(bytes.NewReader(append(bytes.Repeat([]byte{0xff}, 31), 0x0f)))
	if s.Equal(s2) != 1 {
		t.Error("top nibble not ignored")
	}
}

func TestBind(t *testing.T) {
	b := Bind(testProto, joinerID, inviterID, nil)
	checkBytes(t, "CI", b.CI, lvCat(joinerID, inviterID))
	if len(b.SID) != SIDLen {
		t.Fatalf("sid length %d", len(b.SID))
	}
	// Deterministic, and every input matters, with no ambiguity between fields.
	if !bytes.Equal(Bind(testProto, joinerID, inviterID, nil).SID, b.SID) {
		t.Error("Bind not deterministic")
	}
	for name, other := range map[string]Binding{
		"protocol":  Bind(testProto+"x", joinerID, inviterID, nil),
		"swapped":   Bind(testProto, inviterID, joinerID, nil),
		"nonce":     Bind(testProto, joinerID, inviterID, []byte{0}),
		"boundary":  Bind(testProto, append(bytes.Clone(joinerID), inviterID[0]), inviterID[1:], nil),
		"responder": Bind(testProto, joinerID, joinerID, nil),
	} {
		if bytes.Equal(other.SID, b.SID) {
			t.Errorf("%s: same sid", name)
		}
	}
	if bytes.Equal(Bind(testProto, inviterID, joinerID, nil).CI, b.CI) {
		t.Error("CI does not depend on the roles")
	}
}

func TestDecodeMessage(t *testing.T) {
	share := bytes.Repeat([]byte{1}, ShareLen)
	good := lvCat(share, []byte("ad"))
	if y, ad, err := DecodeMessage(good); err != nil || !bytes.Equal(y, share) || string(ad) != "ad" {
		t.Fatalf("good message: %x %q %v", y, ad, err)
	}
	for _, c := range []struct {
		name string
		msg  []byte
	}{
		// Truncation anywhere.
		{"empty", nil},
		{"length only", []byte{0x20}},
		{"short share", lvCat(share[:31], nil)},
		{"no AD length", good[:1+ShareLen]},
		{"AD cut short", good[:len(good)-1]},
		// Lengths other than the one encoding Start produces.
		{"long share", lvCat(append(bytes.Clone(share), 0), nil)},
		{"non-minimal share length", append([]byte{0xa0, 0x00}, append(bytes.Clone(share), 0)...)},
		{"non-minimal AD length", append(append([]byte{0x20}, share...), 0x80, 0x00)},
		{"AD over the limit", lvCat(share, make([]byte, MaxADLen+1))},
		{"huge AD length", append(append([]byte{0x20}, share...), 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"overlong varint", append(append([]byte{0x20}, share...), bytes.Repeat([]byte{0x80}, 11)...)},
		// Anything after the AD.
		{"trailing byte", append(bytes.Clone(good), 0)},
	} {
		if _, _, err := DecodeMessage(c.msg); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", c.name, err)
		}
	}
}
