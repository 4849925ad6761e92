package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// hostile is a real paired device of a mesh that speaks the sync and push protocols by
// hand (issue 15, item 6). It joined with a real invite, so it holds the mesh key, its
// device record is on every device, and its hellos prove membership; but its node runs no
// device loops and serves neither protocol, so it does only what a test tells it:
//
//   - seal any envelope under the mesh key (seal, forge): any collection (reserved ones
//     too), any device id, any version vector, any key epoch or key;
//   - open sync sessions with a hello it may lie in (openSync), run the reconciliation
//     honestly (sess.reconcile), then send batches of anything (sess.batch, sess.end);
//   - open push streams (openPush) and push anything;
//   - open as many of these at once as it likes.
//
// The target's stream handlers are the real ones; sess.ended reports whether the target
// ended the session. Use the embedded Node for honest moves (h.syncWith(ctx, target.id)).
type hostile struct {
	*Node
	t      testing.TB
	target *Node
}

// newHostile pairs a hostile device named name with target, connected to it.
func newHostile(t testing.TB, target *Node, name string) *hostile {
	t.Helper()
	code, _, err := target.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Join(ctxT(t, 30*time.Second), testConfig(t, name), code, name)
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	t.Cleanup(func() { n.Close() })
	n.manual = true // no device loops: no honest sessions or pushes of its own
	mustStart(t, n)
	n.Host().RemoveStreamHandler(SyncProtocol)
	n.Host().RemoveStreamHandler(PushProtocol)
	if err := n.Host().Connect(ctxT(t, 10*time.Second), peer.AddrInfo{ID: target.id, Addrs: target.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	return &hostile{Node: n, t: t, target: target}
}

// forge seals f under the hostile device's keys (store.Store.SealForTest).
func (h *hostile) forge(f store.Forgery) []byte {
	h.t.Helper()
	raw, err := h.st.Replication().SealForTest(f)
	if err != nil {
		h.t.Fatal(err)
	}
	return raw
}

// seal is forge for the common case: a JSON value of collection/key with version v under
// key epoch epoch.
func (h *hostile) seal(collection, key, value string, v resolve.Version, epoch uint32) []byte {
	h.t.Helper()
	return h.forge(store.Forgery{Collection: collection, Key: key, Value: []byte(value), Version: v, KeyEpoch: epoch})
}

// version is a version written by dev with vector vv, clocked now.
func version(dev resolve.DeviceID, vv resolve.VersionVector) resolve.Version {
	return resolve.Version{Device: dev, Clock: resolve.Timestamp(time.Now().UnixMilli()) << 16, VV: vv}
}

// hostileSession is one stream to the target, driven by hand.
type hostileSession struct {
	*frameRW
	h      *hostile
	theirs *wire.Hello // the target's hello (sync only)
}

func (h *hostile) open(ctx context.Context, proto protocol.ID) (*hostileSession, error) {
	s, err := h.Host().NewStream(ctx, h.target.id, proto)
	if err != nil {
		return nil, err
	}
	return &hostileSession{frameRW: &frameRW{s: s, step: 10 * time.Second, limit: wire.MaxFrame}, h: h}, nil
}

// honestHello is the hello the hostile device's node would send as the initiator.
func (h *hostile) honestHello() *wire.Hello {
	h.t.Helper()
	hl, err := h.hello(h.target.id, true)
	if err != nil {
		h.t.Fatal(err)
	}
	return hl
}

// openSync opens a sync session as the initiator and exchanges hellos: lie (when not nil)
// edits the honest hello first (roots, sequences, epochs …; the proof stays valid).
func (h *hostile) openSync(ctx context.Context, lie func(*wire.Hello)) (*hostileSession, error) {
	mine := h.honestHello()
	if lie != nil {
		root, fp := mine.RootCount, mine.RootFP
		lie(mine)
		if mine.RootCount != root || mine.RootFP != fp {
			mine.Roots = nil // a lie about the root: the store as one untagged tree
		}
	}
	sess, err := h.open(ctx, SyncProtocol)
	if err != nil {
		return nil, err
	}
	if err := sess.write(wire.TypeHello, mine.Marshal()); err != nil {
		sess.s.Reset()
		return nil, err
	}
	b, err := sess.expect(wire.TypeHello)
	if err == nil {
		sess.theirs, err = wire.UnmarshalHello(b)
	}
	if err != nil {
		sess.s.Reset()
		return nil, fmt.Errorf("read the target's hello: %w", err)
	}
	return sess, nil
}

// openPush opens a push stream with the hostile device's store epoch.
func (h *hostile) openPush(ctx context.Context) (*hostileSession, error) {
	sess, err := h.open(ctx, PushProtocol)
	if err != nil {
		return nil, err
	}
	if err := sess.write(wire.TypePushOpen, (&wire.PushOpen{Epoch: h.st.Replication().Epoch()}).Marshal()); err != nil {
		sess.s.Reset()
		return nil, err
	}
	return sess, nil
}

// reconcile runs the Merkle reconciliation honestly over the hostile store's summary; the
// target runs it when either hello calls for it.
func (sess *hostileSession) reconcile() (need, have []merkle.ID, err error) {
	ms := merkle.NewInitiator(sess.h.st.Replication().Summary(nil), merkle.Config{})
	msg, err := ms.Start()
	for err == nil && msg != nil {
		if err := sess.write(wire.TypeMerkle, msg); err != nil {
			return nil, nil, err
		}
		if ms.Done() {
			break
		}
		b, rerr := sess.expect(wire.TypeMerkle)
		if rerr != nil {
			return nil, nil, rerr
		}
		msg, err = ms.Handle(b)
	}
	if err != nil {
		return nil, nil, err
	}
	need, have = ms.Result()
	return need, have, nil
}

// batch sends one Batch frame.
func (sess *hostileSession) batch(from, to uint64, envs ...[]byte) error {
	return sess.write(wire.TypeBatch, (&wire.Batch{From: from, To: to, Envelopes: envs}).Marshal())
}

// end sends End claiming sent envelopes.
func (sess *hostileSession) end(sent uint64) error {
	return sess.write(wire.TypeEnd, (&wire.End{Sent: sent}).Marshal())
}

// ended drains the stream until it fails or the wait passes; it reports whether the
// target reset the stream (ended the session) rather than closing it cleanly or waiting.
func (sess *hostileSession) ended(wait time.Duration) bool {
	sess.s.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, sess.s)
	return errors.Is(err, network.ErrReset)
}

// close resets the stream.
func (sess *hostileSession) close() { sess.s.Reset() }

// bigRaw is a KindRaw forgery of about n bytes of random data under the hostile device's
// own name, counted c.
func (h *hostile) bigRaw(key string, n int, c uint64) []byte {
	h.t.Helper()
	v := make([]byte, n)
	rand.Read(v)
	dev := h.self.ID
	return h.forge(store.Forgery{Collection: "notes", Key: key, Kind: resolve.KindRaw, Value: v,
		Version: version(dev, resolve.VersionVector{dev: c})})
}
