package cpace

import (
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/gtank/ristretto255"
)

// Sizes and limits of the CPACE-RISTR255-SHA512 suite as meshsync runs it.
const (
	// ShareLen is the length of a public share Y: one encoded ristretto255 element.
	ShareLen = 32
	// ISKLen is the length of the intermediate session key: one SHA-512 output.
	ISKLen = sha512.Size
	// MaxADLen caps the associated data a message may carry. The draft sets no
	// cap; meshsync's AD is a version string or a peer id, far below it.
	MaxADLen = 1024
	// MaxMessageLen is the longest message Start produces and DecodeMessage accepts.
	MaxMessageLen = 1 + ShareLen + 2 + MaxADLen
)

// The draft's constants for G_Ristretto255 with H = SHA-512.
const (
	// dsi is G_Ristretto255.DSI.
	dsi = "CPaceRistretto255"
	// dsiISK is G.DSI || b"_ISK", the first field of the ISK hash input.
	dsiISK = dsi + "_ISK"
	// hashBlockLen is H.s_in_bytes, the input block size of SHA-512.
	hashBlockLen = sha512.BlockSize
	// fieldLen is G_Ristretto255.field_size_bytes; calculate_generator
	// hashes to twice that for the element derivation function.
	fieldLen = 32
)

// identity is G.I, the public encoding of the neutral element.
var identity [ShareLen]byte

// Role says which side of the initiator-responder setting a party plays. The
// initiator's message comes first in the transcript on both sides, so the two
// parties must agree on who is who (in meshsync: the joiner initiates, the
// inviter responds); two initiators or two responders derive different keys.
type Role uint8

const (
	// Initiator is party A of the draft, whose message comes first in the transcript.
	Initiator Role = iota + 1
	// Responder is party B of the draft.
	Responder
)

// String returns "initiator" or "responder".
func (r Role) String() string {
	switch r {
	case Initiator:
		return "initiator"
	case Responder:
		return "responder"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Inputs are one party's inputs to a CPace run. Both parties must hold the
// same PRS, CI and SID to derive the same key; each sends its own AD.
type Inputs struct {
	// PRS is the password-related string: the short code, or a string derived
	// from it. It must not be empty and never leaves this package.
	PRS []byte
	// CI is the channel identifier: secret-or-public context both sides know
	// and never send. meshsync puts both peer ids there; see Bind.
	CI []byte
	// SID is the session id, public and agreed before the run; see Bind. May be empty.
	SID []byte
	// AD is this party's associated data, sent in clear inside its message and
	// authenticated by the key: the peer derives the same ISK only if it saw
	// these exact bytes. At most MaxADLen bytes; may be empty.
	AD []byte
}

// State is one party's half-finished CPace run, between Start and Finish. It
// holds the secret scalar and may be used for one Finish only.
type State struct {
	role Role
	sid  []byte
	y    *ristretto255.Scalar // nil once Finish has run
	own  []byte               // own share Y, encoded
	ad   []byte               // own AD
}

// Start begins a CPace run in the given role: it derives the password
// generator g from in.PRS, in.CI and in.SID, samples a fresh secret scalar y
// from rand (crypto/rand.Reader in production) and returns the state to keep
// and the message to send to the peer, lv_cat(y·g, in.AD).
//
// It fails only on bad inputs (unknown role, empty PRS, AD over MaxADLen;
// ErrInvalidInput) or when rand fails.
func Start(role Role, in Inputs, rand io.Reader) (*State, []byte, error) {
	if err := checkInputs(role, in); err != nil {
		return nil, nil, err
	}
	y, err := sampleScalar(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("cpace start: %w", err)
	}
	return start(role, in, y)
}

// start is Start with the secret scalar given. Tests use it to replay the
// draft's vectors with their fixed ya and yb; nothing else may, since a
// scalar must never be used twice.
func start(role Role, in Inputs, y *ristretto255.Scalar) (*State, []byte, error) {
	if err := checkInputs(role, in); err != nil {
		return nil, nil, err
	}
	g := calculateGenerator(in.PRS, in.CI, in.SID)
	share := scalarMult(y, g)
	st := &State{
		role: role,
		sid:  append([]byte(nil), in.SID...),
		y:    y,
		own:  share,
		ad:   append([]byte(nil), in.AD...),
	}
	return st, encodeMessage(share, in.AD), nil
}

func checkInputs(role Role, in Inputs) error {
	switch {
	case role != Initiator && role != Responder:
		return fmt.Errorf("cpace start: unknown role %d: %w", uint8(role), ErrInvalidInput)
	case len(in.PRS) == 0:
		return fmt.Errorf("cpace start: empty password: %w", ErrInvalidInput)
	case len(in.AD) > MaxADLen:
		return fmt.Errorf("cpace start: %d bytes of associated data, limit %d: %w", len(in.AD), MaxADLen, ErrInvalidInput)
	}
	return nil
}

// Finish completes the run with the peer's message and returns the 64-byte
// intermediate session key ISK and the peer's associated data (for the caller
// to check, if it put anything there).
//
// Finish returns ErrMalformed if peerMsg is not a well-formed message and
// ErrInvalidPoint if the peer's share is not a valid ristretto255 encoding or
// the shared point is the identity; the draft requires aborting the run in
// both cases. A wrong password is NOT an error here: both sides then get
// unrelated keys, and only a key-confirmation step built on the ISK tells them
// apart (see the package documentation).
//
// The state is spent by the first call, whatever its outcome: the secret
// scalar is dropped, and a second call returns ErrUsed. A failed attempt is
// one guess; a retry needs a new Start.
func (s *State) Finish(peerMsg []byte) (isk, peerAD []byte, err error) {
	if s == nil || s.y == nil {
		return nil, nil, fmt.Errorf("cpace finish: %w", ErrUsed)
	}
	y := s.y
	s.y = nil
	defer y.Zero()

	peerShare, peerAD, err := DecodeMessage(peerMsg)
	if err != nil {
		return nil, nil, fmt.Errorf("cpace finish: %w", err)
	}
	k := scalarMultVfy(y, peerShare)
	if subtle.ConstantTimeCompare(k, identity[:]) == 1 {
		return nil, nil, fmt.Errorf("cpace finish: peer share: %w", ErrInvalidPoint)
	}
	var transcript []byte
	if s.role == Initiator {
		transcript = transcriptIR(s.own, s.ad, peerShare, peerAD)
	} else {
		transcript = transcriptIR(peerShare, peerAD, s.own, s.ad)
	}
	isk = deriveISK(s.sid, k, transcript)
	clear(k)
	return isk, append([]byte(nil), peerAD...), nil
}

// generatorString returns generator_string(DSI, PRS, CI, sid, s_in_bytes) =
// lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid), where the zero padding
// makes DSI and PRS fill the hash's first input block whenever PRS is short.
func generatorString(dsi, prs, ci, sid []byte, sInBytes int) []byte {
	zpad := max(0, sInBytes-1-len(prependLen(prs))-len(prependLen(dsi)))
	return lvCat(dsi, prs, make([]byte, zpad), ci, sid)
}

// generatorHash returns H.hash(generator_string(...), 2·field_size_bytes),
// the 64 uniform bytes the element derivation function maps to a point.
func generatorHash(prs, ci, sid []byte) []byte {
	gs := generatorString([]byte(dsi), prs, ci, sid, hashBlockLen)
	h := sha512.Sum512(gs)
	clear(gs)
	return h[:2*fieldLen]
}

// calculateGenerator returns G.calculate_generator(H, PRS, CI, sid): the
// ristretto255 element derivation function (RFC 9496's one-way map, constant
// time) applied to the hash of the generator string.
func calculateGenerator(prs, ci, sid []byte) *ristretto255.Element {
	h := generatorHash(prs, ci, sid)
	g := ristretto255.NewElement().FromUniformBytes(h)
	clear(h)
	return g
}

// sampleScalar is G.sample_scalar() as the draft recommends for ristretto255:
// 32 random bytes with the bits above group_size_bits (252) cleared, read as a
// little-endian integer. Such a value is below the group order, so loading it
// through the constant-time wide reduction leaves it unchanged. A zero scalar
// (probability 2^-252) can only mean a broken rand and is refused.
func sampleScalar(rand io.Reader) (*ristretto255.Scalar, error) {
	var b [64]byte
	defer clear(b[:])
	if _, err := io.ReadFull(rand, b[:32]); err != nil {
		return nil, fmt.Errorf("sample scalar: %w", err)
	}
	b[31] &= 0x0f
	var zero [32]byte
	if subtle.ConstantTimeCompare(b[:32], zero[:]) == 1 {
		return nil, fmt.Errorf("sample scalar: random source returned zeros: %w", ErrInvalidInput)
	}
	return scalarFromLE(b[:32]), nil
}

// scalarFromLE loads a 32-byte little-endian integer below 2^252 as a scalar
// without a variable-time canonicality check: it is zero-extended to 64 bytes
// and reduced, which for such a value is the identity.
func scalarFromLE(le []byte) *ristretto255.Scalar {
	var wide [64]byte
	copy(wide[:], le)
	s := ristretto255.NewScalar().FromUniformBytes(wide[:])
	clear(wide[:])
	return s
}

// scalarMult is G.scalar_mult(y, _g): encode(y·_g), constant time in y.
func scalarMult(y *ristretto255.Scalar, g *ristretto255.Element) []byte {
	p := ristretto255.NewElement().ScalarMult(y, g)
	return p.Encode(make([]byte, 0, ShareLen))
}

// scalarMultVfy is G.scalar_mult_vfy(y, X): G.I if X does not decode to a
// ristretto255 element (RFC 9496 decoding refuses every non-canonical
// encoding), encode(y·decode(X)) otherwise. The identity encoding decodes, and
// then yields G.I too; the caller aborts on G.I.
func scalarMultVfy(y *ristretto255.Scalar, x []byte) []byte {
	p := ristretto255.NewElement()
	if err := p.Decode(x); err != nil {
		return append([]byte(nil), identity[:]...)
	}
	return scalarMult(y, p)
}

// deriveISK returns H.hash(lv_cat(G.DSI || b"_ISK", sid, K) || transcript).
func deriveISK(sid, k, transcript []byte) []byte {
	in := append(lvCat([]byte(dsiISK), sid, k), transcript...)
	h := sha512.Sum512(in)
	clear(in)
	return h[:]
}
