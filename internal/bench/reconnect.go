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

// smallReconnect measures the reconnect row's reference: a mesh of its own, where a
// source holds min(Records, 10,000) records and a fresh device C receives them, then
// reconnects with nothing to send. Both are closed before anything else is measured.
func (r *run) smallReconnect(ctx context.Context) error {
	held := min(r.o.Records, reconnectSmall)
	r.log("reconnect reference: a second mesh of %d records", held)
	src, err := node.Init(ctx, r.config("a10k"), "a10k")
	if err != nil {
		return err
	}
	defer src.Close()
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
	defer c.Close()
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
	m, err := r.reconnects(ctx, c, src)
	if err != nil {
		return fmt.Errorf("reconnect reference: %w", err)
	}
	m.N = held
	r.small = m
	return errors.Join(c.Close(), src.Close())
}

// reconnects stops nd's network and starts it again 1 + reconnectRepeats times, each
// time until its session with src ended, and returns the first, the median of the
// others, and the median and maximum of all, with the commits both devices made from
// before each Stop. Nothing is written meanwhile: each reconnect has nothing to send
// either way.
func (r *run) reconnects(ctx context.Context, nd, src *node.Node) (ReconnectRow, error) {
	var times, all []time.Duration
	var row ReconnectRow
	commits := func() uint64 { return nd.Store().Replication().Commits() + src.Store().Replication().Commits() }
	for i := range 1 + reconnectRepeats {
		c0 := commits()
		if err := nd.Stop(); err != nil {
			return row, err
		}
		t0 := time.Now()
		if err := nd.Start(ctx); err != nil {
			return row, err
		}
		if err := nd.SyncNow(ctx); err != nil {
			return row, err
		}
		if err := waitSession(ctx, nd, src.PeerID().String(), t0.Round(0)); err != nil {
			return row, err
		}
		el := time.Since(t0)
		row.Commits += int(commits() - c0)
		all = append(all, el)
		if i == 0 {
			row.FirstSeconds = el.Seconds()
			row.FirstBytesSent, row.FirstBytesReceived, _, _ = tcpBytes(tcpPorts(nd.Addrs()), tcpPorts(src.Addrs()))
			row.FirstCommits = int(commits() - c0)
			continue
		}
		times = append(times, el)
	}
	slices.Sort(times)
	slices.Sort(all)
	row.Row, row.P50Seconds = "reconnect", median(times).Seconds()
	row.Reconnects, row.MedianSeconds, row.MaxSeconds = len(all), median(all).Seconds(), all[len(all)-1].Seconds()
	return row, nil
}

// reconnectRow measures the reconnect of B at the full n and sets it beside the
// reference measured at 10,000 records.
func (r *run) reconnectRow(ctx context.Context) error {
	r.log("reconnect: B at %d records, %d times", r.o.Records, 1+reconnectRepeats)
	stop := r.phase("reconnect")
	m, err := r.reconnects(ctx, r.b, r.a)
	stop()
	if err != nil {
		return fmt.Errorf("reconnect: %w", err)
	}
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
