package node

import (
	"context"
	"runtime"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/node/session"
	"github.com/meshsync/meshsync/store"
)

// The receiving side of a session runs as a pipeline while envelopes arrive: a reader
// goroutine takes frames off the stream into a bounded queue (the stream never waits for a
// commit; when the queue is full the reader stops reading, and the transport's flow
// control holds the sender), the session loop checks each batch and, for each group,
// decodes and opens its envelopes on every core (store.Replication.Prepare), and one
// writer goroutine applies the groups in order, each in one transaction with the progress
// it earns. Neither goroutine outlives the session: syncSession stops and waits for both.

const (
	// readAhead bounds the frames read ahead of the session loop (a Batch is about 1 MiB,
	// at most wire.MaxFrame).
	readAhead = 4
	// applyAhead bounds the groups handed to the writer beyond the one it applies.
	applyAhead = 1
)

// frameIn is one frame read ahead, or the error that ended the reading.
type frameIn struct {
	t    wire.Type
	body []byte
	err  error
}

// readAheadFrames reads frames from rw into the returned channel until an End frame, an
// error or stop; the channel is closed when the goroutine ends.
func readAheadFrames(rw *frameRW, stop <-chan struct{}) <-chan frameIn {
	ch := make(chan frameIn, readAhead)
	go func() {
		defer close(ch)
		for {
			t, b, err := rw.readFrame()
			select {
			case ch <- frameIn{t, b, err}:
			case <-stop:
				return
			}
			if err != nil || t == wire.TypeEnd {
				return
			}
		}
	}()
	return ch
}

// applyJob is one group for the writer, prepared.
type applyJob struct {
	a   *session.Apply
	pre *store.Prepared
}

// applyOut is what the writer did with one group.
type applyOut struct {
	r   session.Applied
	err error
}

// groupWriter applies a session's groups in order on its own goroutine.
type groupWriter struct {
	n        *Node
	p        peer.ID
	jobs     chan applyJob
	results  chan applyOut
	wg       sync.WaitGroup
	rejected int // envelopes refused in this session so far: progress may not pass them
}

func (n *Node) newGroupWriter(ctx context.Context, p peer.ID) *groupWriter {
	// The session loop hands over a group only while at most applyAhead are out, so the
	// writer never waits to hand a result back.
	w := &groupWriter{n: n, p: p, jobs: make(chan applyJob, applyAhead), results: make(chan applyOut, applyAhead+1)}
	w.wg.Go(func() {
		for j := range w.jobs {
			if ctx.Err() != nil {
				w.results <- applyOut{err: ctx.Err()}
				continue
			}
			r, err := n.applyGroup(p, j.a, j.pre, w.rejected)
			w.rejected += r.Bad + r.Later
			w.results <- applyOut{r, err}
		}
	})
	return w
}

// prepare decodes and opens a group's envelopes on every core.
func (w *groupWriter) prepare(a *session.Apply) applyJob {
	return applyJob{a, w.n.st.Replication().Prepare(a.Envelopes, runtime.GOMAXPROCS(0))}
}

// close stops the writer once the groups handed over are done (skipped once ctx ends),
// and waits for it.
func (w *groupWriter) close() {
	close(w.jobs)
	w.wg.Wait()
}
