package share

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node/internal/wire"
)

// doc is a compact JSON document of about n bytes.
func doc(n int) []byte { return []byte(`{"title":"` + strings.Repeat("z", n) + `"}`) }

func outgoing(docs ...[]byte) Outgoing {
	return Outgoing{Grant: "0123abcd", Purpose: "research", Fields: testFields, Docs: docs}
}

// refusals records what OnRefuse was told.
type refusals struct {
	mu   sync.Mutex
	from []peer.ID
	errs []error
}

func (r *refusals) on(p peer.ID, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.from, r.errs = append(r.from, p), append(r.errs, err)
}

func (r *refusals) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.from)
}

// TestReceiverAllow: only the peers Allow accepts may deliver; any other sender is refused
// before its header is read, reads why, and the destination is told.
func TestReceiverAllow(t *testing.T) {
	a, b, c := newHost(t), newHost(t), newHost(t)
	var got capture
	var refused refusals
	allow := func(p peer.ID) error {
		if p != c.ID() {
			return fmt.Errorf("sender %s is not allowed here", p)
		}
		return nil
	}
	r := NewReceiver(b, &Options{OnShare: got.on, Allow: allow, OnRefuse: refused.on})
	defer r.Close()
	connect(t, a, b)
	connect(t, c, b)
	ctx := context.Background()

	_, err := Send(ctx, a, b.ID(), outgoing(doc(10)))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "is not allowed here") {
		t.Fatalf("share from a peer not allowed: %v, want ErrRefused saying why", err)
	}
	if got.count() != 0 {
		t.Fatalf("a share from a peer not allowed was kept")
	}
	if refused.count() != 1 || refused.from[0] != a.ID() {
		t.Errorf("OnRefuse told of %v, want %s", refused.from, a.ID())
	}
	if _, err := Send(ctx, c, b.ID(), outgoing(doc(10))); err != nil {
		t.Fatalf("share from an allowed peer: %v", err)
	}
	if got.count() != 1 || got.shares[0].Sender != c.ID() {
		t.Errorf("kept %d shares, want the allowed peer's", got.count())
	}
}

// TestReceiverByteCaps: a share over MaxBytes is refused, and the shares kept draw on
// MaxTotalBytes; a refused share gives its bytes back.
func TestReceiverByteCaps(t *testing.T) {
	a, b := newHost(t), newHost(t)
	var got capture
	r := NewReceiver(b, &Options{OnShare: got.on, MaxBytes: 128 << 10, MaxTotalBytes: 160 << 10})
	defer r.Close()
	connect(t, a, b)
	ctx := context.Background()

	// Per share.
	_, err := Send(ctx, a, b.ID(), outgoing(doc(200<<10)))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "more than 131072 bytes in one share") {
		t.Fatalf("share over MaxBytes: %v, want a refusal naming the limit", err)
	}
	// In all: 100 KiB fits, another 100 KiB does not, 50 KiB does (the refused share
	// took nothing).
	if _, err := Send(ctx, a, b.ID(), outgoing(doc(100<<10))); err != nil {
		t.Fatalf("first share: %v", err)
	}
	_, err = Send(ctx, a, b.ID(), outgoing(doc(100<<10)))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "163840 bytes in all") {
		t.Fatalf("share past MaxTotalBytes: %v, want a refusal naming the limit", err)
	}
	if _, err := Send(ctx, a, b.ID(), outgoing(doc(50<<10))); err != nil {
		t.Fatalf("share within what is left: %v", err)
	}
	if got.count() != 2 {
		t.Errorf("kept %d shares, want 2", got.count())
	}
}

// TestReceiverCapBeforeBody: a frame whose announced length passes the per-share cap is
// refused from its length alone: the destination answers before the body arrives.
func TestReceiverCapBeforeBody(t *testing.T) {
	a, b := newHost(t), newHost(t)
	r := NewReceiver(b, &Options{MaxBytes: 64 << 10, StepTimeout: 10 * time.Second})
	defer r.Close()
	connect(t, a, b)
	s, err := a.NewStream(context.Background(), b.ID(), ID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	hb, err := Header{Grant: "0123abcd", Purpose: "research", Fields: testFields, Count: 1}.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.WriteFrame(s, typeHeader, hb); err != nil {
		t.Fatal(err)
	}
	// A batch frame of 1 MiB announced; not one byte of its body sent.
	var lenType [5]byte
	binary.BigEndian.PutUint32(lenType[:], 1<<20)
	lenType[4] = byte(typeBatch)
	if _, err := s.Write(lenType[:]); err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(3 * time.Second))
	typ, body, err := wire.ReadFrame(s, MaxReason+1)
	if err != nil || typ != typeRefusal {
		t.Fatalf("answer to an oversized frame: %q %q %v, want a refusal before the body", byte(typ), body, err)
	}
	if !strings.Contains(string(body), "in one share") {
		t.Errorf("refusal %q does not name the limit", body)
	}
}
