package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// reconnectSmall is the store size of the reconnect row's reference measurement.
const reconnectSmall = 10000

// reconnectRepeats is how many reconnects after the first one the row times, at each
// size (medians of 11 reconnects: one slow sample on this shared machine no longer moves
// the ratio the bar reads; 5 did).
const reconnectRepeats = 10

// smallReconnect sets up the reconnect row's reference: a mesh of its own, where a
// source holds min(Records, 10,000) records and a fresh device C receives them. It times
// the first change after the pairing, then stops C's network: C reconnects with nothing
// to send in reconnectRow, each time just before B, so that both sizes are timed in the
// same state of the process and the machine (timed here, at the start of the run, the
// 10k reference ran in a small process on a quiet page cache and the ratio measured
// that too). The two nodes are closed after the row.
func (r *run) smallReconnect(ctx context.Context) error {
	held := min(r.o.Records, reconnectSmall)
	r.log("reconnect reference: a second mesh of %d records", held)
	src, err := node.Init(ctx, r.config("a10k"), "a10k")
	if err != nil {
		return err
	}
	r.smallSrc = src // closed by reconnectRow or the run's close
	if err := src.Start(ctx); err != nil {
		return err
	}
	if _, err := fillStore(src.Store(), held, r.o.Size); err != nil {
		return err
	}
	code, _, err := src.Invite(time.Minute)
	if err != nil {
		return err
	}
	c, err := node.Join(ctx, r.config("c"), code, "c")
	if err != nil {
		return err
	}
	r.smallC = c
	sub := c.Subscribe(1 << 16)
	defer sub.Close()
	if err := c.Start(ctx); err != nil {
		return err
	}
	if err := c.SyncNow(ctx); err != nil {
		return err
	}
	if _, _, err := waitChanges(ctx, sub, held, syncTimeout(held)); err != nil {
		return fmt.Errorf("reconnect reference: %w", err)
	}
	// The initial sync's own session ends before the reconnects start.
	if err := waitSession(ctx, c, src.PeerID().String(), time.Time{}); err != nil {
		return err
	}
	// The first change after the pairing, as a new user tries it: written on the source,
	// timed until the new device reads it.
	t0 := time.Now()
	if err := src.PutRaw("push", "first", []byte("first change")); err != nil {
		return err
	}
	if err := waitKey(ctx, sub, "push", "first"); err != nil {
		return fmt.Errorf("first change after pairing: %w", err)
	}
	r.firstPush = time.Since(t0)
	r.small.N = held
	return c.Stop()
}

// reconnectTimes collects one device's reconnects.
type reconnectTimes struct {
	row  ReconnectRow
	all  []time.Duration
	rest []time.Duration // all but the first
}

// reconnect stops nd's network and starts it again, until its session with src ended,
// and adds the time to t, with the commits both devices made from before the Stop.
// Nothing is written meanwhile: the reconnect has nothing to send either way.
func (t *reconnectTimes) reconnect(ctx context.Context, nd, src *node.Node) error {
	commits := func() uint64 { return nd.Store().Replication().Commits() + src.Store().Replication().Commits() }
	c0 := commits()
	if err := nd.Stop(); err != nil {
		return err
	}
	t0 := time.Now()
	if err := nd.Start(ctx); err != nil {
		return err
	}
	if err := nd.SyncNow(ctx); err != nil {
		return err
	}
	if err := waitSession(ctx, nd, src.PeerID().String(), t0.Round(0)); err != nil {
		return err
	}
	el := time.Since(t0)
	t.row.Commits += int(commits() - c0)
	if len(t.all) == 0 {
		t.row.FirstSeconds = el.Seconds()
		t.row.FirstBytesSent, t.row.FirstBytesReceived, _, _ = tcpBytes(tcpPorts(nd.Addrs()), tcpPorts(src.Addrs()))
		t.row.FirstCommits = int(commits() - c0)
	} else {
		t.rest = append(t.rest, el)
	}
	t.all = append(t.all, el)
	return nil
}

// done fills the row's medians and maximum.
func (t *reconnectTimes) done() ReconnectRow {
	slices.Sort(t.rest)
	slices.Sort(t.all)
	t.row.Row, t.row.P50Seconds = "reconnect", median(t.rest).Seconds()
	t.row.Reconnects, t.row.MedianSeconds, t.row.MaxSeconds = len(t.all), median(t.all).Seconds(), t.all[len(t.all)-1].Seconds()
	return t.row
}

// reconnectRow measures the reconnect of B at the full n beside the reference at 10,000
// records: 1 + reconnectRepeats times each, alternately, C (10,000) then B.
func (r *run) reconnectRow(ctx context.Context) error {
	r.log("reconnect: B at %d records and C at %d, %d times each", r.o.Records, r.small.N, 1+reconnectRepeats)
	var big, small reconnectTimes
	stop := r.phase("reconnect")
	var err error
	for range 1 + reconnectRepeats {
		if err = small.reconnect(ctx, r.smallC, r.smallSrc); err != nil {
			err = fmt.Errorf("reconnect reference: %w", err)
			break
		}
		if err = big.reconnect(ctx, r.b, r.a); err != nil {
			err = fmt.Errorf("reconnect: %w", err)
			break
		}
	}
	stop()
	if err != nil {
		return err
	}
	if err := errors.Join(r.smallC.Close(), r.smallSrc.Close()); err != nil {
		return err
	}
	r.smallC, r.smallSrc = nil, nil
	n := r.small.N
	r.small = small.done()
	r.small.N = n
	m := big.done()
	m.N = r.o.Records
	m.FirstPushAfterJoinMs = float64(r.firstPush) / 1e6
	m.SmallN, m.SmallFirstSeconds, m.SmallP50Seconds = r.small.N, r.small.FirstSeconds, r.small.P50Seconds
	m.SmallMedianSeconds, m.SmallMaxSeconds, m.SmallCommits = r.small.MedianSeconds, r.small.MaxSeconds, r.small.Commits
	if r.small.MedianSeconds > 0 {
		m.MedianRatio = m.MedianSeconds / r.small.MedianSeconds
	}
	if r.small.FirstSeconds > 0 {
		m.FirstRatio = m.FirstSeconds / r.small.FirstSeconds
	}
	if r.small.P50Seconds > 0 {
		m.P50Ratio = m.P50Seconds / r.small.P50Seconds
	}
	r.rows = append(r.rows, m)
	return nil
}

// median is the middle of sorted durations (the mean of the two middle ones for an even
// count).
func median(d []time.Duration) time.Duration {
	k := len(d)
	if k%2 == 1 {
		return d[k/2]
	}
	return (d[k/2-1] + d[k/2]) / 2
}

// waitKey waits until the record collection/key arrives on sub.
func waitKey(ctx context.Context, sub *store.Subscription, collection, key string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ch, ok := <-sub.C:
			if !ok {
				return errors.New("the store closed")
			}
			if ch.Collection == collection && ch.Key == key {
				return nil
			}
		}
	}
}
