package node

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/meshsync/meshsync/node/internal/cpace"
	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/store"
)

// Test plan row 13 with short codes: a code of 33 bits is safe because it only ever feeds
// CPace. These tests pair real nodes over loopback.

// shortJoinConfig is a joiner's configuration that reaches the inviter by --peer.
func shortJoinConfig(t *testing.T, name string, addrs []string) Config {
	cfg := testConfig(t, name)
	cfg.JoinPeers = addrs
	return cfg
}

// wrongCode is code with its last word replaced by another.
func wrongCode(t *testing.T, code string) string {
	t.Helper()
	sc, err := wire.ParseShortCode(code)
	if err != nil {
		t.Fatal(err)
	}
	sc.Words[2] = (sc.Words[2] + 1) % wire.WordCount()
	return sc.String()
}

// TestPairShortCode: `pair --short` then `join 4-… --peer ADDR` pairs, and the invite is
// spent.
func TestPairShortCode(t *testing.T) {
	inviter := newMesh(t, 1)[0]
	inv, err := inviter.InviteShort(0)
	if err != nil {
		t.Fatal(err)
	}
	if !wire.LooksShort(inv.Code) || len(inv.Addrs) == 0 || time.Until(inv.Expires) > MaxShortInviteExpiry {
		t.Fatalf("short invite %+v", inv)
	}
	start := time.Now()
	j, err := Join(ctxT(t, 30*time.Second), shortJoinConfig(t, "joiner", inv.Addrs), strings.ToUpper(inv.Code), "joiner")
	if err != nil {
		t.Fatalf("join with %s: %v", inv.Code, err)
	}
	defer j.Close()
	t.Logf("paired with %s in %v", inv.Code, time.Since(start))
	if !bytes.Equal(j.st.Keys().MeshKeyForPairing(), inviter.st.Keys().MeshKeyForPairing()) {
		t.Fatal("the joiner holds another mesh key")
	}
	if _, ok := inviter.isMember(j.PeerID()); !ok {
		t.Fatal("the inviter does not list the joiner")
	}
	if st := inviter.InviteState(); st.Open || st.Closed != "used" || !st.Short {
		t.Fatalf("invite state after pairing: %+v", st)
	}
	mustStart(t, j)
	if err := inviter.Put("notes", "hello", []byte(`"short"`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the joiner syncs", func() error { return hasValue(j, "notes", "hello", `"short"`) })
}

// TestPairShortWrongCode: a wrong code fails on the joiner's side with a refusal, leaves
// no store, and what the joiner received is the inviter's CPace share and confirmation
// and nothing else: no error text that tells how wrong the guess was, no sealed byte.
func TestPairShortWrongCode(t *testing.T) {
	inviter := newMesh(t, 1)[0]
	inv, err := inviter.InviteShort(0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := shortJoinConfig(t, "wrong", inv.Addrs)
	_, err = Join(ctxT(t, 30*time.Second), cfg, wrongCode(t, inv.Code), "wrong")
	if !errors.Is(err, ErrInviteRefused) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("join with a wrong code: %v, want ErrInviteRefused saying the code does not match", err)
	}
	noStoreIn(t, cfg.Dir)
	eventually(t, "the inviter counts the failure", func() error {
		if st := inviter.InviteState(); st.Failures != 1 || !st.Open {
			return fmt.Errorf("invite state %+v", st)
		}
		return nil
	})

	// The same by hand, reading every byte the inviter sends to a wrong guess.
	h := plainHost(t)
	h.Peerstore().AddAddrs(inviter.id, inviter.Host().Addrs(), peerstore.TempAddrTTL)
	s, err := h.NewStream(ctxT(t, 10*time.Second), inviter.id, PairShortProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	nonce := make([]byte, shortNonceSize)
	rand.Read(nonce)
	st, msg, err := cpace.Start(cpace.Initiator, shortBind([]byte(wrongCode(t, inv.Code)), h.ID(), inviter.id, nonce), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(&pairMsg{Nonce: nonce, PAKE: msg})
	if err := wire.WriteFrame(s, wire.TypePair, b); err != nil {
		t.Fatal(err)
	}
	typ, body, err := wire.ReadFrame(s, wire.MaxPairFrame)
	if err != nil || typ != wire.TypePair {
		t.Fatalf("the inviter's answer: %v", err)
	}
	var reply map[string]json.RawMessage
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatal(err)
	}
	if len(reply) != 2 || reply["pake"] == nil || reply["confirm"] == nil {
		t.Fatalf("the inviter answered a wrong guess with %s, want only its share and confirmation", body)
	}
	m, _ := decodePairMsg(body)
	isk, _, err := st.Finish(m.PAKE)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := deriveShortKeys(isk)
	if hmac.Equal(keys.confirm, m.Confirm) {
		t.Fatal("the confirmation of a wrong guess checks")
	}
	// A proof sealed under the wrong key: the inviter ends the stream, sends nothing more.
	wire.WriteFrame(s, wire.TypePair, bytes.Repeat([]byte{1}, 64))
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, _ := io.ReadAll(s)
	if len(rest) != 0 {
		t.Fatalf("the inviter sent %d more bytes after a wrong guess", len(rest))
	}
	if bytes.Contains(body, inviter.st.Keys().MeshKeyForPairing()) {
		t.Fatal("the mesh key reached a wrong guess")
	}
}

// TestShortInviteClosesAfterThreeFailures: three wrong codes close the invite; the right
// code is then refused too, and the inviter's InviteState says why.
func TestShortInviteClosesAfterThreeFailures(t *testing.T) {
	inviter := newMesh(t, 1)[0]
	inv, err := inviter.InviteShort(0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= MaxInviteFailures; i++ {
		_, err := Join(ctxT(t, 30*time.Second), shortJoinConfig(t, fmt.Sprint("guess", i), inv.Addrs), wrongCode(t, inv.Code), "guess")
		if !errors.Is(err, ErrInviteRefused) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
		eventually(t, "the failure counted", func() error {
			if st := inviter.InviteState(); st.Failures != i {
				return fmt.Errorf("state %+v, want %d failures", st, i)
			}
			return nil
		})
	}
	if st := inviter.InviteState(); st.Open || st.Closed != "failures" || st.Failures != MaxInviteFailures {
		t.Fatalf("after %d wrong codes: %+v, want closed after failures", MaxInviteFailures, st)
	}
	// The inviting device is told: a health warning in its status.
	told := false
	for _, w := range inviter.States().Warnings {
		told = told || w.Kind == WarnInviteFailures && strings.Contains(w.Message, "closed after 3 wrong codes")
	}
	if !told {
		t.Errorf("no warning of the closed invite in %+v", inviter.States().Warnings)
	}
	cfg := shortJoinConfig(t, "late", inv.Addrs)
	if _, err := Join(ctxT(t, 30*time.Second), cfg, inv.Code, "late"); !errors.Is(err, ErrInviteRefused) {
		t.Fatalf("the right code after the invite closed: %v, want ErrInviteRefused", err)
	}
	noStoreIn(t, cfg.Dir)
	if n := len(inviter.Devices()); n != 1 {
		t.Fatalf("the inviter lists %d devices", n)
	}
}

// TestPairShortMITM: a host that poses as the inviter (the joiner is given its address)
// and relays both sides byte for byte — the strongest position short of knowing the code
// — breaks the pairing: the two sides bind different peer ids into CPace, so their keys
// differ, the joiner's check of the confirmation fails, no sealed byte is sent, and the
// inviter counts a failed attempt. The relay saw two CPace shares and a MAC.
func TestPairShortMITM(t *testing.T) {
	inviter := newMesh(t, 1)[0]
	meshKey := inviter.st.Keys().MeshKeyForPairing()
	inv, err := inviter.InviteShort(0)
	if err != nil {
		t.Fatal(err)
	}
	relay := newPairRelay(t, inviter, PairShortProtocol)
	var via []string
	for _, a := range relay.h.Addrs() {
		via = append(via, a.String()+"/p2p/"+relay.h.ID().String())
	}
	cfg := shortJoinConfig(t, "victim", via)
	_, err = Join(ctxT(t, 30*time.Second), cfg, inv.Code, "victim")
	if !errors.Is(err, ErrInviteRefused) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("join through the relay: %v, want the code refused", err)
	}
	noStoreIn(t, cfg.Dir)
	eventually(t, "the inviter counts the relayed attempt", func() error {
		if st := inviter.InviteState(); st.Failures != 1 {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	relay.mu.Lock()
	fromInv, fromJoin := bytes.Clone(relay.fromInv.Bytes()), bytes.Clone(relay.fromJoin.Bytes())
	relay.mu.Unlock()
	if relay.relayed != 1 || bytes.Contains(fromInv, meshKey) {
		t.Fatalf("the relay carried %d streams; mesh key seen: %v", relay.relayed, bytes.Contains(fromInv, meshKey))
	}
	// One frame each way: the opening and the answer; no proof, no offer.
	for what, b := range map[string][]byte{"joiner": fromJoin, "inviter": fromInv} {
		typ, body, err := wire.ReadFrame(bytes.NewReader(b), wire.MaxPairFrame)
		if err != nil || typ != wire.TypePair {
			t.Fatalf("%s's bytes: %v", what, err)
		}
		if extra := len(b) - len(body) - 5; extra != 0 {
			t.Errorf("the %s sent %d bytes beyond its first frame through the relay", what, extra)
		}
	}
	// The genuine joiner still pairs: the relayed attempt cost one of three.
	j, err := Join(ctxT(t, 30*time.Second), shortJoinConfig(t, "genuine", inv.Addrs), inv.Code, "genuine")
	if err != nil {
		t.Fatalf("the genuine joiner after a relayed attempt: %v", err)
	}
	j.Close()
	t.Logf("short-code MITM: refused; the relay saw %d bytes from the joiner and %d from the inviter, no key", len(fromJoin), len(fromInv))
}

// TestShortTranscriptNeedsSecret (offline guessing): a recorded run — the joiner's nonce
// and share, the inviter's share and confirmation, both peer ids — lets no one check a
// guess of the code. The check needs a secret scalar: with the joiner's (replayed from
// its randomness) and the right code, the recorded confirmation is reproduced; with the
// right code but without that scalar (a fresh one), it is not; with the scalar and a
// wrong code, the share does not even come out as recorded.
func TestShortTranscriptNeedsSecret(t *testing.T) {
	code := []byte("4-garden-orbit-pencil")
	joiner, inviter := testPeerID(t), testPeerID(t)
	nonce := bytes.Repeat([]byte{9}, shortNonceSize)
	joinerRand := bytes.Repeat([]byte{0x42}, 64) // the joiner's secret scalar comes from these bytes

	// The run, as it went over the wire.
	jst, ya, err := cpace.Start(cpace.Initiator, shortBind(code, joiner, inviter, nonce), bytes.NewReader(joinerRand))
	if err != nil {
		t.Fatal(err)
	}
	ist, yb, err := cpace.Start(cpace.Responder, shortBind(code, joiner, inviter, nonce), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iisk, _, err := ist.Finish(ya)
	if err != nil {
		t.Fatal(err)
	}
	ikeys, _ := deriveShortKeys(iisk)
	recorded := struct{ ya, yb, confirm []byte }{ya, yb, ikeys.confirm}
	jisk, _, err := jst.Finish(recorded.yb)
	if err != nil {
		t.Fatal(err)
	}
	if jkeys, _ := deriveShortKeys(jisk); !hmac.Equal(jkeys.confirm, recorded.confirm) {
		t.Fatal("the honest run does not confirm")
	}

	// check computes the confirmation a guess would give, with the scalar drawn from rnd.
	check := func(guess []byte, rnd io.Reader) (share []byte, confirms bool) {
		st, share, err := cpace.Start(cpace.Initiator, shortBind(guess, joiner, inviter, nonce), rnd)
		if err != nil {
			t.Fatal(err)
		}
		isk, _, err := st.Finish(recorded.yb)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := deriveShortKeys(isk)
		return share, hmac.Equal(k.confirm, recorded.confirm)
	}
	if share, ok := check(code, bytes.NewReader(joinerRand)); !ok || !bytes.Equal(share, recorded.ya) {
		t.Fatal("with the joiner's scalar and the right code, the transcript does not check")
	}
	for i := range 20 {
		if _, ok := check(code, rand.Reader); ok {
			t.Fatalf("try %d: the right code checks against the transcript without the joiner's scalar", i)
		}
	}
	wrong := []byte("4-garden-orbit-silver")
	if share, ok := check(wrong, bytes.NewReader(joinerRand)); ok || bytes.Equal(share, recorded.ya) {
		t.Fatal("a wrong code with the joiner's scalar reproduces the transcript")
	}
}

func testPeerID(t *testing.T) peer.ID {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestInviteShortBounds: a short code lives at most ten minutes, a replica has none, and a
// new invite replaces the open one.
func TestInviteShortBounds(t *testing.T) {
	inviter := newMesh(t, 1)[0]
	if _, err := inviter.InviteShort(MaxShortInviteExpiry + time.Second); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a short code for 10m1s: %v, want ErrInvalid", err)
	}
	inv, err := inviter.InviteShort(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := inviter.Invite(time.Minute); err != nil {
		t.Fatal(err)
	}
	// The long invite replaced the short one: the short code is refused.
	_, err = Join(ctxT(t, 30*time.Second), shortJoinConfig(t, "j", inv.Addrs), inv.Code, "j")
	if !errors.Is(err, ErrInviteRefused) {
		t.Fatalf("a replaced short code: %v", err)
	}
}
