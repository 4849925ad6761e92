package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mr-tron/base58"
	ma "github.com/multiformats/go-multiaddr"
)

// The compact invite (format 2), the code `meshsync pair` prints: short enough for one
// line (at most 60 characters without an address, which is what a device with a relay
// prints: the joiner reaches it through its own --relay, the DHT or mDNS).
//
//	kind   1 byte    0x20 | address kind (0 none, 1 ip4/tcp, 2 ip4/udp/quic-v1,
//	                 3 ip6/tcp, 4 ip6/udp/quic-v1)
//	key    32 bytes  the inviter's Ed25519 public key (its peer id is derived from it)
//	secret 8 bytes   the first CompactSecretSize bytes of the secret
//	addr   0, 6 or 18 bytes: the IP address and the big-endian port
//	check  2 bytes   the first two bytes of SHA-256 of all of the above
//
// in base58 (the alphabet of peer ids: no 0, O, I or l). There is no expiry in the code:
// the inviting device refuses a late joiner.
const (
	compactFormat   = 0x20
	compactKeySize  = 32
	compactCheck    = 2
	maxCompactText  = 90
	compactKindMask = 0x0f
)

// Compact address kinds.
const (
	addrNone = iota
	addrIP4TCP
	addrIP4QUIC
	addrIP6TCP
	addrIP6QUIC
)

// looksCompact tells a compact code from a long one: a long code has dashes, or more than
// maxCompactText characters.
func looksCompact(text string) bool {
	return text != "" && len(text) <= maxCompactText && !strings.ContainsAny(text, "- \n\r\t")
}

// compactAddr returns the kind, IP and port of a, or ok false when a is not a plain
// IP address with a TCP or QUIC port.
func compactAddr(a ma.Multiaddr) (kind byte, ip netip.Addr, port uint16, ok bool) {
	var proto []int
	var vals []string
	for _, c := range a {
		proto = append(proto, c.Protocol().Code)
		vals = append(vals, c.Value())
	}
	if len(proto) < 2 {
		return 0, netip.Addr{}, 0, false
	}
	ip, err := netip.ParseAddr(vals[0])
	if err != nil || ip.Zone() != "" {
		return 0, netip.Addr{}, 0, false
	}
	var p uint64
	if _, err := fmt.Sscanf(vals[1], "%d", &p); err != nil || p > 65535 {
		return 0, netip.Addr{}, 0, false
	}
	v6 := byte(0)
	switch proto[0] {
	case ma.P_IP4:
	case ma.P_IP6:
		v6 = 2
	default:
		return 0, netip.Addr{}, 0, false
	}
	switch {
	case len(proto) == 2 && proto[1] == ma.P_TCP:
		return addrIP4TCP + v6, ip, uint16(p), true
	case len(proto) == 3 && proto[1] == ma.P_UDP && proto[2] == ma.P_QUIC_V1:
		return addrIP4QUIC + v6, ip, uint16(p), true
	}
	return 0, netip.Addr{}, 0, false
}

// CompactAddr reports whether a can be the one address of a compact invite.
func CompactAddr(a ma.Multiaddr) bool {
	_, _, _, ok := compactAddr(a)
	return ok
}

// ed25519Key returns the raw public key behind an Ed25519 peer id.
func ed25519Key(p peer.ID) ([]byte, bool) {
	pk, err := p.ExtractPublicKey()
	if err != nil || pk.Type() != crypto.Ed25519 {
		return nil, false
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != compactKeySize {
		return nil, false
	}
	return raw, true
}

func (inv *Invite) fitsCompact() bool {
	if _, ok := ed25519Key(inv.Peer); !ok || len(inv.Addrs) > 1 {
		return false
	}
	if len(inv.Addrs) == 1 && !CompactAddr(inv.Addrs[0]) {
		return false
	}
	for _, b := range inv.Secret[CompactSecretSize:] {
		if b != 0 {
			return false
		}
	}
	return true
}

// MarshalCompact encodes the invite in the binary compact form; it fails with
// ErrBadInvite when the invite does not fit it.
func (inv *Invite) MarshalCompact() ([]byte, error) {
	if !inv.fitsCompact() {
		return nil, fmt.Errorf("%w: does not fit the compact form (an Ed25519 peer id, an %d-byte secret, at most one IP address)", ErrBadInvite, CompactSecretSize)
	}
	key, _ := ed25519Key(inv.Peer)
	kind := byte(addrNone)
	var ip netip.Addr
	var port uint16
	if len(inv.Addrs) == 1 {
		kind, ip, port, _ = compactAddr(inv.Addrs[0])
	}
	b := []byte{compactFormat | kind}
	b = append(b, key...)
	b = append(b, inv.Secret[:CompactSecretSize]...)
	if kind != addrNone {
		b = append(b, ip.AsSlice()...)
		b = binary.BigEndian.AppendUint16(b, port)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:compactCheck]...), nil
}

func (inv *Invite) encodeCompact() (string, error) {
	b, err := inv.MarshalCompact()
	if err != nil {
		return "", err
	}
	return base58.Encode(b), nil
}

// UnmarshalCompact decodes the binary compact form.
func UnmarshalCompact(b []byte) (*Invite, error) {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadInvite, what) }
	if len(b) < 1+compactKeySize+CompactSecretSize+compactCheck {
		return nil, bad("too short")
	}
	body, sum := b[:len(b)-compactCheck], b[len(b)-compactCheck:]
	want := sha256.Sum256(body)
	if !bytes.Equal(sum, want[:compactCheck]) {
		return nil, bad("checksum mismatch")
	}
	if body[0]&^compactKindMask != compactFormat {
		return nil, bad(fmt.Sprintf("format %#x is not supported by this meshsync", body[0]>>4))
	}
	kind := body[0] & compactKindMask
	pk, err := crypto.UnmarshalEd25519PublicKey(body[1 : 1+compactKeySize])
	if err != nil {
		return nil, bad("peer key")
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		return nil, bad("peer key")
	}
	inv := &Invite{Peer: id}
	p := body[1+compactKeySize:]
	p = p[copy(inv.Secret[:CompactSecretSize], p):]
	var ipLen int
	var tail string
	switch kind {
	case addrNone:
	case addrIP4TCP:
		ipLen, tail = 4, "/ip4/%s/tcp/%d"
	case addrIP4QUIC:
		ipLen, tail = 4, "/ip4/%s/udp/%d/quic-v1"
	case addrIP6TCP:
		ipLen, tail = 16, "/ip6/%s/tcp/%d"
	case addrIP6QUIC:
		ipLen, tail = 16, "/ip6/%s/udp/%d/quic-v1"
	default:
		return nil, bad(fmt.Sprintf("address kind %d", kind))
	}
	if len(p) != 0 && ipLen == 0 || ipLen != 0 && len(p) != ipLen+2 {
		return nil, bad("address")
	}
	if ipLen != 0 {
		ip, _ := netip.AddrFromSlice(p[:ipLen])
		if ipLen == 16 && ip.Is4In6() {
			return nil, bad("address") // it would print as an IPv4 address and not re-encode
		}
		a, err := ma.NewMultiaddr(fmt.Sprintf(tail, ip, binary.BigEndian.Uint16(p[ipLen:])))
		if err != nil {
			return nil, bad("address")
		}
		inv.Addrs = []ma.Multiaddr{a}
	}
	return inv, nil
}

func parseCompact(text string) (*Invite, error) {
	b, err := base58.Decode(text)
	if err != nil {
		return nil, fmt.Errorf("%w: not base58 (a compact code has no 0, O, I or l)", ErrBadInvite)
	}
	return UnmarshalCompact(b)
}
