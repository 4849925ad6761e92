package main

import (
	"fmt"
	"io"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/meshsync/meshsync/merkle"
)

type benchCmd struct {
	Sync      benchSyncCmd      `cmd:"" default:"withargs" help:"Run real nodes on loopback and print every figure beside the limit measured in the same run (the default)."`
	Reconcile benchReconcileCmd `cmd:"" help:"Reconcile two in-memory sets and print bytes, round trips and CPU time."`
}

type benchReconcileCmd struct {
	N     int   `help:"Items the two sets share." default:"1000000"`
	D     int   `help:"Differences, split between both sides." default:"10"`
	Seed  int64 `help:"Random seed." default:"1"`
	Table bool  `help:"Print the whole table n ∈ {1e3,1e5,1e6} × d ∈ {0,1,10,100,1000,10000} instead."`
}

type reconcileRow struct {
	N             int     `json:"n"`
	D             int     `json:"d"`
	BytesSent     int     `json:"bytes_sent"`
	BytesReceived int     `json:"bytes_received"`
	RoundTrips    int     `json:"round_trips"`
	Seconds       float64 `json:"seconds"`
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reconcileOnce(n, d int, seed int64) (reconcileRow, error) {
	if n < 0 || d < 0 {
		return reconcileRow{}, usagef("--n and --d must not be negative")
	}
	start := cpuTime()
	st, err := merkle.Simulate(n, d, seed, merkle.Config{})
	if err != nil {
		return reconcileRow{}, fmt.Errorf("reconcile n=%d d=%d: %w", n, d, err)
	}
	return reconcileRow{N: n, D: d, BytesSent: st.BytesSent, BytesReceived: st.BytesReceived,
		RoundTrips: st.RoundTrips, Seconds: (cpuTime() - start).Seconds()}, nil
}

func (c *benchReconcileCmd) Run(g *globals) error {
	var rows []reconcileRow
	if c.Table {
		for _, n := range []int{1000, 100000, 1000000} {
			for _, d := range []int{0, 1, 10, 100, 1000, 10000} {
				r, err := reconcileOnce(n, d, c.Seed)
				if err != nil {
					return err
				}
				rows = append(rows, r)
			}
		}
	} else {
		r, err := reconcileOnce(c.N, c.D, c.Seed)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	if g.JSON {
		for _, r := range rows {
			if err := g.print(r, nil); err != nil {
				return err
			}
		}
		return nil
	}
	return g.print(nil, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "n\td\tbytes sent\tbytes received\ttotal\tround trips\tCPU s\t")
		for _, r := range rows {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t\n", r.N, r.D, r.BytesSent, r.BytesReceived, r.BytesSent+r.BytesReceived, r.RoundTrips, r.Seconds)
		}
		tw.Flush()
	})
}
