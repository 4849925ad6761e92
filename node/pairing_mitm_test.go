package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/store"
)

// Test plan row 13, man in the middle: the invite carries the inviter's peer id, and the
// joiner's proof of the secret is bound to both peer ids, so a host between the two
// devices gets no key and makes both fail.

// pairRelay is a host that poses as the inviter to joiners and relays their pairing
// streams, byte for byte, to the real inviter.
type pairRelay struct {
	h        host.Host
	mu       sync.Mutex
	relayed  int          // pairing streams relayed
	fromInv  bytes.Buffer // every byte the inviter sent through the relay
	fromJoin bytes.Buffer // every byte joiners sent through the relay
}

func newPairRelay(t *testing.T, inviter *Node, proto protocol.ID) *pairRelay {
	r := &pairRelay{h: plainHost(t)}
	r.h.Peerstore().AddAddrs(inviter.id, inviter.Host().Addrs(), peerstore.PermanentAddrTTL)
	r.h.SetStreamHandler(proto, func(js network.Stream) {
		defer js.Reset()
		is, err := r.h.NewStream(ctxT(t, 10*time.Second), inviter.id, proto)
		if err != nil {
			return
		}
		defer is.Reset()
		r.mu.Lock()
		r.relayed++
		r.mu.Unlock()
		done := make(chan struct{}, 2)
		pipe := func(dst, src network.Stream, log *bytes.Buffer) {
			buf := make([]byte, 4096)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					r.mu.Lock()
					log.Write(buf[:n])
					r.mu.Unlock()
					dst.Write(buf[:n])
				}
				if err != nil {
					dst.CloseWrite()
					done <- struct{}{}
					return
				}
			}
		}
		go pipe(is, js, &r.fromJoin)
		go pipe(js, is, &r.fromInv)
		<-done
		<-done
	})
	return r
}

// codeVia is the inviter's code with its peer id and addresses replaced by the relay's:
// the code a joiner would hold if the relay had swapped it (it knows the secret).
func (r *pairRelay) codeVia(t *testing.T, code string) string {
	inv, err := wire.ParseInvite(code)
	if err != nil {
		t.Fatal(err)
	}
	inv.Peer, inv.Addrs = r.h.ID(), r.h.Addrs()
	out, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// failures is how many wrong secrets the inviter's open invite has counted.
func failures(n *Node) (int, bool) {
	n.invites.mu.Lock()
	defer n.invites.mu.Unlock()
	if n.invites.cur == nil {
		return 0, false
	}
	return n.invites.cur.failures, true
}

// noStoreIn checks that a failed join left no database behind.
func noStoreIn(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed join left a store in %s (%v)", dir, err)
	}
}

// A host between the joiner and the inviter, which knows the code (a stronger attacker
// than one copying packets: the code travels out of band) and hands the joiner a code
// naming itself, relays the pairing byte for byte. The joiner's proof names the relay, the
// inviter expects one naming the relay's own peer id and itself: both fail, no key passes,
// and each relayed attempt counts against the invite, which dies after three.
func TestPairingRelayMITM(t *testing.T) {
	inviter := newMesh(t, 1)[0]
	meshKey := inviter.st.Keys().MeshKeyForPairing()
	code, _, err := inviter.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	relay := newPairRelay(t, inviter, PairProtocol)
	attempts := 0
	var took []time.Duration
	for {
		if _, open := failures(inviter); !open || !inviter.invites.open(time.Now()) {
			break
		}
		if attempts == 2*MaxInviteFailures {
			t.Fatalf("the invite survives %d relayed attempts", attempts)
		}
		attempts++
		cfg := testConfig(t, fmt.Sprint("j", attempts))
		start := time.Now()
		_, err := Join(ctxT(t, 30*time.Second), cfg, relay.codeVia(t, code), "joiner")
		took = append(took, time.Since(start))
		if !errors.Is(err, ErrInviteRefused) {
			t.Fatalf("relayed attempt %d: %v, want ErrInviteRefused", attempts, err)
		}
		noStoreIn(t, cfg.Dir)
		// The joiner may hear the refusal before the inviter has counted the attempt.
		n := attempts
		eventually(t, "the inviter counts the relayed attempt", func() error {
			if f, open := failures(inviter); open && f < n {
				return fmt.Errorf("%d failures counted after %d attempts", f, n)
			}
			return nil
		})
	}
	if attempts != MaxInviteFailures {
		t.Errorf("the invite died after %d relayed attempts, want %d", attempts, MaxInviteFailures)
	}
	relay.mu.Lock()
	relayed, fromInv, fromJoin := relay.relayed, relay.fromInv.Bytes(), relay.fromJoin.Bytes()
	relay.mu.Unlock()
	if relayed != attempts {
		t.Errorf("the relay carried %d pairing streams, want %d", relayed, attempts)
	}
	if bytes.Contains(fromInv, meshKey) {
		t.Fatal("the mesh key passed through the relay")
	}
	// The genuine joiner, dialling the inviter itself, is now refused too: the invite is
	// dead (a new one must be made).
	_, err = Join(ctxT(t, 30*time.Second), testConfig(t, "genuine"), code, "genuine")
	if !errors.Is(err, ErrInviteRefused) {
		t.Errorf("genuine joiner after the relayed attempts: %v, want ErrInviteRefused", err)
	}
	if n := len(inviter.Devices()); n != 1 {
		t.Fatalf("the inviter lists %d devices, want 1", n)
	}
	t.Logf("relay MITM: %d attempts to lockout, each refused in %v (median); the relay saw %d bytes from the inviter (%q…), %d from joiners, no key",
		attempts, median(took).Round(time.Millisecond), len(fromInv), firstBytes(fromInv, 40), len(fromJoin))
}

func firstBytes(b []byte, n int) []byte { return b[:min(n, len(b))] }

// tcpProxy forwards TCP connections to target and records what passes, flipping one byte
// per direction at the given offset (counted over every connection; -1: none).
type tcpProxy struct {
	ln                    net.Listener
	mu                    sync.Mutex
	toInv, toJoin         bytes.Buffer
	flipToInv, flipToJoin int
	sentToInv, sentToJoin int
	conns                 atomic.Int32
}

func newTCPProxy(t *testing.T, target string, flipToInv, flipToJoin int) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, flipToInv: flipToInv, flipToJoin: flipToJoin}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			go p.serve(c, target)
		}
	}()
	return p
}

func (p *tcpProxy) serve(c net.Conn, target string) {
	defer c.Close()
	d, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer d.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn, log *bytes.Buffer, flipAt int, sent *int) {
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				if flipAt >= *sent && flipAt < *sent+n {
					buf[flipAt-*sent] ^= 0x01
				}
				*sent += n
				log.Write(buf[:n])
				p.mu.Unlock()
				if _, err := dst.Write(buf[:n]); err != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(d, c, &p.toInv, p.flipToInv, &p.sentToInv)
	go pipe(c, d, &p.toJoin, p.flipToJoin, &p.sentToJoin)
	<-done
	<-done
}

// codeVia is code with its addresses replaced by the proxy's (the peer id kept).
func (p *tcpProxy) codeVia(t *testing.T, code string) string {
	inv, err := wire.ParseInvite(code)
	if err != nil {
		t.Fatal(err)
	}
	a, err := manet.FromNetAddr(p.ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	inv.Addrs = []ma.Multiaddr{a}
	out, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// nodeTCPAddr is n's loopback TCP listen address as host:port.
func nodeTCPAddr(t *testing.T, n *Node) string {
	for _, a := range n.Host().Addrs() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
			continue
		}
		na, err := manet.ToNetAddr(a)
		if err == nil {
			return na.String()
		}
	}
	t.Fatal("the node listens on no TCP address")
	return ""
}

// On-path attackers without the code. One that copies the packets (a TCP relay on the
// path) sees only ciphertext: pairing goes through and it learns neither the key nor the
// secret. One that flips a byte in either direction makes both fail with no key. One that
// intercepts the joiner's dial and answers with its own peer id cannot pose as the
// inviter: the joiner's secure handshake fails before its proof is sent, and the invite is
// not spent. One that knows only the invite's peer id and addresses, not the secret, gets
// an error per guess and kills the invite after three.
func TestPairingOnPathMITM(t *testing.T) {
	t.Run("passive relay", func(t *testing.T) {
		inviter := newMesh(t, 1)[0]
		if err := inviter.Put("notes", "canary", []byte(`"pairing-canary-7f3a"`)); err != nil {
			t.Fatal(err)
		}
		code, _, _ := inviter.Invite(time.Minute)
		inv, _ := wire.ParseInvite(code)
		proxy := newTCPProxy(t, nodeTCPAddr(t, inviter), -1, -1)
		start := time.Now()
		j, err := Join(ctxT(t, 30*time.Second), testConfig(t, "j"), proxy.codeVia(t, code), "j")
		if err != nil {
			t.Fatalf("join through a passive relay: %v", err)
		}
		took := time.Since(start)
		defer j.Close()
		// The key is bound to both peer ids: each device lists the other.
		if _, ok := inviter.isMember(j.id); !ok {
			t.Error("the inviter does not list the joiner's peer id")
		}
		if _, ok := j.isMember(inviter.id); !ok {
			t.Error("the joiner does not list the inviter's peer id")
		}
		proxy.mu.Lock()
		seen := append(bytes.Clone(proxy.toInv.Bytes()), proxy.toJoin.Bytes()...)
		proxy.mu.Unlock()
		for name, secret := range map[string][]byte{
			"mesh key": inviter.st.Keys().MeshKeyForPairing(), "invite secret": inv.Secret[:],
			"proof": pairProof(inv.Secret, inviter.id, j.id),
		} {
			if bytes.Contains(seen, secret) {
				t.Errorf("the %s crossed the relay in clear", name)
			}
		}
		t.Logf("passive relay: paired in %v over %d TCP connection(s); the relay saw %d bytes, none of the key, secret or proof",
			took.Round(time.Millisecond), proxy.conns.Load(), len(seen))
	})

	t.Run("tampering relay", func(t *testing.T) {
		// Where to flip: spread over what each side sends in a clean run.
		inviter := newMesh(t, 1)[0]
		code, _, _ := inviter.Invite(time.Minute)
		clean := newTCPProxy(t, nodeTCPAddr(t, inviter), -1, -1)
		j, err := Join(ctxT(t, 30*time.Second), testConfig(t, "clean"), clean.codeVia(t, code), "clean")
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		clean.mu.Lock()
		sent := map[bool]int{true: clean.sentToInv, false: clean.sentToJoin}
		clean.mu.Unlock()
		for _, toInviter := range []bool{true, false} {
			dir := map[bool]string{true: "joiner to inviter", false: "inviter to joiner"}[toInviter]
			failed, unaffected, lastMsg := 0, 0, 0
			for k := range 9 {
				at := 40 + k*(sent[toInviter]-40)/9 // byte 40 is in the handshake
				inviter := newMesh(t, 1)[0]
				meshKey := inviter.st.Keys().MeshKeyForPairing()
				code, _, _ := inviter.Invite(time.Minute)
				proxy := newTCPProxy(t, nodeTCPAddr(t, inviter), map[bool]int{true: at, false: -1}[toInviter], map[bool]int{true: -1, false: at}[toInviter])
				cfg := testConfig(t, fmt.Sprint("j", k))
				j, err := Join(ctxT(t, 30*time.Second), cfg, proxy.codeVia(t, code), "j")
				proxy.mu.Lock()
				leaked := bytes.Contains(proxy.toJoin.Bytes(), meshKey) || bytes.Contains(proxy.toInv.Bytes(), meshKey)
				proxy.mu.Unlock()
				if leaked {
					t.Errorf("%s, flip at %d: the mesh key crossed the relay in clear", dir, at)
				}
				if err != nil {
					// Both fail: no store on the joiner, no new device on the inviter.
					failed++
					noStoreIn(t, cfg.Dir)
					switch n := len(inviter.Devices()); {
					case n == 2 && !toInviter:
						// The flip hit the inviter's last message, sent once it had admitted
						// the joiner: the joiner has no store, and the inviter lists a device
						// that never syncs (removable). Which flip lands there depends on the
						// message sizes of the run.
						lastMsg++
					case n != 1:
						t.Errorf("%s, flip at %d: the join failed (%v) but the inviter lists %d devices", dir, at, err, n)
					}
					continue
				}
				// A flip after the last pairing message changes nothing: the genuine pair.
				unaffected++
				if _, ok := inviter.isMember(j.id); !ok {
					t.Errorf("%s, flip at %d: the join succeeded but the inviter does not list the joiner", dir, at)
				}
				j.Close()
			}
			if failed == 0 {
				t.Errorf("%s: no flip made the pairing fail", dir)
			}
			t.Logf("tampering relay, %s (%d bytes in a clean run): 9 flips, %d made the join fail (%d of them in the inviter's last message, after it admitted the joiner), %d landed after the pairing was done; no key in clear",
				dir, sent[toInviter], failed, lastMsg, unaffected)
		}
	})

	t.Run("intercepting host with its own peer id", func(t *testing.T) {
		inviter := newMesh(t, 1)[0]
		code, _, _ := inviter.Invite(time.Minute)
		// The joiner's dial to the inviter's addresses reaches the attacker instead (as
		// if it answered on the inviter's address), which would relay the pairing. A TCP
		// counter in front of it shows that the joiner did reach it.
		relay := newPairRelay(t, inviter, PairProtocol)
		var relayTCP string
		for _, a := range relay.h.Addrs() {
			if na, err := manet.ToNetAddr(a); err == nil && na.Network() == "tcp" {
				relayTCP = na.String()
			}
		}
		front := newTCPProxy(t, relayTCP, -1, -1)
		hijacked := front.codeVia(t, code)
		cfg := testConfig(t, "j")
		start := time.Now()
		_, errJoin := Join(ctxT(t, 30*time.Second), cfg, hijacked, "j")
		took := time.Since(start)
		if !errors.Is(errJoin, ErrInviterUnreachable) {
			t.Fatalf("join through an interceptor: %v, want ErrInviterUnreachable (its peer id is not the invite's)", errJoin)
		}
		noStoreIn(t, cfg.Dir)
		if front.conns.Load() == 0 {
			t.Fatal("the joiner never reached the interceptor")
		}
		relay.mu.Lock()
		relayed, heard := relay.relayed, relay.fromJoin.Len()
		relay.mu.Unlock()
		if relayed != 0 || heard != 0 {
			t.Errorf("the interceptor got %d pairing streams and %d bytes of the joiner's proof", relayed, heard)
		}
		if f, open := failures(inviter); !open || f != 0 || !inviter.invites.open(time.Now()) {
			t.Errorf("the interception cost the invite: %d failures, open %v", f, open)
		}
		// The genuine code still works.
		start2 := time.Now()
		j, err := Join(ctxT(t, 30*time.Second), testConfig(t, "genuine"), code, "genuine")
		if err != nil {
			t.Fatalf("genuine join after the interception: %v", err)
		}
		j.Close()
		t.Logf("interceptor: reached over %d TCP connection(s), the joiner's handshake failed in %v (%v), 0 bytes of proof sent, invite intact; genuine pairing afterwards took %v",
			front.conns.Load(), took.Round(time.Millisecond), errJoin, time.Since(start2).Round(time.Millisecond))
	})

	t.Run("peer id and addresses without the secret", func(t *testing.T) {
		inviter := newMesh(t, 1)[0]
		code, _, _ := inviter.Invite(time.Minute)
		inv, _ := wire.ParseInvite(code)
		guesses := 0
		for inviter.invites.open(time.Now()) {
			if guesses == 2*MaxInviteFailures {
				t.Fatalf("the invite survives %d guesses", guesses)
			}
			guesses++
			guess := *inv
			rand.Read(guess.Secret[:])
			sk, _, _ := crypto.GenerateEd25519Key(nil)
			h, err := joinHost(sk)
			if err != nil {
				t.Fatal(err)
			}
			var offer *pairMsg
			err = pairWith(ctxT(t, 10*time.Second), h, &guess, guess.Addrs, "guess", 5*time.Second, func(m *pairMsg, _ peer.AddrInfo) (string, error) {
				offer = m
				return "", errors.New("stop")
			})
			h.Close()
			if !errors.Is(err, ErrInviteRefused) || offer != nil {
				t.Fatalf("guess %d: %v (offer %v)", guesses, err, offer != nil)
			}
			// The joiner can hear the refusal before the inviter has counted the guess:
			// the loop's check of the invite would then see it open once more.
			eventually(t, "the inviter counts the guess", func() error {
				if f, _ := failures(inviter); f < guesses {
					return fmt.Errorf("%d failures counted after %d guesses", f, guesses)
				}
				return nil
			})
		}
		if guesses != MaxInviteFailures {
			t.Errorf("the invite died after %d guesses, want %d", guesses, MaxInviteFailures)
		}
		_, err := Join(ctxT(t, 30*time.Second), testConfig(t, "genuine"), code, "genuine")
		if !errors.Is(err, ErrInviteRefused) {
			t.Errorf("the genuine code after %d wrong guesses: %v, want ErrInviteRefused", guesses, err)
		}
		if n := len(inviter.Devices()); n != 1 {
			t.Errorf("the inviter lists %d devices, want 1", n)
		}
		t.Logf("no secret: %d guesses to lockout, no key offered", guesses)
	})
}
