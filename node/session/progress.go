package session

// Progress is what one side holds of a peer's store: every envelope the peer held up to
// sequence Seq of its store epoch Epoch (or something newer that supersedes it). It only
// moves forward within an epoch; a new epoch replaces the old one.
type Progress struct {
	Epoch [16]byte `json:"epoch"`
	Seq   uint64   `json:"seq"`
}

// AfterRange returns the progress once the range (from, to] of the peer's epoch is
// applied. ok is false when the range leaves a gap (it starts above what is held); the
// progress then stays as it is.
func (cur Progress) AfterRange(epoch [16]byte, from, to uint64) (pr Progress, ok bool) {
	if cur.Epoch != epoch {
		if from != 0 {
			return cur, false
		}
		cur = Progress{Epoch: epoch}
	}
	if from > cur.Seq {
		return cur, false
	}
	cur.Seq = max(cur.Seq, to)
	return cur, true
}

// AtLeast returns the progress once everything up to seq of the peer's epoch is held
// (after a reconciliation or a complete fast path).
func (cur Progress) AtLeast(epoch [16]byte, seq uint64) Progress {
	if cur.Epoch != epoch {
		return Progress{Epoch: epoch, Seq: seq}
	}
	cur.Seq = max(cur.Seq, seq)
	return cur
}
