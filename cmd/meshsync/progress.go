package main

import (
	"context"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
)

// progressEvery is how often a progress bar asks for news.
const progressEvery = 200 * time.Millisecond

// stderrTerminal reports whether standard error is a terminal: progress bars go there,
// and only there (nothing when piped or with --json).
func (g *globals) stderrTerminal() bool {
	f, ok := g.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && !g.JSON
}

// bar is a progress bar on standard error with a count, the rate and the time left, or
// nothing when standard error is not a terminal.
type bar struct {
	pb    *progressbar.ProgressBar
	total int64
}

// newBar returns a bar for work described by what, counted in unit ("bytes" draws bytes).
func (g *globals) newBar(what, unit string, total int64) *bar {
	if !g.stderrTerminal() {
		return &bar{}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(g.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	}
	if unit == "bytes" {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit))
	}
	return &bar{pb: progressbar.NewOptions64(max(total, 1), opts...), total: total}
}

// set moves the bar to done of total.
func (b *bar) set(done, total int64) {
	if b.pb == nil {
		return
	}
	if total > 0 && total != b.total {
		b.total = total
		b.pb.ChangeMax64(total)
	}
	b.pb.Set64(done)
}

// finish clears the bar.
func (b *bar) finish() {
	if b.pb != nil {
		b.pb.Finish()
	}
}

// withProgress runs call while a bar on standard error shows the server's progress
// (GET /progress) of the export or import that call runs. Without a terminal it only
// runs call.
func withProgress[T any](ctx context.Context, g *globals, c *localapi.Client, what string, call func() (T, error)) (T, error) {
	if !g.stderrTerminal() {
		return call()
	}
	ctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		var b *bar
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				if b != nil {
					b.finish()
				}
				return
			case <-t.C:
			}
			p, err := c.Progress(ctx)
			if err != nil || p == nil {
				continue
			}
			if b == nil {
				b = g.newBar(what, p.Unit, p.Total)
			}
			b.set(p.Done, p.Total)
		}
	}()
	v, err := call()
	cancel()
	<-watched
	return v, err
}

// watchInitialSync draws the progress of n's initial sync (node.DeviceState.InitialSync)
// on standard error until ctx ends; without a terminal it does nothing. It returns a
// function that stops it and waits.
func watchInitialSync(ctx context.Context, g *globals, n *node.Node) (stop func()) {
	if !g.stderrTerminal() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var b *bar
		defer func() {
			if b != nil {
				b.finish()
			}
		}()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, d := range n.States().Devices {
				if is := d.InitialSync; is != nil {
					if b == nil {
						b = g.newBar("first sync", "records", is.Total)
					}
					b.set(is.Received, is.Total)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
