package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/node/session"
	"github.com/meshsync/meshsync/store"
)

// SyncProtocol is the libp2p protocol id of a sync session.
//
// A session, on one stream opened by the initiator:
//
//	I → R  Hello      R → I  Hello          (mesh proof, epoch, progress, Merkle root,
//	                                         tombstone horizon, last contact)
//	I ↔ R  Merkle …                          (only when a direction needs it)
//	I ↔ R  Batch … End                       (both ways at once)
//	I ↔ R  Done                              (what each side applied)
//
// Package node/session decides everything about a session (which path each direction
// takes, what the peer may send, when to apply, what progress that earns); this file is
// its driver: it moves the frames, applies the groups the session hands over and records
// the outcome. See node/session's doc for the rules.
//
// A session applies every cfg.ApplyBatch envelopes or session.DefaultApplyBytes bytes,
// in a pipeline (pipeline.go: frames read ahead, envelopes opened on every core, one
// writer), ends after session.DefaultMaxBytes (the next one continues), and this node
// serves maxInbound sessions per device at a time (limits.go). Two devices of sync version
// 5 send a device that holds nothing of the other in record-id order
// (node/session/ordered.go).
const SyncProtocol = "/meshsync/sync/1.0.0"

// sessionResult reports one finished session: what the session did, and what the
// driver measured.
type sessionResult struct {
	session.Result
	Duration      time.Duration
	BytesReceived int
	BytesSent     int
	// FullResync is set when this side resynced fully (horizon.go).
	FullResync *FullResync
	// framesReused counts the frames read into the body of one already committed
	// (pipeline.go's frameRecycler).
	framesReused int64
}

// frameRW reads and writes frames with a deadline on each.
type frameRW struct {
	s     network.Stream
	step  time.Duration
	read  int // bytes read
	wrote int // bytes written
	limit int
	// largest is the longest frame read in full: the next read may allocate that much
	// at once (wire.ReadFrameAfter).
	largest int
	// recycle, once a transfer began, has frame bodies to read into (pipeline.go).
	recycle *frameRecycler
}

func (f *frameRW) write(t wire.Type, body []byte) error {
	f.s.SetWriteDeadline(time.Now().Add(f.step))
	f.wrote += len(body) + 5
	return wire.WriteFrame(f.s, t, body)
}

// writeFrame writes a frame of a Sender, as it built it when it did (Wire).
func (f *frameRW) writeFrame(fr session.Frame) error {
	if fr.Wire == nil {
		return f.write(fr.Type, fr.Body)
	}
	f.s.SetWriteDeadline(time.Now().Add(f.step))
	f.wrote += len(fr.Wire)
	return wire.WriteFramed(f.s, fr.Wire)
}

func (f *frameRW) readFrame() (wire.Type, []byte, error) {
	f.s.SetReadDeadline(time.Now().Add(f.step))
	var spare []byte
	if f.recycle != nil {
		spare = f.recycle.take()
	}
	t, b, err := wire.ReadFrameInto(f.s, f.limit, f.largest, spare)
	if cap(spare) > 0 {
		if cap(b) > 0 && &b[:1][0] == &spare[:1][0] {
			f.recycle.reused.Add(1)
		} else {
			f.recycle.give(spare) // the frame did not fit (or did not come): keep it for the next
		}
	}
	f.read += len(b) + 5
	if err == nil {
		f.largest = max(f.largest, len(b)+1)
	}
	return t, b, err
}

func (f *frameRW) expect(want wire.Type) ([]byte, error) {
	t, b, err := f.readFrame()
	if err != nil {
		return nil, err
	}
	if t != want {
		return nil, fmt.Errorf("%w: got frame %q, want %q", ErrProtocol, byte(t), byte(want))
	}
	return b, nil
}

// hello is this node's hello to p: what its store holds, and what it holds of p's.
func (n *Node) hello(p peer.ID, initiator bool) (*wire.Hello, error) {
	seq, err := n.st.Replication().LastSeq()
	if err != nil {
		return nil, err
	}
	roots, err := n.st.Replication().Roots()
	if err != nil {
		return nil, err
	}
	if len(roots) > wire.MaxRoots {
		return nil, fmt.Errorf("this store holds %d collections, a sync hello carries at most %d", len(roots), wire.MaxRoots)
	}
	var root merkle.Node
	tagRoots := make([]wire.TagRoot, len(roots))
	for i, r := range roots {
		root.AddNode(r.Root)
		tagRoots[i] = wire.TagRoot{Tag: r.Tag, Count: r.Root.Count, FP: r.Root.FP}
	}
	all, tags := n.st.Replication().ScopeTags()
	scope := make([][8]byte, len(tags))
	for i, t := range tags {
		scope[i] = t
	}
	pr := n.progress.get(p)
	hz := n.myHorizon()
	snap, after := pr.Cursor()
	h := &wire.Hello{
		ResumeSnap:  snap,
		ResumeAfter: after,
		ScopeAll:    all,
		Scope:       scope,
		Roots:       tagRoots,
		Version:     wire.Version,
		Proof:       session.Proof(n.proofKey(p), session.Role(initiator), n.id, p),
		Epoch:       n.st.Replication().Epoch(),
		KnownEpoch:  pr.Epoch,
		KnownSeq:    pr.Seq,
		LastSeq:     seq,
		RootCount:   root.Count,
		RootFP:      root.FP,
		Horizon:     session.TimeMs(hz.Horizon),
		LastContact: session.TimeMs(hz.LastContact),
	}
	if n.helloVersion != 0 {
		session.Speak(h, n.helloVersion)
	}
	if v := n.versions.of(p); initiator && v >= wire.MinVersion && v < h.Version {
		session.Speak(h, v) // an older device refuses a newer hello (versions.go)
	}
	return h, nil
}

// scopedSummary is the store's summary of a set of collection tags, as a session asks.
func scopedSummary(st *store.Store) func([][8]byte) merkle.Source {
	return func(tags [][8]byte) merkle.Source {
		ts := make([]store.Tag, len(tags))
		for i, t := range tags {
			ts[i] = t
		}
		return st.Replication().Summary(ts)
	}
}

// envelopeTag reads an envelope's collection tag (zero when it has none or is malformed:
// the receiver judges it).
func envelopeTag(raw []byte) [8]byte {
	t, _ := store.EnvelopeTag(raw)
	return t
}

// storeSource is the store as a session reads it. When done closes (the session ended),
// an id-ordered walk stops at the next record: a walk for a device that holds a few
// collections reads every record to skip the others, and one whose session failed kept
// a core busy until the end of the store (seen in the bench as a scoped device's walk
// over B's records running into the reconnects after it). nil: never.
type storeSource struct {
	st   *store.Store
	done <-chan struct{}
}

var _ session.Source = storeSource{}

func (s storeSource) Position() ([16]byte, uint64, error) {
	seq, err := s.st.Replication().LastSeq()
	return s.st.Replication().Epoch(), seq, err
}

func (s storeSource) SinceUpTo(after, upto uint64, limit int, fn func(seq uint64, raw []byte) error) (uint64, error) {
	return s.st.Replication().SinceUpTo(after, upto, limit, fn)
}

func (s storeSource) Envelopes(ids []merkle.ID, fn func(raw []byte) error) error {
	return s.st.Replication().Envelopes(ids, fn)
}

func (s storeSource) Ordered(after merkle.ID, first bool, upto uint64, limit int, fn func(id merkle.ID, seqs []uint64, raws [][]byte) error) (merkle.ID, bool, error) {
	return s.st.Replication().OrderedUpTo(after, first, upto, limit, func(r *store.HeldRecord) error {
		select {
		case <-s.done:
			return errSessionEnded
		default:
		}
		return fn(r.ID, r.Seqs, r.Raw)
	})
}

// errSessionEnded stops a Sender's walk whose session ended.
var errSessionEnded = errors.New("the session ended")

// syncWith opens a session with p as the initiator.
func (n *Node) syncWith(ctx context.Context, p peer.ID) (*sessionResult, error) {
	h := n.hostNow()
	if h == nil {
		return nil, ErrNotStarted
	}
	s, err := h.NewStream(n.dataCtx(ctx, p), p, SyncProtocol)
	if err != nil {
		return nil, fmt.Errorf("open sync stream: %w", err)
	}
	res, err := n.syncSession(ctx, s, true)
	if err != nil {
		s.Reset()
		return res, err
	}
	s.Close()
	return res, nil
}

// admit checks an inbound stream of protocol proto: the peer must be a current device, not
// on a stingy relay, the network up, and the device within its inbound streams of proto
// (limits.go: the excess is reset before anything is read). done releases what admit took.
func (n *Node) admit(s network.Stream, what string, proto protocol.ID) (p peer.ID, r *netRun, done func(), ok bool) {
	p = s.Conn().RemotePeer()
	if _, ok := n.isMember(p); !ok {
		n.log.Debug(what+" refused: not a device", "from", shortID(p))
		s.Reset()
		return p, nil, nil, false
	}
	if refuseStingy(s) {
		return p, nil, nil, false
	}
	r, ok = n.enter()
	if !ok {
		s.Reset()
		return p, nil, nil, false
	}
	release, ok := n.inbound.acquire(p, proto)
	if !ok {
		n.log.Debug(what+" refused: too many streams from the device", "from", shortID(p))
		s.Reset()
		r.wg.Done()
		return p, nil, nil, false
	}
	return p, r, func() { release(); r.wg.Done() }, true
}

// handleSync serves a session opened by another device.
func (n *Node) handleSync(s network.Stream) {
	p, r, done, ok := n.admit(s, "sync", SyncProtocol)
	if !ok {
		return
	}
	defer done()
	end := n.serving.serve(p)
	defer end(false)
	n.track.sessionStart(p)
	res, err := n.syncSession(r.ctx, s, false)
	n.track.sessionEnd(p, res, err, time.Time{})
	end(err == nil) // the device loop waiting on this session goes on (gate.go)
	if err != nil {
		n.log.Info("sync session failed", "with", shortID(p), "err", err)
		s.Reset()
		return
	}
	s.Close()
	n.mu.Lock()
	if pl := r.peers[p]; pl != nil {
		pl.ensurePush(res.MyLastSeq)
		pl.servedSession()
	}
	n.mu.Unlock()
	n.afterSession(r.ctx, p)
}

// syncSession drives one session on s: it carries frames between the stream and a
// session.Session, runs its Sender beside it, applies the groups it hands over and
// records the outcome. A malformed or hostile message ends it with an error; the caller
// resets the stream.
func (n *Node) syncSession(ctx context.Context, s network.Stream, initiator bool) (*sessionResult, error) {
	start, started := time.Now(), n.cfg.Now()
	p := s.Conn().RemotePeer()
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SessionTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	rw := &frameRW{s: s, step: n.cfg.StepTimeout, limit: wire.MaxFrame}
	res := &sessionResult{}

	mine, err := n.hello(p, initiator)
	if err != nil {
		return res, fmt.Errorf("sync: %w", err)
	}
	defer func() { n.versions.heard(p, res.PeerVersion, initiator, mine.Version) }()
	sess := session.New(session.Config{
		Initiator: initiator, Self: n.id, Peer: p, ProofKey: n.proofKey(p), Hello: *mine,
		Source: storeSource{n.st, ctx.Done()}, Summary: n.st.Replication().Summary(nil), Scoped: scopedSummary(n.st), TagOf: envelopeTag,
		Now: started, TombstoneTTL: n.tombstoneTTL(), Blind: n.blind,
		Echo:       n.progress.echoFilter(p),
		ApplyBatch: n.cfg.ApplyBatch,
		MaxBytes:   n.sessionMaxBytes,
		Newest:     n.helloVersion,
	})
	var sent chan error // the Sender's goroutine, once the transfer began
	// The receiving pipeline (pipeline.go): frames read ahead, groups applied by a writer.
	var frames <-chan frameIn
	stopRead := make(chan struct{})
	var writer *groupWriter
	wctx, wcancel := context.WithCancel(ctx)
	defer func() {
		wcancel()
		close(stopRead)
		if frames != nil {
			s.Reset() // a read in flight returns
			for range frames {
			}
		}
		if writer != nil {
			writer.close()
			res.framesReused = writer.frames.reused.Load()
		}
	}()
	// A session that starts with nothing received from p yet brings this device p's
	// whole store: status shows how far it has come.
	initial := n.progress.get(p).Seq == 0
	out, err := sess.Start()
	for {
		for _, f := range out.Send {
			if werr := rw.write(f.Type, f.Body); werr != nil && err == nil {
				err = fmt.Errorf("send %s: %w", sess.Waiting(), werr)
			}
		}
		if err != nil {
			if sent != nil {
				s.Reset()
				cancel() // a walk of the Sender stops (storeSource)
				<-sent
			}
			res.Result = sess.Result()
			return res, n.sessionFailed(p, res, out, err)
		}
		if !out.AdoptHorizon.IsZero() {
			if err := n.st.Replication().AdoptHorizon(out.AdoptHorizon); err != nil {
				n.log.Warn("adopt a device's tombstone horizon", "err", err)
			}
		}
		if out.Transfer {
			sent = make(chan error, 1)
			snd := sess.Sender()
			go func() { sent <- runSender(rw, snd) }()
			writer = n.newGroupWriter(wctx, p)
			rw.recycle = writer.frames // before the reader starts: it reads into them
			frames = readAheadFrames(rw, stopRead)
		}
		switch {
		case out.Apply != nil:
			writer.hand(out.Apply)
			out = session.Output{}
		case sess.InFlight() > 0 && (!sess.Ready() || sess.InFlight() > applyAhead || frames == nil):
			out, err = n.appliedGroup(sess, writer, <-writer.results, initial, start)
		case sess.InFlight() > 0 && len(writer.results) > 0:
			out, err = n.appliedGroup(sess, writer, <-writer.results, initial, start)
		case out.Received:
			if err := <-sent; err != nil {
				res.Result = sess.Result()
				return res, fmt.Errorf("send envelopes: %w", err)
			}
			sent = nil
			out, err = sess.Sent(sess.Sender().Sent())
		case out.Done:
			res.Result = sess.Result()
			n.progress.setScope(p, res.PeerScope)
			return res, n.sessionDone(p, res, started, start, rw)
		case frames != nil:
			var in frameIn
			var ok bool
			if sess.InFlight() > 0 {
				select {
				case r := <-writer.results:
					out, err = n.appliedGroup(sess, writer, r, initial, start)
					continue
				case in, ok = <-frames:
				}
			} else {
				in, ok = <-frames
			}
			if !ok { // the reader ended after the End frame: read on directly
				frames = nil
				out = session.Output{}
				continue
			}
			if in.err != nil {
				out, err = session.Output{}, fmt.Errorf("read %s: %w", sess.Waiting(), in.err)
				continue
			}
			out, err = sess.Step(session.Frame{Type: in.t, Body: in.body})
			writer.frames.stepped(in.t, in.body)
		default:
			t, b, rerr := rw.readFrame()
			if rerr != nil {
				out, err = session.Output{}, fmt.Errorf("read %s: %w", sess.Waiting(), rerr)
				continue
			}
			out, err = sess.Step(session.Frame{Type: t, Body: b})
			if writer != nil {
				writer.frames.stepped(t, b)
			}
		}
	}
}

// appliedGroup reports one group the writer applied to the session.
func (n *Node) appliedGroup(sess *session.Session, w *groupWriter, r applyOut, initial bool, start time.Time) (session.Output, error) {
	if r.err != nil {
		return session.Output{}, r.err
	}
	out, err := sess.Applied(r.r)
	w.frames.give(r.bodies...) // committed, and the session dropped the group with Applied
	if res := sess.Result(); initial && res.Applied > 0 {
		w.n.track.initialProgress(w.p, int64(res.Applied), int64(res.PeerRecords), start)
	}
	return out, err
}

// runSender writes the Sender's frames until its End.
func runSender(rw *frameRW, snd *session.Sender) error {
	snd.ReuseFrames() // each frame is written before the next is asked for
	for {
		f, ok, err := snd.Next()
		if err != nil || !ok {
			return err
		}
		if err := rw.writeFrame(f); err != nil {
			return err
		}
	}
}

// applyGroup applies one group of received envelopes (prepared: pre) with the progress it
// earns, in one transaction, and reports what the store did. rejected counts the
// envelopes refused earlier in the session: progress passes none of them.
func (n *Node) applyGroup(p peer.ID, a *session.Apply, pre *store.Prepared, rejected int) (session.Applied, error) {
	pr := a.Progress(n.progress.get(p))
	if rejected > 0 {
		pr = nil
	}
	if len(a.Envelopes) == 0 {
		// Nothing to apply: the progress passes the peer's records this store sent it
		// (echoes) or records outside this device's scope. It stays in memory, written
		// with the next transaction that applies from p, at Stop and at Close
		// (progressTable.flush), as a push's echoes are: a commit in the middle of a
		// reconnect with nothing to send otherwise. A crash loses only the pass over
		// those records: the next session asks for them again and the peer, which
		// keeps its echo ranges with its applies, skips them again.
		if pr != nil {
			n.progress.set(p, *pr, false)
		}
		return session.Applied{}, nil
	}
	ar, err := n.applyFrom(p, pre, pr, a.InOrder)
	if err != nil {
		return session.Applied{}, fmt.Errorf("apply: %w", err)
	}
	n.bounded.noteRejected(ar.Rejected)
	rc := rejections(ar.Rejected)
	r := session.Applied{Added: ar.Added, Bad: rc.bad, Later: rc.later, Revoked: rc.revoked}
	for _, c := range ar.Changes {
		if c.Conflict {
			r.Conflicts = append(r.Conflicts, c.ID)
		}
	}
	return r, nil
}

// sessionFailed counts the bound a failed session broke, and starts a new store epoch
// when the session found the store rolled back. It returns the error to report.
func (n *Node) sessionFailed(p peer.ID, res *sessionResult, out session.Output, err error) error {
	switch res.Violation {
	case session.Unasked:
		n.bounded.unasked.Add(1)
	case session.Claim:
		n.bounded.claim.Add(1)
	case session.Capped:
		n.bounded.capped.Add(1)
	}
	if out.Rollback {
		if nerr := n.st.Replication().NoteRollback(); nerr != nil {
			return fmt.Errorf("note rollback: %w", nerr)
		}
		n.log.Warn("store rolled back: new epoch", "peer", shortID(p), "err", err)
	}
	return err
}

// sessionDone records a finished session: its measures, a full resync, the contact.
func (n *Node) sessionDone(p peer.ID, res *sessionResult, started, start time.Time, rw *frameRW) error {
	res.Duration = time.Since(start)
	res.BytesReceived, res.BytesSent = rw.read, rw.wrote
	if res.Mode == "full-resync" {
		if err := n.finishResync(p, res); err != nil {
			return err
		}
	}
	if err := n.contact.note(started, res.Sent+res.Received > 0); err != nil {
		n.log.Warn("note the last contact", "err", err)
	}
	return nil
}
