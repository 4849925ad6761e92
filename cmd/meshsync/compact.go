package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/store"
)

type compactCmd struct{}

type compactOutput struct {
	store.CompactReport
	Seconds float64 `json:"seconds"`
}

// Run rewrites the store file without its free pages (store.Compact). The daemon must be
// stopped: the store is rewritten while nobody holds it.
func (c *compactCmd) Run(ctx context.Context, g *globals) error {
	if cl, err := localapi.Dial(ctx, g.dir()); err == nil {
		cl.Close()
		return fmt.Errorf("compact: %w: the daemon holds it; stop the daemon, compact, then start it again", store.ErrLocked)
	}
	t0 := time.Now()
	rep, err := store.Compact(g.dir(), nil)
	if err != nil {
		return err
	}
	out := compactOutput{CompactReport: rep, Seconds: time.Since(t0).Seconds()}
	return g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "compacted %s: %s, now %s (%d free pages dropped) in %.1f s\n", store.FileName,
			fileSize(rep.BytesBefore), fileSize(rep.BytesAfter), rep.FreePagesBefore, out.Seconds)
	})
}

// fileSize writes n bytes in KiB, MiB or GiB, with one decimal.
func fileSize(n int64) string {
	unit, div := "KiB", float64(1<<10)
	if n >= 1<<30 {
		unit, div = "GiB", 1<<30
	} else if n >= 1<<20 {
		unit, div = "MiB", 1<<20
	}
	return fmt.Sprintf("%.1f %s", float64(n)/div, unit)
}
