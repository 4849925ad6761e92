package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ErrBadInvite means an invite code does not decode: mistyped, truncated, or not an invite.
var ErrBadInvite = errors.New("invalid invite code (check for a typo or a missing part)")

// SecretSize is the length of an invite's one-time secret (128 bits in the long form of
// format 1).
const SecretSize = 16

// CompactSecretSize is how much of the secret the compact form (format 2) carries: the
// first 8 bytes (64 bits), the rest being zero. The secret is only ever proven to the
// inviting device, over a channel that authenticates its peer id, and an invite dies
// after three wrong proofs: it can be guessed online only, never tested offline.
const CompactSecretSize = 8

// Invite caps.
const (
	inviteFormat    = 1
	maxInviteAddrs  = 8
	maxInviteAddr   = 128
	maxInvitePeerID = 64
	maxInviteText   = 1024
	checksumSize    = 4
)

// Invite is what an invite code carries: who to dial, until when, and the one-time secret
// the joiner proves it knows. A compact code (format 2) carries no expiry (Expires is
// zero: the inviting device enforces it) and at most one address.
type Invite struct {
	Peer    peer.ID
	Addrs   []ma.Multiaddr
	Expires time.Time // whole seconds; zero when the code does not say
	Secret  [SecretSize]byte
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Marshal encodes the invite in binary: format byte, expiry (unix seconds, 8 bytes), the
// secret, the peer id and the addresses (each uvarint-length-prefixed, after a count
// byte), then the first 4 bytes of the SHA-256 of all that.
func (inv *Invite) Marshal() ([]byte, error) {
	id := []byte(inv.Peer)
	if len(id) == 0 || len(id) > maxInvitePeerID {
		return nil, fmt.Errorf("invite peer id of %d bytes: %w", len(id), ErrBadInvite)
	}
	addrs := inv.Addrs
	if len(addrs) > maxInviteAddrs {
		addrs = addrs[:maxInviteAddrs]
	}
	b := []byte{inviteFormat}
	b = binary.BigEndian.AppendUint64(b, uint64(inv.Expires.Unix()))
	b = append(b, inv.Secret[:]...)
	b = binary.AppendUvarint(b, uint64(len(id)))
	b = append(b, id...)
	b = append(b, byte(len(addrs)))
	for _, a := range addrs {
		ab := a.Bytes()
		if len(ab) > maxInviteAddr {
			return nil, fmt.Errorf("invite address %s too long: %w", a, ErrBadInvite)
		}
		b = binary.AppendUvarint(b, uint64(len(ab)))
		b = append(b, ab...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:checksumSize]...), nil
}

// UnmarshalInvite decodes the binary form made by Marshal.
func UnmarshalInvite(b []byte) (*Invite, error) {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadInvite, what) }
	if len(b) < 1+8+SecretSize+1+1+checksumSize {
		return nil, bad("too short")
	}
	body, sum := b[:len(b)-checksumSize], b[len(b)-checksumSize:]
	want := sha256.Sum256(body)
	if !bytes.Equal(sum, want[:checksumSize]) {
		return nil, bad("checksum mismatch")
	}
	if body[0] != inviteFormat {
		return nil, bad(fmt.Sprintf("format %d is not supported by this meshsync", body[0]))
	}
	inv := &Invite{Expires: time.Unix(int64(binary.BigEndian.Uint64(body[1:])), 0)}
	p := body[9:]
	p = p[copy(inv.Secret[:], p):]
	n, p, err := uvarint(p)
	if err != nil || n == 0 || n > maxInvitePeerID || n > uint64(len(p)) {
		return nil, bad("peer id")
	}
	id, err := peer.IDFromBytes(p[:n])
	if err != nil {
		return nil, bad("peer id")
	}
	inv.Peer = id
	p = p[n:]
	if len(p) < 1 {
		return nil, bad("addresses")
	}
	count := int(p[0])
	p = p[1:]
	if count > maxInviteAddrs {
		return nil, bad("too many addresses")
	}
	for range count {
		n, p, err = uvarint(p)
		if err != nil || n == 0 || n > maxInviteAddr || n > uint64(len(p)) {
			return nil, bad("address")
		}
		a, err := ma.NewMultiaddrBytes(p[:n])
		if err != nil {
			return nil, bad("address")
		}
		inv.Addrs = append(inv.Addrs, a)
		p = p[n:]
	}
	if len(p) != 0 {
		return nil, bad("trailing bytes")
	}
	return inv, nil
}

// Encode returns the invite as text that survives copy and paste. An invite that fits the
// compact form (compact.go: an Ed25519 peer id, a secret of CompactSecretSize bytes, at
// most one plain IP address) is encoded in it: about 60 characters of base58. Any other
// is encoded in the long form of format 1 (EncodeLong).
func (inv *Invite) Encode() (string, error) {
	if inv.fitsCompact() {
		return inv.encodeCompact()
	}
	return inv.EncodeLong()
}

// EncodeLong returns the invite in the long form of format 1: base32 (A–Z, 2–7) without
// padding, in groups of five separated by dashes. Codes printed by meshsync before the
// compact form existed have this shape; ParseInvite reads both.
func (inv *Invite) EncodeLong() (string, error) {
	b, err := inv.Marshal()
	if err != nil {
		return "", err
	}
	s := b32.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(s); i += 5 {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(s[i:min(i+5, len(s))])
	}
	return sb.String(), nil
}

// ParseInvite decodes an invite code, compact (format 2) or long (format 1). In a long
// code case, spaces, line breaks and dashes do not matter, and the digits 0, 1 and 8 are
// read as O, I and B; a compact code is base58 and case matters. A typo fails the
// checksum: ErrBadInvite.
func ParseInvite(code string) (*Invite, error) {
	if len(code) > maxInviteText {
		return nil, fmt.Errorf("%w: %d characters is too long", ErrBadInvite, len(code))
	}
	if text := strings.TrimSpace(code); looksCompact(text) {
		return parseCompact(text)
	}
	clean := make([]byte, 0, len(code))
	for _, r := range strings.ToUpper(code) {
		switch {
		case r == '-' || r == ' ' || r == '\n' || r == '\r' || r == '\t':
		case r == '0':
			clean = append(clean, 'O')
		case r == '1':
			clean = append(clean, 'I')
		case r == '8':
			clean = append(clean, 'B')
		case (r >= 'A' && r <= 'Z') || (r >= '2' && r <= '7'):
			clean = append(clean, byte(r))
		default:
			return nil, fmt.Errorf("%w: unexpected character %q", ErrBadInvite, r)
		}
	}
	b, err := b32.DecodeString(string(clean))
	if err != nil {
		return nil, fmt.Errorf("%w: not base32 (%v)", ErrBadInvite, err)
	}
	return UnmarshalInvite(b)
}
