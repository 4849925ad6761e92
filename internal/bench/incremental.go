package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// waitSession waits until n has finished a session with p that ended after t.
func waitSession(ctx context.Context, n *node.Node, p string, t time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		for _, d := range n.States().Devices {
			if d.PeerID.String() == p && d.LastSync.After(t) && d.Status != node.StatusSyncing {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a session: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// reopenB closes B (when open) and opens it again (not started), timing the unlock.
func (r *run) reopenB(ctx context.Context) (time.Duration, error) {
	if r.b != nil {
		if err := r.b.Close(); err != nil {
			return 0, err
		}
		r.b = nil
	}
	t0 := time.Now()
	b, err := node.Open(ctx, r.config("b"))
	if err != nil {
		return 0, err
	}
	r.b = b
	return time.Since(t0), nil
}

// reconnect starts B, waits for its session with A and returns the TCP bytes of that
// connection (B's view) and the time from Start.
func (r *run) reconnect(ctx context.Context, sub *store.Subscription, want int) (sent, recv int64, el time.Duration, err error) {
	t0 := time.Now()
	if err := r.startB(ctx); err != nil {
		return 0, 0, 0, err
	}
	if want > 0 {
		if _, _, err := waitChanges(ctx, sub, want, time.Minute); err != nil {
			return 0, 0, 0, err
		}
		el = time.Since(t0)
	}
	if err := waitSession(ctx, r.b, r.a.PeerID().String(), t0.Round(0)); err != nil {
		return 0, 0, 0, err
	}
	if want == 0 {
		el = time.Since(t0)
	}
	sent, recv, _, err = tcpBytes(tcpPorts(r.b.Addrs()), tcpPorts(r.a.Addrs()))
	return sent, recv, el, err
}

// incremental measures d changes on A reaching B, which was offline: a Merkle
// reconciliation of the two stores' summaries, and the fast path of a real session.
func (r *run) incremental(ctx context.Context) error {
	o := r.o
	r.log("unlock, and a reconnect with nothing to send (baseline)")
	unlock, err := r.reopenB(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	argon2.IDKey([]byte("bench passphrase"), make([]byte, 16), r.kdf.Time, r.kdf.Memory, r.kdf.Threads, 32)
	kdf := time.Since(t0)
	r.rows = append(r.rows, UnlockRow{Row: "unlock", Seconds: unlock.Seconds(), TestKDF: r.kdf != store.DefaultKDF,
		KDF: fmt.Sprintf("argon2id t=%d m=%dMiB p=%d", r.kdf.Time, r.kdf.Memory>>10, r.kdf.Threads), KDFSeconds: kdf.Seconds()})
	cs, cr, cel, err := r.reconnect(ctx, nil, 0)
	if err != nil {
		return fmt.Errorf("baseline reconnect: %w", err)
	}

	r.log("incremental: B offline, A changes %d of %d records", o.Changes, o.Records)
	if err := r.b.Close(); err != nil {
		return err
	}
	r.b = nil
	rng := mrand.New(mrand.NewPCG(1, 2))
	val := make([]byte, o.Size)
	for _, i := range rng.Perm(o.Records)[:o.Changes] {
		rand.Read(val)
		if err := r.a.PutRaw(collection, recordKey(i), val); err != nil {
			return err
		}
	}
	if _, err := r.reopenB(ctx); err != nil {
		return err
	}

	// Merkle: the node's reconciliation over the two stores' real summaries, in memory.
	t0 = time.Now()
	ini := merkle.NewInitiator(r.b.Store().Replication().Summary(nil), merkle.Config{})
	resp := merkle.NewResponder(r.a.Store().Replication().Summary(nil), merkle.Config{})
	st, err := merkle.Exchange(ini, resp)
	mel := time.Since(t0)
	if err != nil {
		return err
	}
	need, _ := ini.Result()
	r.rows = append(r.rows, IncrementalRow{Row: "incremental_merkle", N: o.Records, D: o.Changes, Found: len(need),
		BytesSent: int64(st.BytesSent), BytesReceived: int64(st.BytesReceived), RoundTrips: st.RoundTrips,
		Seconds: mel.Seconds(), FloorSeconds: float64(st.RoundTrips) * r.rtt.Seconds(),
		Measured: "merkle.Exchange over both bbolt summaries in memory: reconciliation messages only, no network"})

	// Fast path: a real session on a fresh connection.
	sub := r.b.Subscribe(1 << 12)
	defer sub.Close()
	stop := r.phase("incremental")
	fs, fr, fel, err := r.reconnect(ctx, sub, o.Changes)
	stop()
	if err != nil {
		return fmt.Errorf("fast path: %w", err)
	}
	r.rows = append(r.rows, IncrementalRow{Row: "incremental_fast", N: o.Records, D: o.Changes, Found: o.Changes,
		BytesSent: fs, BytesReceived: fr, RoundTrips: 1, Seconds: fel.Seconds(),
		FloorSeconds:     (r.rtt + r.commit).Seconds(),
		Measured:         "real session after B restarts: TCP payload of the new connection (TCP_INFO), time from Start until the d records are readable; round trips by protocol (hello, then batches and done in one flight)",
		ConnectBytesSent: cs, ConnectBytesReceived: cr, ConnectSeconds: cel.Seconds()})
	return nil
}

// push times writes on A until each is readable on B.
func (r *run) push(ctx context.Context) error {
	o := r.o
	r.log("push: %d writes on A, each until readable on B", o.Writes)
	sub := r.b.Subscribe(1 << 12)
	defer sub.Close()
	val := make([]byte, o.Size)
	wait := func(key string) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return fmt.Errorf("push of %s: %w", key, ctx.Err())
			case ch, ok := <-sub.C:
				if !ok {
					return errors.New("push: the store closed")
				}
				if ch.Collection == "push" && ch.Key == key {
					return nil
				}
			}
		}
	}
	if err := r.a.PutRaw("push", "warm-up", val); err != nil {
		return err
	}
	if err := wait("warm-up"); err != nil {
		return err
	}
	lat := make([]time.Duration, 0, o.Writes)
	put := make([]time.Duration, 0, o.Writes)
	stop := r.phase("push")
	defer stop()
	c0 := r.a.Store().Replication().Commits() + r.b.Store().Replication().Commits()
	for i := range o.Writes {
		key := "w" + strconv.Itoa(i)
		rand.Read(val)
		t0 := time.Now()
		if err := r.a.PutRaw("push", key, val); err != nil {
			return err
		}
		put = append(put, time.Since(t0))
		if err := wait(key); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	commits := r.a.Store().Replication().Commits() + r.b.Store().Replication().Commits() - c0
	stop()
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	r.rows = append(r.rows, PushRow{CommitsPerWrite: float64(commits) / float64(o.Writes), Row: "push", Writes: o.Writes, P50ms: ms(quantile(lat, 0.5)),
		P99ms: ms(quantile(lat, 0.99)), FloorMs: ms(r.rtt + r.commit), RTTms: ms(r.rtt), CommitMs: ms(r.commit),
		PutP50ms: ms(quantile(put, 0.5))})
	return nil
}
