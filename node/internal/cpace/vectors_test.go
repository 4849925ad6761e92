package cpace

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/gtank/ristretto255"
)

// The files in testdata are the draft's own machine-readable vectors (the base64
// JSON blocks of its appendix, decoded, keys as the draft names them), plus the
// intermediate ISK inputs that the draft prints only in its text. The "source"
// field of each file names the draft revision.

func loadVectors(t *testing.T, name string) map[string]json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// hexFields decodes one JSON object of the vectors whose values are hex strings;
// values that are not strings (H.s_in_bytes, ZPAD length) are skipped.
func hexFields(t *testing.T, raw json.RawMessage) map[string][]byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for k, v := range m {
		s, ok := v.(string)
		if !ok || k == "H" || k == "note" {
			continue
		}
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("field %q: %v", k, err)
		}
		out[k] = b
	}
	return out
}

// field returns the named value and fails the test if the vectors lack it, so a
// renamed key cannot silently skip a check.
func field(t *testing.T, m map[string][]byte, key string) []byte {
	t.Helper()
	v, ok := m[key]
	if !ok {
		t.Fatalf("vector %q missing", key)
	}
	return v
}

func checkBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %x\nwant %x", what, got, want)
	}
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// oCat and transcriptOC are the draft's ordered concatenation for the symmetric
// setting. The package runs only the initiator-responder setting; these exist to
// check the draft's parallel-execution vectors too, which exercise the same K and
// ISK hash with another transcript.
func oCat(a, b []byte) []byte {
	if bytes.Compare(a, b) > 0 { // lexiographically_larger(a, b)
		return append(append([]byte("oc"), a...), b...)
	}
	return append(append([]byte("oc"), b...), a...)
}

func transcriptOC(ya, ada, yb, adb []byte) []byte {
	return oCat(lvCat(ya, ada), lvCat(yb, adb))
}

func TestStringUtilityVectors(t *testing.T) {
	v := loadVectors(t, "string-utils.json")

	pl := hexFields(t, v["prepend_len"])
	checkBytes(t, "prepend_len(b'')", prependLen(nil), field(t, pl, "prepend_len(b'')"))
	checkBytes(t, "prepend_len(b'1234')", prependLen([]byte("1234")), field(t, pl, "prepend_len(b'1234')"))
	checkBytes(t, "prepend_len(range 127)", prependLen(seq(127)), field(t, pl, "prepend_len(bytes(range(127)))"))
	checkBytes(t, "prepend_len(range 128)", prependLen(seq(128)), field(t, pl, "prepend_len(bytes(range(128)))"))

	lv := hexFields(t, v["lv_cat"])
	checkBytes(t, "lv_cat", lvCat([]byte("1234"), []byte("5"), nil, []byte("678")),
		field(t, lv, "lv_cat(b'1234',b'5',b'',b'678')"))

	oc := hexFields(t, v["o_cat"])
	checkBytes(t, "o_cat(ABCD,BCD)", oCat([]byte("ABCD"), []byte("BCD")), field(t, oc, "o_cat(b'ABCD',b'BCD')"))
	checkBytes(t, "o_cat(BCD,ABCDE)", oCat([]byte("BCD"), []byte("ABCDE")), field(t, oc, "o_cat(b'BCD',b'ABCDE')"))
	// The draft's lexiographically_larger table: bytes.Compare agrees on all rows.
	for _, c := range []struct {
		a, b   string
		larger bool
	}{
		{"\x00", "\x00\x00", false},
		{"\x01", "\x00\x00", true},
		{"\x00\x00", "\x00", true},
		{"\x00\x00", "\x01", false},
		{"\x00\x01", "\x01", false},
		{"ABCD", "BCD", false},
	} {
		if got := bytes.Compare([]byte(c.a), []byte(c.b)) > 0; got != c.larger {
			t.Errorf("lexiographically_larger(%q, %q) = %v, want %v", c.a, c.b, got, c.larger)
		}
	}

	ir := hexFields(t, v["transcript_ir"])
	checkBytes(t, "transcript_ir 1",
		transcriptIR([]byte("123"), []byte("PartyA"), []byte("234"), []byte("PartyB")),
		field(t, ir, "transcript_ir(b'123',b'PartyA',b'234',b'PartyB')"))
	checkBytes(t, "transcript_ir 2",
		transcriptIR([]byte("3456"), []byte("PartyA"), []byte("2345"), []byte("PartyB")),
		field(t, ir, "transcript_ir(b'3456',b'PartyA',b'2345',b'PartyB')"))

	toc := hexFields(t, v["transcript_oc"])
	checkBytes(t, "transcript_oc 1",
		transcriptOC([]byte("123"), []byte("PartyA"), []byte("234"), []byte("PartyB")),
		field(t, toc, "transcript_oc(b'123',b'PartyA',b'234',b'PartyB')"))
	checkBytes(t, "transcript_oc 2",
		transcriptOC([]byte("3456"), []byte("PartyA"), []byte("2345"), []byte("PartyB")),
		field(t, toc, "transcript_oc(b'3456',b'PartyA',b'2345',b'PartyB')"))
}

func TestGeneratorVector(t *testing.T) {
	v := loadVectors(t, "ristretto255-sha512.json")
	var meta struct {
		SInBytes int `json:"H.s_in_bytes"`
		ZPAD     int `json:"ZPAD length"`
	}
	if err := json.Unmarshal(v["calculate_generator"], &meta); err != nil {
		t.Fatal(err)
	}
	g := hexFields(t, v["calculate_generator"])
	prs, ci, sid := field(t, g, "PRS"), field(t, g, "CI"), field(t, g, "sid")

	if meta.SInBytes != hashBlockLen {
		t.Fatalf("vector s_in_bytes %d, SHA-512 block %d", meta.SInBytes, hashBlockLen)
	}
	checkBytes(t, "DSI", []byte(dsi), field(t, g, "DSI"))

	gs := generatorString([]byte(dsi), prs, ci, sid, hashBlockLen)
	checkBytes(t, "generator_string", gs, field(t, g, "generator_string(G.DSI,PRS,CI,sid,H.s_in_bytes)"))
	// The zero padding sits after prepend_len(DSI) and prepend_len(PRS).
	zpadLen := len(gs) - len(lvCat([]byte(dsi), prs, nil, ci, sid))
	if zpadLen != meta.ZPAD {
		t.Errorf("ZPAD length %d, want %d", zpadLen, meta.ZPAD)
	}

	checkBytes(t, "hash result", generatorHash(prs, ci, sid), field(t, g, "hash result"))
	checkBytes(t, "encoded generator g", calculateGenerator(prs, ci, sid).Encode(nil), field(t, g, "encoded generator g"))
}

func TestProtocolVector(t *testing.T) {
	v := loadVectors(t, "ristretto255-sha512.json")
	p := hexFields(t, v["protocol"])
	irText := hexFields(t, v["isk_ir_text"])
	ocText := hexFields(t, v["isk_oc_text"])

	prs, ci, sid := field(t, p, "PRS"), field(t, p, "CI"), field(t, p, "sid")
	ada, adb := field(t, p, "ADa"), field(t, p, "ADb")
	wantYa, wantYb, wantK := field(t, p, "Ya"), field(t, p, "Yb"), field(t, p, "K")

	// The draft's scalars are below 2^252, like every scalar sample_scalar draws,
	// and load unchanged through scalarFromLE.
	ya, yb := vectorScalar(t, field(t, p, "ya")), vectorScalar(t, field(t, p, "yb"))

	checkBytes(t, "g", calculateGenerator(prs, ci, sid).Encode(nil), field(t, p, "g"))

	// Messages: each is lv_cat(Y, AD) with the draft's Ya and Yb.
	stA, msgA, err := start(Initiator, Inputs{PRS: prs, CI: ci, SID: sid, AD: ada}, ya)
	if err != nil {
		t.Fatal(err)
	}
	stB, msgB, err := start(Responder, Inputs{PRS: prs, CI: ci, SID: sid, AD: adb}, yb)
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "Ya", stA.own, wantYa)
	checkBytes(t, "Yb", stB.own, wantYb)
	checkBytes(t, "message A", msgA, lvCat(wantYa, ada))
	checkBytes(t, "message B", msgB, lvCat(wantYb, adb))

	// K from both sides.
	checkBytes(t, "scalar_mult_vfy(ya,Yb)", scalarMultVfy(ya, wantYb), wantK)
	checkBytes(t, "scalar_mult_vfy(yb,Ya)", scalarMultVfy(yb, wantYa), wantK)

	// ISK, initiator-responder: transcript, hash input, result.
	tr := transcriptIR(wantYa, ada, wantYb, adb)
	checkBytes(t, "transcript_ir", tr, field(t, irText, "transcript_ir(Ya,ADa,Yb,ADb)"))
	checkBytes(t, "DSI_ISK", []byte(dsiISK), field(t, irText, "DSI_ISK"))
	checkBytes(t, "ISK input (ir)", append(lvCat([]byte(dsiISK), sid, wantK), tr...),
		field(t, irText, "lv_cat(DSI,sid,K)||transcript_ir(Ya,ADa,Yb,ADb)"))
	wantISK := field(t, p, "ISK_IR")
	checkBytes(t, "ISK_IR (deriveISK)", deriveISK(sid, wantK, tr), wantISK)

	// The same through the public path, on both sides.
	iskA, gotADb, err := stA.Finish(msgB)
	if err != nil {
		t.Fatalf("initiator Finish: %v", err)
	}
	iskB, gotADa, err := stB.Finish(msgA)
	if err != nil {
		t.Fatalf("responder Finish: %v", err)
	}
	checkBytes(t, "ISK_IR (initiator)", iskA, wantISK)
	checkBytes(t, "ISK_IR (responder)", iskB, wantISK)
	checkBytes(t, "ADb seen by A", gotADb, adb)
	checkBytes(t, "ADa seen by B", gotADa, ada)

	// Parallel setting (ordered transcript): not what the package runs, but the
	// same K and ISK hash, so its vectors check those once more.
	toc := transcriptOC(wantYa, ada, wantYb, adb)
	checkBytes(t, "transcript_oc", toc, field(t, ocText, "transcript_oc(Ya,ADa,Yb,ADb)"))
	checkBytes(t, "ISK input (oc)", append(lvCat([]byte(dsiISK), sid, wantK), toc...),
		field(t, ocText, "lv_cat(DSI,sid,K)||transcript_oc(Ya,ADa,Yb,ADb)"))
	checkBytes(t, "ISK_SY", deriveISK(sid, wantK, toc), field(t, p, "ISK_SY"))

	// Optional sid output, H.hash(b"CPaceSidOutput" || transcript).
	sidOut := func(tr []byte) []byte {
		h := sha512.Sum512(append([]byte("CPaceSidOutput"), tr...))
		return h[:]
	}
	checkBytes(t, "sid_output_ir", sidOut(tr), field(t, p, "sid_output_ir"))
	checkBytes(t, "sid_output_oc", sidOut(toc), field(t, p, "sid_output_oc"))
}

func TestScalarMultVectors(t *testing.T) {
	v := loadVectors(t, "ristretto255-sha512.json")
	var sm struct {
		Valid    json.RawMessage `json:"Valid"`
		Invalid1 string          `json:"Invalid Y1"`
		Invalid2 string          `json:"Invalid Y2"`
	}
	if err := json.Unmarshal(v["scalar_mult_vfy"], &sm); err != nil {
		t.Fatal(err)
	}
	valid := hexFields(t, sm.Valid)
	s := vectorScalar(t, field(t, valid, "s"))
	x := field(t, valid, "X")

	// Valid input: scalar_mult on the decoded point and scalar_mult_vfy agree.
	dx := ristretto255.NewElement()
	if err := dx.Decode(x); err != nil {
		t.Fatalf("decode X: %v", err)
	}
	checkBytes(t, "G.scalar_mult(s,decode(X))", scalarMult(s, dx), field(t, valid, "G.scalar_mult(s,decode(X))"))
	checkBytes(t, "G.scalar_mult_vfy(s,X)", scalarMultVfy(s, x), field(t, valid, "G.scalar_mult_vfy(s,X)"))

	// Invalid inputs: an encoding that does not decode (Y_i1) and the identity
	// (Y_i2 == G.I) both give G.I, and a message carrying either aborts the run
	// on both sides.
	p := hexFields(t, v["protocol"])
	for _, c := range []struct{ name, hex string }{
		{"Y_i1 (not an element)", sm.Invalid1},
		{"Y_i2 (identity)", sm.Invalid2},
	} {
		y, err := hex.DecodeString(c.hex)
		if err != nil {
			t.Fatal(err)
		}
		checkBytes(t, "G.scalar_mult_vfy(s,"+c.name+")", scalarMultVfy(s, y), identity[:])

		for _, role := range []Role{Initiator, Responder} {
			in := Inputs{PRS: field(t, p, "PRS"), CI: field(t, p, "CI"), SID: field(t, p, "sid"), AD: field(t, p, "ADa")}
			st, _, err := start(role, in, vectorScalar(t, field(t, p, "ya")))
			if err != nil {
				t.Fatal(err)
			}
			isk, _, err := st.Finish(lvCat(y, field(t, p, "ADb")))
			if !errors.Is(err, ErrInvalidPoint) || isk != nil {
				t.Errorf("%s: Finish with %s = %x, %v; want ErrInvalidPoint", role, c.name, isk, err)
			}
		}
	}
}

// vectorScalar loads a scalar from the vectors, checking that it is a canonical
// encoding below 2^252 (as sample_scalar produces) and loads the same either way.
func vectorScalar(t *testing.T, le []byte) *ristretto255.Scalar {
	t.Helper()
	if len(le) != 32 || le[31]&0xf0 != 0 {
		t.Fatalf("vector scalar %x not a 252-bit value", le)
	}
	canon := ristretto255.NewScalar()
	if err := canon.Decode(le); err != nil {
		t.Fatalf("vector scalar %x: %v", le, err)
	}
	s := scalarFromLE(le)
	if s.Equal(canon) != 1 {
		t.Fatalf("scalarFromLE(%x) differs from Decode", le)
	}
	return s
}

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }
