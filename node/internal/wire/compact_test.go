package wire

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshsync/meshsync/internal/vectors"
)

func compactInvite(t testing.TB, addrs ...string) *Invite {
	inv := testInvite(t)
	inv.Expires = time.Time{}
	inv.Addrs = nil
	for _, a := range addrs {
		inv.Addrs = append(inv.Addrs, ma.StringCast(a))
	}
	clear(inv.Secret[CompactSecretSize:])
	return inv
}

// TestCompactInviteFitsOnALine (issue 19, done-when): the invite of a device with a relay
// (no address in the code: the joiner comes through its relay, the DHT or mDNS) is at most
// 60 characters; with one IPv4 address it stays under 70.
func TestCompactInviteFitsOnALine(t *testing.T) {
	for _, c := range []struct {
		addrs []string
		max   int
	}{
		{nil, 60},
		{[]string{"/ip4/192.168.1.20/tcp/4747"}, 70},
		{[]string{"/ip4/203.0.113.9/udp/4747/quic-v1"}, 70},
		{[]string{"/ip6/2001:db8::1/tcp/4747"}, 90},
	} {
		for range 50 { // every secret: base58's length varies with the number
			inv := compactInvite(t, c.addrs...)
			rand.Read(inv.Secret[:CompactSecretSize])
			code, err := inv.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if len(code) > c.max {
				t.Fatalf("%v: code of %d characters (%s), want at most %d", c.addrs, len(code), code, c.max)
			}
			got, err := ParseInvite(code)
			if err != nil {
				t.Fatalf("%s: %v", code, err)
			}
			if got.Peer != inv.Peer || got.Secret != inv.Secret || len(got.Addrs) != len(inv.Addrs) || !got.Expires.IsZero() {
				t.Fatalf("round trip changed the invite: %+v, want %+v", got, inv)
			}
			for i := range got.Addrs {
				if !got.Addrs[i].Equal(inv.Addrs[i]) {
					t.Fatalf("address %s, want %s", got.Addrs[i], inv.Addrs[i])
				}
			}
		}
	}
}

// TestCompactInviteTypo: every one-character change of a compact code is refused.
func TestCompactInviteTypo(t *testing.T) {
	code, err := compactInvite(t, "/ip4/192.168.1.20/tcp/4747").Encode()
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(code) {
		for _, c := range []byte("2Zz") {
			if code[i] == c {
				continue
			}
			typo := code[:i] + string(c) + code[i+1:]
			if _, err := ParseInvite(typo); !errors.Is(err, ErrBadInvite) {
				// A 16-bit checksum lets one typo in 65,536 through; these do not.
				t.Fatalf("typo at %d accepted: %v", i, err)
			}
		}
	}
	for _, bad := range []string{code[:len(code)-2], code + "2", "0OIl", "11111111111111111111111111111111111"} {
		if _, err := ParseInvite(bad); !errors.Is(err, ErrBadInvite) {
			t.Errorf("ParseInvite(%q) = %v, want ErrBadInvite", bad, err)
		}
	}
}

// TestCompactFallsBackToLong: an invite that does not fit the compact form (two
// addresses, a relay address, a 16-byte secret) is encoded in the long form, which still
// decodes.
func TestCompactFallsBackToLong(t *testing.T) {
	for _, inv := range []*Invite{
		compactInvite(t, "/ip4/192.168.1.20/tcp/4747", "/ip4/192.168.1.20/udp/4747/quic-v1"),
		compactInvite(t, "/ip4/203.0.113.9/tcp/4001/p2p/12D3KooWAeRobP4WbSMcHZ4f7VGdw2KugbD3aW5GaN7jBvckkwxm/p2p-circuit"),
		testInvite(t),
	} {
		code, err := inv.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(code, "-") {
			t.Fatalf("%v: %s is not the long form", inv.Addrs, code)
		}
		if got, err := ParseInvite(code); err != nil || got.Peer != inv.Peer || len(got.Addrs) != len(inv.Addrs) {
			t.Fatalf("%v: %+v, %v", inv.Addrs, got, err)
		}
	}
}

// TestCompactInviteVector: the committed compact code decodes to its fields and the fields
// encode to it; the long code of format 1 committed before the compact form existed
// (testdata/vectors/invite.txt, TestInviteVector) still decodes.
func TestCompactInviteVector(t *testing.T) {
	inv := compactInvite(t, "/ip4/192.168.1.20/tcp/4747")
	code, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	vectors.Check(t, "testdata/vectors/invite_compact.txt", "", []byte(code+"\n"))
	got, err := ParseInvite(strings.TrimSpace(string(vectors.Read(t, "testdata/vectors/invite_compact.txt"))))
	if err != nil {
		t.Fatal(err)
	}
	if got.Peer != inv.Peer || got.Secret != inv.Secret || len(got.Addrs) != 1 || !got.Addrs[0].Equal(inv.Addrs[0]) {
		t.Fatalf("decoded %+v, want %+v", got, inv)
	}
	old, err := ParseInvite(strings.TrimSpace(string(vectors.Read(t, "testdata/vectors/invite.txt"))))
	if err != nil {
		t.Fatalf("the old long code is refused: %v", err)
	}
	if want := testInvite(t); old.Peer != want.Peer || old.Secret != want.Secret || len(old.Addrs) != 2 {
		t.Fatalf("old code decoded to %+v", old)
	}
}

// FuzzCompactInvite: a decoded compact invite encodes back to the same bytes.
func FuzzCompactInvite(f *testing.F) {
	for _, a := range [][]string{nil, {"/ip4/192.168.1.20/tcp/4747"}, {"/ip6/2001:db8::1/udp/9/quic-v1"}} {
		b, err := compactInvite(f, a...).MarshalCompact()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{compactFormat})
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, err := UnmarshalCompact(b)
		if err != nil {
			if !errors.Is(err, ErrBadInvite) {
				t.Fatalf("error without ErrBadInvite: %v", err)
			}
			return
		}
		again, err := inv.MarshalCompact()
		if err != nil {
			t.Fatalf("decoded invite does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode→encode changed the bytes:\n%x\n%x", b, again)
		}
	})
}
