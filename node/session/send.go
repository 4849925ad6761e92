package session

import (
	"bytes"
	"errors"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/internal/wire"
)

// Bounds of what a Sender puts in one Batch.
const (
	// batchBytes bounds the envelope bytes of one Batch frame (one larger envelope goes
	// alone).
	batchBytes   = 1 << 20
	batchMaxEnvs = 4096
	idsPerLookup = 512
)

var (
	errBatchFull = errors.New("batch full")
	errEcho      = errors.New("echo range")
)

// Echo reports whether the envelope this store numbered seq came from the peer (an
// echo, never sent back) and, if so, the last sequence number of the run of echoes that
// holds it: a sender jumps over the whole run without reading it.
type Echo func(seq uint64) (end uint64, ok bool)

// Filter is what Collect leaves out: the runs of echoes Echo reports, which it jumps over
// without reading them, and the envelopes Skip reports (a collection the peer does not
// hold). Either may be nil.
type Filter struct {
	Echo Echo
	Skip func(seq uint64, raw []byte) bool
}

// Collect reads the envelopes of src after sequence from (up to upto) that fit one Batch,
// leaving out what f reports. A run of echoes costs one seek, whatever its length, so a
// reconnect with nothing to send costs the same at any store size. last is the highest
// sequence visited (a skipped run counts as visited), from when none was. The push
// protocol uses it too.
func Collect(src Source, from, upto uint64, f Filter) (envs [][]byte, last uint64, err error) {
	size, seen := 0, 0
	last = from
	for last < upto && seen < batchMaxEnvs {
		var jump uint64
		_, err = src.SinceUpTo(last, upto, batchMaxEnvs-seen, func(seq uint64, raw []byte) error {
			if f.Echo != nil {
				if end, ok := f.Echo(seq); ok {
					jump = min(max(end, seq), upto)
					return errEcho
				}
			}
			if len(envs) > 0 && size+len(raw) > batchBytes {
				return errBatchFull
			}
			last = seq
			seen++
			if f.Skip != nil && f.Skip(seq, raw) {
				return nil
			}
			envs = append(envs, bytes.Clone(raw))
			size += len(raw)
			return nil
		})
		switch {
		case errors.Is(err, errEcho):
			last = jump
			continue
		case errors.Is(err, errBatchFull):
			return envs, last, nil
		case err != nil:
			return nil, 0, err
		}
		return envs, last, nil // the source ended, reached upto or gave its limit
	}
	return envs, last, nil
}

// Sender produces one side's Batch frames and the End that closes them, reading its
// Source. It does no I/O of its own: the caller writes each frame Next returns. It runs
// beside the Session (both directions travel at once), shares nothing mutable with it,
// and is not safe for concurrent use itself.
//
// On the fast path it sends the sequence range (from, upto], upto being the last sequence
// its hello claimed (the receiver refuses more; later writes go by push or the next
// session). After a reconciliation it sends the envelopes of the ids the peer lacks or
// holds differently, filtered by keep during a full resync.
type Sender struct {
	src        Source
	mode       mode
	from, upto uint64
	skip       Filter
	have       []merkle.ID
	keep       func([]byte) bool

	after   merkle.ID // ordered: the last record visited
	first   bool      // ordered: nothing visited yet
	maxEnvs int       // ordered: envelopes per batch

	next  int      // merkle: the next id of have to look up
	queue [][]byte // merkle: envelopes looked up, not yet in a batch
	sent  int
	ended bool

	reuse bool            // ReuseFrames: the next frame may overwrite the last
	frame wire.BatchFrame // ordered: the batch being built (kept when reuse)
	rec   [][]byte        // ordered: the envelopes of one record being looked at
}

// ReuseFrames tells s that its caller writes each frame before it calls Next again and
// keeps nothing of it: Next may then build the next batch in the buffer of the last, so
// that an initial sync allocates one batch buffer instead of one per batch.
func (s *Sender) ReuseFrames() { s.reuse = true }

// Sent is how many envelopes the frames returned so far carry.
func (s *Sender) Sent() int { return s.sent }

// Next returns the next frame to write. ok is false once End has been returned.
func (s *Sender) Next() (f Frame, ok bool, err error) {
	if s.ended {
		return Frame{}, false, nil
	}
	var envs [][]byte
	switch s.mode {
	case modeFast:
		for s.from < s.upto {
			envs, last, err := Collect(s.src, s.from, s.upto, s.skip)
			if err != nil {
				return Frame{}, false, err
			}
			if last == s.from {
				break
			}
			b := &wire.Batch{From: s.from, To: last, Envelopes: envs}
			s.sent += len(envs)
			s.from = last
			return Frame{Type: wire.TypeBatch, Body: b.Marshal()}, true, nil
		}
	case modeOrdered:
		if f, ok, err := s.nextOrdered(); err != nil || ok {
			return f, ok, err
		}
	case modeMerkle:
		size := 0
		for {
			for len(s.queue) > 0 {
				e := s.queue[0]
				if len(envs) > 0 && (size+len(e) > batchBytes || len(envs) >= batchMaxEnvs) {
					return s.batch(envs), true, nil
				}
				envs = append(envs, e)
				size += len(e)
				s.queue = s.queue[1:]
			}
			if s.next >= len(s.have) {
				break
			}
			if err := s.lookup(); err != nil {
				return Frame{}, false, err
			}
		}
		if len(envs) > 0 {
			return s.batch(envs), true, nil
		}
	}
	s.ended = true
	return Frame{Type: wire.TypeEnd, Body: (&wire.End{Sent: uint64(s.sent)}).Marshal()}, true, nil
}

func (s *Sender) batch(envs [][]byte) Frame {
	s.sent += len(envs)
	return Frame{Type: wire.TypeBatch, Body: (&wire.Batch{Envelopes: envs}).Marshal()}
}

// lookup queues the envelopes of the next idsPerLookup ids of have.
func (s *Sender) lookup() error {
	ids := s.have[s.next:min(s.next+idsPerLookup, len(s.have))]
	s.next += len(ids)
	return s.src.Envelopes(ids, func(raw []byte) error {
		if s.keep != nil && !s.keep(raw) {
			return nil
		}
		s.queue = append(s.queue, bytes.Clone(raw))
		return nil
	})
}
