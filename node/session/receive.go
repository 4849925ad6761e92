package session

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/store"
)

// Apply is a group of received envelopes to apply in one store transaction.
type Apply struct {
	// Envelopes are the envelopes, as received (they alias the frames).
	Envelopes [][]byte
	// Final is set on the group that ends the session's receiving.
	Final bool

	epoch    [16]byte // the peer's store epoch
	upto     uint64   // the last sequence of the peer's hello
	ranged   bool     // fast path: the group covers (from, to] of the peer's sequence
	from, to uint64
	rejected int // envelopes refused earlier in the session: progress may not pass them

	// InOrder is set on a group of an id-ordered transfer: the envelopes come in record-id
	// order (store.Replication.ApplyInOrder).
	InOrder bool
	snap    uint64    // ordered: the sequence of the peer held once the walk is whole
	after   merkle.ID // ordered: the last record of the group
	anyID   bool      // ordered: after is set
}

// Progress returns the progress to record with the group, given cur, what this side holds
// of the peer now (nil: record none). With envelopes, the caller writes it in the apply
// transaction, and only when the store refuses none of them; a group without envelopes
// (the final one, or one of echoes only) records it on its own. Each group's progress
// covers what it applied; the final one records that everything the peer held at its
// hello is here.
func (a *Apply) Progress(cur Progress) *Progress {
	if a.InOrder {
		return a.orderedProgress(cur)
	}
	var pr *Progress
	if a.ranged {
		if next, ok := cur.AfterRange(a.epoch, a.from, a.to); ok {
			pr = &next
		}
	}
	if a.Final && a.rejected == 0 {
		next := cur.AtLeast(a.epoch, a.upto)
		if pr != nil && pr.Epoch == next.Epoch {
			next.Seq = max(next.Seq, pr.Seq)
		}
		pr = &next
	}
	if len(a.Envelopes) == 0 {
		if !a.Final {
			return nil
		}
		return pr
	}
	if a.rejected > 0 {
		return nil // an earlier group had a refused envelope: the range is not whole
	}
	return pr
}

// orderedProgress is Progress for a group of an id-ordered transfer: the cursor after its
// last record, and at the end the sequence of the first snapshot.
func (a *Apply) orderedProgress(cur Progress) *Progress {
	switch {
	case a.rejected > 0:
		return nil
	case a.Final:
		next := cur.AtLeast(a.epoch, a.snap)
		return &next
	case len(a.Envelopes) == 0 || !a.anyID:
		return nil
	}
	next := cur.withCursor(a.epoch, a.snap, a.after)
	return &next
}

// Applied is what the store did with an Apply group.
type Applied struct {
	Added int // envelopes that changed the store
	// Bad counts envelopes refused as malformed or tampered (the peer misbehaves), Later
	// those under a key this device does not hold yet (fetched again later), Revoked those
	// of a removed device (refused for good).
	Bad, Later, Revoked int
	// Conflicts are the ids whose change opened a conflict.
	Conflicts []merkle.ID
}

// check refuses a batch that holds what the session did not ask for: on the fast path
// anything outside the sequence range (from, upto] that the peer's hello claimed, after a
// reconciliation envelopes of ids not in need.
func (s *Session) check(b *wire.Batch) error {
	switch s.recv {
	case modeNone:
		return fmt.Errorf("%w: envelopes where none were due", ErrProtocol)
	case modeFast:
		if b.From != s.recvFrom || b.To <= b.From {
			return fmt.Errorf("%w: batch (%d, %d] out of sequence, expected one from %d", ErrProtocol, b.From, b.To, s.recvFrom)
		}
		if b.To > s.theirs.LastSeq || uint64(len(b.Envelopes)) > b.To-b.From {
			s.res.Violation = Claim
			return fmt.Errorf("%w: batch (%d, %d] of %d envelopes beyond the %d claimed", ErrProtocol, b.From, b.To, len(b.Envelopes), s.theirs.LastSeq)
		}
		s.recvFrom = b.To
	case modeOrdered:
		v, err := s.ord.batch(b)
		if err != nil {
			s.res.Violation = v
			return err
		}
	case modeMerkle:
		for _, e := range b.Envelopes {
			id, err := store.EnvelopeID(e)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrProtocol, err)
			}
			if _, ok := slices.BinarySearchFunc(s.need, id, func(x, y merkle.ID) int { return bytes.Compare(x[:], y[:]) }); !ok {
				s.res.Violation = Unasked
				return fmt.Errorf("%w: envelope %x was not asked for", ErrProtocol, id[:6])
			}
		}
	}
	return nil
}

// Ready reports whether the session takes the peer's next frame before the groups handed
// over are reported applied: not while the last group (the final one, or the one that
// reached the byte cap) is still out. A caller may apply groups while it reads further
// frames (a pipeline), reporting each with Applied in the order it got them.
func (s *Session) Ready() bool {
	return len(s.applying) == 0 || s.cappedErr == nil && !s.applying[len(s.applying)-1].Final
}

// InFlight is the number of groups handed over and not yet reported applied.
func (s *Session) InFlight() int { return len(s.applying) }

// stepTransfer takes a Batch or the End of the peer's envelopes.
func (s *Session) stepTransfer(f Frame) (Output, error) {
	if !s.Ready() {
		return s.fail(fmt.Errorf("frame while the last group is being applied"))
	}
	switch f.Type {
	case wire.TypeBatch:
		batch, err := wire.UnmarshalBatch(f.Body)
		if err != nil {
			return s.fail(fmt.Errorf("%w: %v", ErrProtocol, err))
		}
		if err := s.check(batch); err != nil {
			return s.fail(err)
		}
		if s.recv == modeFast {
			if !s.ranged {
				s.rFrom, s.ranged = batch.From, true
			}
			s.rTo = batch.To
		}
		s.res.Received += len(batch.Envelopes)
		s.pending = append(s.pending, batch.Envelopes...)
		s.held, s.total = s.held+len(f.Body), s.total+len(f.Body)
		var out Output
		if len(s.pending) >= s.cfg.ApplyBatch || s.held >= s.cfg.ApplyBytes || s.total >= s.cfg.MaxBytes {
			out.Apply = s.group(false)
		}
		if s.total >= s.cfg.MaxBytes {
			err := fmt.Errorf("receive envelopes: %w (%d bytes; applied what arrived)", ErrSessionCapped, s.total)
			if out.Apply == nil {
				s.res.Violation = Capped
				return s.fail(err)
			}
			s.cappedErr = err
		}
		return out, nil
	case wire.TypeEnd:
		end, err := wire.UnmarshalEnd(f.Body)
		if err != nil {
			return s.fail(fmt.Errorf("%w: %v", ErrProtocol, err))
		}
		if end.Sent != uint64(s.res.Received) {
			return s.fail(fmt.Errorf("%w: peer claims %d envelopes, sent %d", ErrProtocol, end.Sent, s.res.Received))
		}
		return Output{Apply: s.group(true)}, nil
	}
	return s.fail(fmt.Errorf("%w: unexpected frame %q", ErrProtocol, byte(f.Type)))
}

// group hands the pending envelopes over for applying; nil when there is nothing to do.
func (s *Session) group(final bool) *Apply {
	if len(s.pending) == 0 && !final {
		return nil
	}
	a := &Apply{Envelopes: s.pending, Final: final, epoch: s.theirs.Epoch, upto: s.theirs.LastSeq,
		ranged: s.ranged, from: s.rFrom, to: s.rTo, rejected: s.res.Rejected}
	if s.recv == modeOrdered {
		a.InOrder, a.snap, a.after, a.anyID = true, s.ord.snap, s.ord.last, s.ord.any
	}
	s.applying = append(s.applying, a)
	s.pending, s.held, s.ranged = nil, 0, false
	return a
}

// Applied reports what the store did with the oldest group handed over (Output.Apply) and
// not reported yet.
func (s *Session) Applied(r Applied) (Output, error) {
	if s.err != nil {
		return Output{}, s.err
	}
	if len(s.applying) == 0 {
		return s.fail(fmt.Errorf("applied without a group"))
	}
	a := s.applying[0]
	s.applying = s.applying[1:]
	if len(a.Envelopes) > 0 {
		s.res.Applied += r.Added
		s.res.Rejected += r.Bad + r.Later // either leaves the range not whole
		s.res.Bad += r.Bad
		s.res.Revoked += r.Revoked
		if r.Bad > 0 { // malformed, tampered, counters past the limit: end the session now
			return s.fail(fmt.Errorf("%w: peer sent %d envelopes the store refused", ErrProtocol, r.Bad))
		}
		s.res.Conflicts = append(s.res.Conflicts, r.Conflicts...)
	}
	if s.cappedErr != nil && len(s.applying) == 0 {
		s.res.Violation = Capped
		return s.fail(s.cappedErr)
	}
	if a.Final {
		s.phase = phaseSending
		return Output{Received: true}, nil
	}
	return Output{}, nil
}
