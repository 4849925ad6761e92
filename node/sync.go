package node

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/internal/wire"
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
// Each direction uses the fast path ("every envelope after sequence S of my epoch E")
// when the receiver remembers the sender's epoch or holds nothing yet, and nothing at all
// when the roots are equal; otherwise both directions use the result of one Merkle
// reconciliation over the stores' summaries. A side whose last contact is older than the
// other's tombstone horizon resyncs fully over that reconciliation (horizon.go).
//
// A receiver takes only what it asked for (limits.go): after a reconciliation, envelopes
// of the ids it lacks; on the fast path, batches that continue the sequence range from
// the number it remembers up to the LastSeq of the sender's hello, with at most one
// envelope per number. Anything else, and any envelope its store refuses as malformed,
// tampered or out of range, ends the session as a protocol violation. It applies every
// cfg.ApplyBatch envelopes or applyBytes bytes, ends a session after maxSessionBytes (the
// next one continues), and serves maxInbound sessions per device at a time.
const SyncProtocol = "/meshsync/sync/1.0.0"

// Bounds of one session.
const (
	batchBytes   = 1 << 20 // envelope bytes per Batch frame (one larger envelope goes alone)
	batchMaxEnvs = 4096
	idsPerLookup = 512
)

type mode int

const (
	modeNone mode = iota
	modeFast
	modeMerkle
)

func (m mode) String() string { return [...]string{"none", "fast", "merkle"}[m] }

// sessionResult reports one finished session.
type sessionResult struct {
	Mode          string
	Sent          int // envelopes sent
	Received      int // envelopes received
	Applied       int // received envelopes that changed the store
	Rejected      int // received envelopes refused by the store that may be fetched again
	Bad           int // of those, malformed or tampered: the peer misbehaved
	Revoked       int // received envelopes of a removed device, refused for good
	Conflicts     []merkle.ID
	PeerApplied   int    // what the peer reported applying of ours
	MyLastSeq     uint64 // our last sequence at hello: the peer now holds everything up to it
	PeerLastSeq   uint64
	PeerEpoch     [16]byte
	Duration      time.Duration
	BytesReceived int
	BytesSent     int
	// MerkleMessages counts the reconciliation messages sent and received.
	MerkleMessages int
	// FullResync is set when this side resynced fully (horizon.go).
	FullResync *FullResync
}

// frameRW reads and writes frames with a deadline on each.
type frameRW struct {
	s     network.Stream
	step  time.Duration
	read  int // bytes read
	wrote int // bytes written
	limit int
}

func (f *frameRW) write(t wire.Type, body []byte) error {
	f.s.SetWriteDeadline(time.Now().Add(f.step))
	f.wrote += len(body) + 5
	return wire.WriteFrame(f.s, t, body)
}

func (f *frameRW) readFrame() (wire.Type, []byte, error) {
	f.s.SetReadDeadline(time.Now().Add(f.step))
	t, b, err := wire.ReadFrame(f.s, f.limit)
	f.read += len(b) + 5
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

// helloProof is the mesh proof of a hello: only holders of the mesh key can make it, and
// it is bound to the role and both peer ids, so it cannot be replayed elsewhere.
func helloProof(key []byte, role byte, from, to peer.ID) [32]byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("meshsync/v1/sync-hello"))
	m.Write([]byte{role})
	m.Write([]byte(from))
	m.Write([]byte{0})
	m.Write([]byte(to))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

func roleByte(initiator bool) byte {
	if initiator {
		return 'I'
	}
	return 'R'
}

func (n *Node) hello(p peer.ID, initiator bool) (*wire.Hello, error) {
	seq, err := n.st.Replication().LastSeq()
	if err != nil {
		return nil, err
	}
	root, err := n.st.Replication().Root()
	if err != nil {
		return nil, err
	}
	pr := n.progress.get(p)
	hz := n.myHorizon()
	return &wire.Hello{
		Version:     wire.Version,
		Proof:       helloProof(n.proofKey(p), roleByte(initiator), n.id, p),
		Epoch:       n.st.Replication().Epoch(),
		KnownEpoch:  pr.Epoch,
		KnownSeq:    pr.Seq,
		LastSeq:     seq,
		RootCount:   root.Count,
		RootFP:      root.FP,
		Horizon:     timeMs(hz.Horizon),
		LastContact: timeMs(hz.LastContact),
	}, nil
}

// direction decides how the sender's envelopes reach the receiver.
func direction(sender, receiver *wire.Hello) (mode, uint64) {
	switch {
	case sender.RootCount == 0:
		return modeNone, 0
	case sender.RootCount == receiver.RootCount && sender.RootFP == receiver.RootFP:
		return modeNone, 0
	case receiver.KnownEpoch == sender.Epoch && sender.Epoch != [16]byte{}:
		return modeFast, receiver.KnownSeq
	case receiver.RootCount == 0:
		return modeFast, 0
	}
	return modeMerkle, 0
}

// syncWith opens a session with p as the initiator.
func (n *Node) syncWith(ctx context.Context, p peer.ID) (*sessionResult, error) {
	n.mu.Lock()
	h := n.host
	n.mu.Unlock()
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

// admit runs the checks every data handler starts with: the peer is a current device, the
// connection is not a relay too stingy for bulk data, and the node is open. When it
// reports false the stream is already reset; when true the caller must call n.wg.Done.
func (n *Node) admit(s network.Stream, what string) (peer.ID, bool) {
	p := s.Conn().RemotePeer()
	if _, ok := n.isMember(p); !ok {
		n.log.Debug(what+" refused: not a device", "from", shortID(p))
		s.Reset()
		return p, false
	}
	if refuseStingy(s) {
		return p, false
	}
	if !n.enter() {
		s.Reset()
		return p, false
	}
	return p, true
}

// handleSync serves a session opened by another device.
func (n *Node) handleSync(s network.Stream) {
	p, ok := n.admit(s, "sync")
	if !ok {
		return
	}
	defer n.wg.Done()
	release, ok := n.inbound.acquire(p, SyncProtocol)
	if !ok {
		n.log.Debug("sync refused: too many sessions from the device", "from", shortID(p))
		s.Reset()
		return
	}
	defer release()
	n.track.sessionStart(p)
	res, err := n.syncSession(n.ctx, s, false)
	n.track.sessionEnd(p, res, err, time.Time{})
	if err != nil {
		n.log.Info("sync session failed", "with", shortID(p), "err", err)
		s.Reset()
		return
	}
	s.Close()
	n.mu.Lock()
	if pl := n.peers[p]; pl != nil {
		pl.ensurePush(res.MyLastSeq)
	}
	n.mu.Unlock()
	n.afterSession(n.ctx, p)
}

// syncSession runs one session on s. A malformed or hostile message ends it with an
// error; the caller resets the stream.
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
	res.MyLastSeq = mine.LastSeq
	readHello := func() (*wire.Hello, error) {
		b, err := rw.expect(wire.TypeHello)
		if err != nil {
			return nil, fmt.Errorf("read hello: %w", err)
		}
		h, err := wire.UnmarshalHello(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		if h.Version < wire.Version {
			return nil, fmt.Errorf("%w: it speaks sync version %d, this device %d: upgrade meshsync on it", ErrOldPeer, h.Version, wire.Version)
		}
		if h.Version != wire.Version {
			return nil, fmt.Errorf("%w: peer speaks sync version %d, this device %d: upgrade meshsync on this device", ErrProtocol, h.Version, wire.Version)
		}
		want := helloProof(n.proofKey(p), roleByte(!initiator), p, n.id)
		if !hmac.Equal(h.Proof[:], want[:]) {
			return nil, fmt.Errorf("%w: hello does not prove the mesh key", ErrNotMember)
		}
		return h, nil
	}
	var theirs *wire.Hello
	if initiator {
		if err := rw.write(wire.TypeHello, mine.Marshal()); err != nil {
			return res, fmt.Errorf("send hello: %w", err)
		}
		if theirs, err = readHello(); err != nil {
			return res, err
		}
	} else {
		if theirs, err = readHello(); err != nil {
			return res, err
		}
		if err := rw.write(wire.TypeHello, mine.Marshal()); err != nil {
			return res, fmt.Errorf("send hello: %w", err)
		}
	}
	res.PeerLastSeq, res.PeerEpoch = theirs.LastSeq, theirs.Epoch
	// The peer remembers more of this store's epoch than the store holds: the file was put
	// back from an older copy, and a fast path from the peer's number would skip what the
	// store wrote since. Start a new epoch and end the session; the next one reconciles by
	// Merkle summary.
	// Compare with the store as it is now, not at the hello: a push may have taken the
	// store (and the peer's knowledge of it) further since.
	if theirs.KnownEpoch == mine.Epoch && theirs.KnownSeq > mine.LastSeq {
		if now, err := n.st.Replication().LastSeq(); err == nil && theirs.KnownSeq > now && n.st.Replication().Epoch() == mine.Epoch {
			if err := n.st.Replication().NoteRollback(); err != nil {
				return res, fmt.Errorf("note rollback: %w", err)
			}
			n.log.Warn("store rolled back: new epoch", "peer", shortID(p), "peer_knows", theirs.KnownSeq, "store_has", now)
			return res, fmt.Errorf("%w (peer knows sequence %d, this store has %d)", ErrRolledBack, theirs.KnownSeq, now)
		}
	}

	sendMode, sendFrom := direction(mine, theirs)
	recvMode, recvFrom := direction(theirs, mine)
	// A side back from beyond the other's tombstone horizon resyncs fully (horizon.go):
	// that needs the Merkle result, whatever the fast path could do.
	plan := n.sessionPlan(mine, theirs, initiator)
	var have, need []merkle.ID
	var keep func([]byte) bool
	if sendMode == modeMerkle || recvMode == modeMerkle || plan.Merkle && (sendMode != modeNone || recvMode != modeNone) {
		res.Mode = "merkle"
		if need, have, err = n.reconcile(rw, initiator, res); err != nil {
			return res, err
		}
		if plan.Self {
			res.Mode = "full-resync"
			keep = resyncFilter(need, msTime(mine.LastContact))
		}
		// The Merkle result covers both directions: every difference travels, none by
		// sequence.
		sendMode, recvMode = modeMerkle, modeMerkle
	} else {
		res.Mode = recvMode.String() + "/" + sendMode.String()
	}

	// Send and receive at once; the sender ends with End.
	sent := make(chan error, 1)
	go func() {
		c, err := n.sendEnvelopes(rw, p, sendMode, sendFrom, mine.LastSeq, have, keep)
		res.Sent = c
		sent <- err
	}()
	asked := recvPlan{mode: recvMode, from: recvFrom, upto: theirs.LastSeq, need: need}
	recvErr := n.receiveEnvelopes(rw, p, asked, theirs, res)
	if recvErr != nil {
		s.Reset()
		<-sent
		return res, recvErr
	}
	if err := <-sent; err != nil {
		return res, fmt.Errorf("send envelopes: %w", err)
	}
	done := wire.Done{Applied: uint64(res.Applied), Rejected: uint64(res.Rejected), Conflicts: uint64(len(res.Conflicts))}
	done.Stale = uint64(res.Received - res.Applied - res.Rejected)
	if err := rw.write(wire.TypeDone, done.Marshal()); err != nil {
		return res, fmt.Errorf("send done: %w", err)
	}
	b, err := rw.expect(wire.TypeDone)
	if err != nil {
		return res, fmt.Errorf("read done: %w", err)
	}
	pd, err := wire.UnmarshalDone(b)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	res.PeerApplied = int(pd.Applied)
	res.Duration = time.Since(start)
	res.BytesReceived, res.BytesSent = rw.read, rw.wrote
	if plan.Self && res.Mode == "full-resync" {
		if err := n.finishResync(p, plan, msTime(mine.LastContact), peerLacks(have, need), res); err != nil {
			return res, err
		}
	}
	if err := n.st.Replication().NoteContact(started); err != nil {
		n.log.Warn("note the last contact", "err", err)
	}
	return res, nil
}

// reconcile runs a Merkle session over the stream and returns the ids this side lacks or
// holds differently (need) and those it must send (have), both sorted.
func (n *Node) reconcile(rw *frameRW, initiator bool, res *sessionResult) (need, have []merkle.ID, err error) {
	cfg := merkle.Config{}
	var sess *merkle.Session
	var msg []byte
	if initiator {
		sess = merkle.NewInitiator(n.st.Replication().Summary(), cfg)
		if msg, err = sess.Start(); err != nil {
			return nil, nil, fmt.Errorf("reconcile: %w", err)
		}
	} else {
		sess = merkle.NewResponder(n.st.Replication().Summary(), cfg)
	}
	for {
		if msg != nil {
			if err := rw.write(wire.TypeMerkle, msg); err != nil {
				return nil, nil, fmt.Errorf("reconcile: %w", err)
			}
			res.MerkleMessages++
			if sess.Done() {
				break
			}
		}
		b, err := rw.expect(wire.TypeMerkle)
		if err != nil {
			return nil, nil, fmt.Errorf("reconcile: %w", err)
		}
		res.MerkleMessages++
		if msg, err = sess.Handle(b); err != nil {
			return nil, nil, fmt.Errorf("%w: reconcile: %v", ErrProtocol, err)
		}
		if msg == nil {
			if !sess.Done() {
				return nil, nil, fmt.Errorf("%w: reconciliation stalled", ErrProtocol)
			}
			break
		}
	}
	need, have = sess.Result()
	return need, have, nil
}

var errBatchFull = errors.New("batch full")

// sendEnvelopes streams what the peer lacks, then End. On the fast path it sends the
// sequence range (from, upto], upto being the last sequence its hello claimed (the
// receiver refuses more; later writes go by push or the next session). After a Merkle
// reconciliation, keep (when not nil) picks which envelopes of have go (a full resync,
// horizon.go).
func (n *Node) sendEnvelopes(rw *frameRW, p peer.ID, m mode, from, upto uint64, have []merkle.ID, keep func([]byte) bool) (int, error) {
	sent := 0
	switch m {
	case modeFast:
		skip := n.progress.echoFilter(p)
		for from < upto {
			envs, last, err := n.collectSince(from, upto, skip)
			if err != nil {
				return sent, err
			}
			if last == from {
				break
			}
			if err := rw.write(wire.TypeBatch, (&wire.Batch{From: from, To: last, Envelopes: envs}).Marshal()); err != nil {
				return sent, err
			}
			sent += len(envs)
			from = last
		}
	case modeMerkle:
		var envs [][]byte
		size := 0
		flush := func() error {
			if len(envs) == 0 {
				return nil
			}
			err := rw.write(wire.TypeBatch, (&wire.Batch{Envelopes: envs}).Marshal())
			sent += len(envs)
			envs, size = nil, 0
			return err
		}
		for i := 0; i < len(have); i += idsPerLookup {
			var chunk [][]byte
			err := n.st.Replication().Envelopes(have[i:min(i+idsPerLookup, len(have))], func(raw []byte) error {
				if keep != nil && !keep(raw) {
					return nil
				}
				chunk = append(chunk, bytes.Clone(raw))
				return nil
			})
			if err != nil {
				return sent, err
			}
			for _, e := range chunk {
				if len(envs) > 0 && (size+len(e) > batchBytes || len(envs) >= batchMaxEnvs) {
					if err := flush(); err != nil {
						return sent, err
					}
				}
				envs = append(envs, e)
				size += len(e)
			}
		}
		if err := flush(); err != nil {
			return sent, err
		}
	}
	return sent, rw.write(wire.TypeEnd, (&wire.End{Sent: uint64(sent)}).Marshal())
}

// collectSince reads the envelopes after sequence from (up to upto) that fit one Batch,
// leaving out those skip reports (the peer sent them to us). last is the highest sequence
// visited, from when none was.
func (n *Node) collectSince(from, upto uint64, skip func(uint64) bool) ([][]byte, uint64, error) {
	var envs [][]byte
	size, last := 0, from
	_, err := n.st.Replication().SinceUpTo(from, upto, batchMaxEnvs, func(seq uint64, raw []byte) error {
		if len(envs) > 0 && size+len(raw) > batchBytes {
			return errBatchFull
		}
		last = seq
		if skip(seq) {
			return nil
		}
		envs = append(envs, bytes.Clone(raw))
		size += len(raw)
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return nil, 0, err
	}
	return envs, last, nil
}

// recvPlan is what a session asked the peer for: on the fast path the sequence range
// (from, upto] that the peer's hello claimed, after a Merkle reconciliation the ids in need
// (sorted). A batch outside it ends the session as a protocol violation, counted.
type recvPlan struct {
	mode       mode
	from, upto uint64 // fast: from advances to the To of each batch received
	need       []merkle.ID
}

// check refuses a batch that holds what the plan did not ask for.
func (a *recvPlan) check(b *wire.Batch, v *violations) error {
	switch a.mode {
	case modeNone:
		return fmt.Errorf("%w: envelopes where none were due", ErrProtocol)
	case modeFast:
		if b.From != a.from || b.To <= b.From {
			return fmt.Errorf("%w: batch (%d, %d] out of sequence, expected one from %d", ErrProtocol, b.From, b.To, a.from)
		}
		if b.To > a.upto || uint64(len(b.Envelopes)) > b.To-b.From {
			v.claim.Add(1)
			return fmt.Errorf("%w: batch (%d, %d] of %d envelopes beyond the %d claimed", ErrProtocol, b.From, b.To, len(b.Envelopes), a.upto)
		}
		a.from = b.To
	case modeMerkle:
		for _, e := range b.Envelopes {
			id, err := store.EnvelopeID(e)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrProtocol, err)
			}
			if _, ok := slices.BinarySearchFunc(a.need, id, func(x, y merkle.ID) int { return bytes.Compare(x[:], y[:]) }); !ok {
				v.unasked.Add(1)
				return fmt.Errorf("%w: envelope %x was not asked for", ErrProtocol, id[:6])
			}
		}
	}
	return nil
}

// receiveEnvelopes reads Batch frames until End and applies them in groups of at most
// cfg.ApplyBatch envelopes and applyBytes bytes. Each group's transaction also records the
// progress it earns; the last one records that everything the peer held at its hello is
// here. Only what asked names may arrive, and at most maxSessionBytes of it.
func (n *Node) receiveEnvelopes(rw *frameRW, p peer.ID, asked recvPlan, theirs *wire.Hello, res *sessionResult) error {
	var pending [][]byte
	held, total := 0, 0 // bytes of the frames pending aliases; of every batch received
	var from, to uint64
	ranged := false
	// flush applies pending; final is true at End.
	flush := func(final bool) error {
		var pr *progress
		if ranged {
			if next, ok := n.progress.planRange(p, theirs.Epoch, from, to); ok {
				pr = &next
			}
		}
		if final && res.Rejected == 0 {
			next := n.progress.planAtLeast(p, theirs.Epoch, theirs.LastSeq)
			if pr != nil && pr.Epoch == next.Epoch {
				next.Seq = max(next.Seq, pr.Seq)
			}
			pr = &next
		}
		if len(pending) == 0 {
			if pr != nil && final {
				if err := n.progress.save(p, *pr); err != nil {
					return fmt.Errorf("save progress: %w", err)
				}
			}
			return nil
		}
		if res.Rejected > 0 {
			pr = nil // an earlier group had a refused envelope: the range is not whole
		}
		ar, err := n.applyFrom(p, pending, pr)
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		res.Applied += ar.Added
		rc := rejections(ar.Rejected)
		res.Rejected += rc.bad + rc.later // either leaves the range not whole
		res.Bad += rc.bad
		res.Revoked += rc.revoked
		n.bounded.noteRejected(ar.Rejected)
		if rc.bad > 0 { // malformed, tampered, counters past the limit: end the session now
			return fmt.Errorf("%w: peer sent %d envelopes the store refused", ErrProtocol, rc.bad)
		}
		for _, c := range ar.Changes {
			if c.Conflict {
				res.Conflicts = append(res.Conflicts, c.ID)
			}
		}
		pending, held, ranged = nil, 0, false
		return nil
	}
	for {
		t, b, err := rw.readFrame()
		if err != nil {
			return fmt.Errorf("receive envelopes: %w", err)
		}
		switch t {
		case wire.TypeBatch:
			batch, err := wire.UnmarshalBatch(b)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrProtocol, err)
			}
			if err := asked.check(batch, &n.bounded); err != nil {
				return err
			}
			if asked.mode == modeFast {
				if !ranged {
					from, ranged = batch.From, true
				}
				to = batch.To
			}
			res.Received += len(batch.Envelopes)
			pending = append(pending, batch.Envelopes...)
			held, total = held+len(b), total+len(b)
			if len(pending) >= n.cfg.ApplyBatch || held >= applyBytes || total >= maxSessionBytes {
				if err := flush(false); err != nil {
					return err
				}
			}
			if total >= maxSessionBytes {
				n.bounded.capped.Add(1)
				return fmt.Errorf("receive envelopes: %w (%d bytes; applied what arrived)", ErrSessionCapped, total)
			}
		case wire.TypeEnd:
			end, err := wire.UnmarshalEnd(b)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrProtocol, err)
			}
			if end.Sent != uint64(res.Received) {
				return fmt.Errorf("%w: peer claims %d envelopes, sent %d", ErrProtocol, end.Sent, res.Received)
			}
			return flush(true)
		default:
			return fmt.Errorf("%w: unexpected frame %q", ErrProtocol, byte(t))
		}
	}
}
