package node

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

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

// frameRecycler hands the bodies of batch frames back to the read-ahead once the writer
// committed their group, and the next frames are read into them (wire.ReadFrameInto): a
// bulk transfer then reads into a few dozen MiB instead of allocating and zeroing every
// batch anew (1.2 GB at a million records, and the collections it costs). The bodies of
// a group travel with it to the writer and back (applyJob, applyOut), and are given back
// only once nothing refers to them any more: its envelopes were committed (the bbolt
// transaction copied them into its pages), and the session, the prepared batch and the
// writer dropped them. A group always consists of whole frames (session.Apply: a group
// is handed over after the batch that fills it).
type frameRecycler struct {
	free    chan []byte  // bodies ready for reuse: the reader takes one when there is one
	pending [][]byte     // batch bodies stepped since the last group (session loop only)
	reused  atomic.Int64 // frames read into a body given back (tests)
}

// recycledFrames bounds the bodies waiting for reuse (about 1 MiB each).
const recycledFrames = 48

func newFrameRecycler() *frameRecycler {
	return &frameRecycler{free: make(chan []byte, recycledFrames)}
}

// take returns a body to read the next frame into, or nil.
func (r *frameRecycler) take() []byte {
	select {
	case b := <-r.free:
		return b
	default:
		return nil
	}
}

// give offers each of bodies for reuse; what does not fit among those waiting is dropped.
func (r *frameRecycler) give(bodies ...[]byte) {
	for _, b := range bodies {
		select {
		case r.free <- b:
		default:
			return
		}
	}
}

// stepped notes a frame the session stepped: a batch's envelopes now belong to the group
// being gathered.
func (r *frameRecycler) stepped(t wire.Type, body []byte) {
	if t == wire.TypeBatch && cap(body) > 0 {
		r.pending = append(r.pending, body)
	}
}

// grouped returns the bodies stepped since the last group: those of the group handed over.
func (r *frameRecycler) grouped() [][]byte {
	b := r.pending
	r.pending = nil
	return b
}

// applyJob is one group for the writer, prepared.
type applyJob struct {
	a      *session.Apply
	pre    *store.Prepared
	bodies [][]byte // the frame bodies its envelopes alias
}

// applyOut is what the writer did with one group.
type applyOut struct {
	r      session.Applied
	err    error
	bodies [][]byte // the group's frame bodies: free to reuse once it committed (err nil)
}

// groupWriter applies a session's groups in order on its own goroutine.
type groupWriter struct {
	n        *Node
	p        peer.ID
	jobs     chan applyJob
	results  chan applyOut
	wg       sync.WaitGroup
	rejected int            // envelopes refused in this session so far: progress may not pass them
	frames   *frameRecycler // frame bodies to read into, and those of the group being gathered
}

func (n *Node) newGroupWriter(ctx context.Context, p peer.ID) *groupWriter {
	// The session loop hands over a group only while at most applyAhead are out, so the
	// writer never waits to hand a result back.
	w := &groupWriter{n: n, p: p, jobs: make(chan applyJob, applyAhead), results: make(chan applyOut, applyAhead+1), frames: newFrameRecycler()}
	w.wg.Go(func() {
		for j := range w.jobs {
			if ctx.Err() != nil {
				w.results <- applyOut{err: ctx.Err()}
				continue
			}
			r, err := n.applyGroup(p, j.a, j.pre, w.rejected)
			w.rejected += r.Bad + r.Later
			w.results <- applyOut{r, err, j.bodies}
		}
	})
	return w
}

// hand prepares a group (decodes and opens its envelopes on every core) and hands it to
// the writer. At most applyAhead+1 are out when the session loop calls it: it never waits
// long.
func (w *groupWriter) hand(a *session.Apply) {
	w.jobs <- applyJob{a, w.n.st.Replication().Prepare(a.Envelopes, runtime.GOMAXPROCS(0)), w.frames.grouped()}
}

// close stops the writer once the groups handed over are done (skipped once ctx ends),
// and waits for it.
func (w *groupWriter) close() {
	close(w.jobs)
	w.wg.Wait()
}
