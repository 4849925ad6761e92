package session

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/store"
)

// The initial sync in record-id order (sync version 5). When the receiver holds nothing
// of the sender's store (the fast path from sequence 0), the sender walks its record index
// and sends every record as its store held it at S, the last sequence of its hello (a
// snapshot: envelopes written later wait for the sequence path). The receiver's indexes
// and Merkle tree then grow by appends. Batches carry no range; the receiver checks that
// ids only grow (a record's envelopes travel in one batch, none twice) past what it has,
// that no batch repeats the last id of the one before, and that the records are at most
// the count the sender's hello claims.
//
// Progress. Each applied group records a cursor: the sender's epoch, the first snapshot
// S of the transfer and the last id received. An interrupted transfer resumes after that
// id (the receiver's hello carries the cursor), from a new snapshot S' ≥ S; once the walk
// is complete the receiver records the sender's sequence S (the first snapshot), so that
// the next session sends everything written after S, including what the resumed walk
// passed over because it was written below the cursor meanwhile.

// maxPerRecord bounds the envelopes of one record (its concurrent versions) an ordered
// stream may carry.
const maxPerRecord = 256

// Speak makes h a hello of version v, older than its own: without what v lacks. A
// responder answers an older initiator so; an initiator speaks so to a peer known to be
// older, which would refuse a newer hello.
func Speak(h *wire.Hello, v byte) {
	h.Version = v
	if v < 5 {
		h.ResumeSnap, h.ResumeAfter = 0, [32]byte{}
	}
}

// ordered turns the fast path from sequence 0 into the id-ordered one when both hellos
// speak version 5.
func ordered(m mode, from uint64, sender, receiver *wire.Hello) mode {
	if m == modeFast && from == 0 && sender.Version >= 5 && receiver.Version >= 5 {
		return modeOrdered
	}
	return m
}

// resumeFrom returns where an id-ordered transfer starts: after the receiver's cursor
// when it is one of the sender's epoch and snapshot, else at the first record.
func resumeFrom(sender, receiver *wire.Hello) (after merkle.ID, first bool) {
	if resumes(sender, receiver) {
		return receiver.ResumeAfter, false
	}
	return merkle.ID{}, true
}

// resumes reports whether the receiver's cursor holds for this sender: the same epoch,
// nothing held by sequence, a snapshot the sender's store has reached.
func resumes(sender, receiver *wire.Hello) bool {
	return receiver.ResumeSnap > 0 && receiver.KnownEpoch == sender.Epoch && receiver.KnownSeq == 0 &&
		receiver.ResumeSnap <= sender.LastSeq && sender.Epoch != [16]byte{}
}

// orderCheck is what a receiver knows of an id-ordered stream.
type orderCheck struct {
	snap    uint64    // the sequence the receiver holds everything of once the walk ends
	last    merkle.ID // the last id received (or the cursor resumed from)
	any     bool      // last is set: the next id must come after it
	records uint64    // records received
	claim   uint64    // the records the sender's hello claims
}

func newOrderCheck(sender, receiver *wire.Hello) orderCheck {
	c := orderCheck{snap: sender.LastSeq, claim: sender.RootCount}
	if after, first := resumeFrom(sender, receiver); !first {
		c.snap, c.last, c.any = receiver.ResumeSnap, after, true
	}
	return c
}

// batch checks one batch of an id-ordered stream and moves past it.
func (c *orderCheck) batch(b *wire.Batch) (Violation, error) {
	if b.From != 0 || b.To != 0 {
		return NoViolation, fmt.Errorf("%w: a sequence range (%d, %d] in an id-ordered stream", ErrProtocol, b.From, b.To)
	}
	var same [][]byte // the envelopes of the current record
	for i, e := range b.Envelopes {
		id, err := store.EnvelopeID(e)
		if err != nil {
			return NoViolation, fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		cmp := 1
		if c.any {
			cmp = bytes.Compare(id[:], c.last[:])
		}
		switch {
		case cmp < 0 || cmp == 0 && i == 0:
			return Unasked, fmt.Errorf("%w: record %x out of id order (after %x)", ErrProtocol, id[:6], c.last[:6])
		case cmp == 0:
			for _, d := range same {
				if bytes.Equal(d, e) {
					return Unasked, fmt.Errorf("%w: envelope of record %x sent twice", ErrProtocol, id[:6])
				}
			}
			if len(same) >= maxPerRecord {
				return Claim, fmt.Errorf("%w: more than %d envelopes of record %x", ErrProtocol, maxPerRecord, id[:6])
			}
			same = append(same, e)
		default:
			c.records++
			if c.records > c.claim {
				return Claim, fmt.Errorf("%w: more than the %d records claimed", ErrProtocol, c.claim)
			}
			c.last, c.any, same = id, true, append(same[:0], e)
		}
	}
	return NoViolation, nil
}

// nextOrdered returns the next Batch of an id-ordered transfer, or ok false at its end.
// A record's envelopes go in one batch; a batch holds maxEnvs envelopes or
// batchBytes bytes at most (one larger record goes alone).
func (s *Sender) nextOrdered() (f Frame, ok bool, err error) {
	bf := &s.frame
	if !s.reuse {
		bf = &wire.BatchFrame{} // the caller may keep the frame
	}
	bf.Reset(batchBytes + 3*s.maxEnvs) // the envelopes and their length prefixes
	size := 0
	for {
		last, any, err := s.src.Ordered(s.after, s.first, s.upto, s.maxEnvs, func(id merkle.ID, seqs []uint64, raws [][]byte) error {
			rec := s.rec[:0]
			n := 0
			for i, raw := range raws {
				if s.skip.Echo != nil {
					if _, echo := s.skip.Echo(seqs[i]); echo {
						continue
					}
				}
				if s.skip.Skip != nil && s.skip.Skip(seqs[i], raw) {
					continue
				}
				rec = append(rec, raw)
				n += len(raw)
			}
			s.rec = rec[:0]
			if bf.Len() > 0 && (size+n > batchBytes || bf.Len()+len(rec) > s.maxEnvs) {
				return errBatchFull
			}
			for _, raw := range rec {
				bf.Add(raw) // copied here: raw aliases the source's read
			}
			size += n
			s.after, s.first = id, false
			return nil
		})
		full := errors.Is(err, errBatchFull)
		if err != nil && !full {
			return Frame{}, false, err
		}
		if !full && any {
			s.after, s.first = last, false // records left out whole (echoes, other collections)
		}
		if full || !any {
			break
		}
	}
	if bf.Len() == 0 {
		return Frame{}, false, nil
	}
	s.sent += bf.Len()
	w := bf.Frame(0, 0)
	return Frame{Type: wire.TypeBatch, Body: w[5:], Wire: w}, true, nil
}
