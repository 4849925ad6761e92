package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// ScopedSyncRow is a fresh device that holds one small collection (selective sync) joining
// the source that holds the bench's records besides: what it receives and how long it
// takes, beside the full initial sync of the same run. The records outside the scope
// never travel.
type ScopedSyncRow struct {
	Row        string  `json:"row"`          // "scoped_initial_sync"
	Records    int     `json:"records"`      // records of the scope, all received
	OutOfScope int     `json:"out_of_scope"` // records the source holds outside it
	Held       int     `json:"held"`         // application records the scoped device holds after
	Seconds    float64 `json:"seconds"`
	WireBytes  int64   `json:"wire_bytes"` // TCP payload from the source during the sync
	// The full initial sync of this run, for comparison.
	FullRecords   int     `json:"full_records"`
	FullSeconds   float64 `json:"full_seconds"`
	FullWireBytes int64   `json:"full_wire_bytes"`
}

// scopedCollection is the collection the scoped device holds.
const scopedCollection = "bench-scoped"

// scopedSync writes 1 % of the bench's record count (at least 100) into a second
// collection on A, has device C join scoped to it, and measures C's initial sync. C is
// closed afterwards, so that the later rows measure A and B alone.
func (r *run) scopedSync(ctx context.Context) error {
	o := r.o
	n := max(100, o.Records/100)
	if _, err := fillCollection(r.a.Store(), scopedCollection, n, o.Size); err != nil {
		return fmt.Errorf("scoped sync: %w", err)
	}
	r.log("C: joining A scoped to %d of its %d records", n, n+o.Records)
	code, _, err := r.a.Invite(time.Minute)
	if err != nil {
		return err
	}
	c, err := node.Join(ctx, r.config("scoped"), code, "scoped")
	if err != nil {
		return err
	}
	defer c.Close()
	sc, err := store.NewScope(scopedCollection)
	if err != nil {
		return err
	}
	if _, err := c.SetScope(sc, store.ScopeOptions{}); err != nil {
		return err
	}
	sub := c.Subscribe(1 << 16)
	defer sub.Close()
	// What reaches every socket whose far end is A, before and after: C's sync, and B's
	// idle traffic meanwhile (a few hundred bytes).
	_, before, _, _ := tcpBytes(nil, tcpPorts(r.a.Addrs()))
	t0 := time.Now()
	if err := c.Start(ctx); err != nil {
		return err
	}
	if err := c.SyncNow(ctx); err != nil {
		return err
	}
	got, missed, err := waitCollection(ctx, sub, scopedCollection, n, syncTimeout(n))
	el := time.Since(t0)
	if err != nil {
		return fmt.Errorf("scoped sync: %w", err)
	}
	if missed > 0 || got != n {
		return fmt.Errorf("scoped sync moved %d records (%d more not seen), want %d", got, missed, n)
	}
	_, after, _, _ := tcpBytes(nil, tcpPorts(r.a.Addrs()))
	wire := after - before
	roots, err := c.Store().Replication().Roots()
	if err != nil {
		return err
	}
	held := 0
	for _, rt := range roots {
		if !rt.Tag.Reserved() {
			held += int(rt.Root.Count)
		}
	}
	row := ScopedSyncRow{Row: "scoped_initial_sync", Records: got, OutOfScope: o.Records, Held: held,
		Seconds: el.Seconds(), WireBytes: wire}
	for _, x := range r.rows {
		if full, ok := x.(InitialSyncRow); ok {
			row.FullRecords, row.FullSeconds, row.FullWireBytes = full.Records, full.Seconds, full.WireBytes
		}
	}
	if held != n {
		return errors.New("scoped sync: the scoped device holds records outside its scope")
	}
	r.rows = append(r.rows, row)
	r.log("scoped initial sync: %d records in %.2f s", got, el.Seconds())
	return nil
}
