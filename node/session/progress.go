package session

import "encoding/hex"

// Progress is what one side holds of a peer's store: every envelope the peer held up to
// sequence Seq of its store epoch Epoch (or something newer that supersedes it). It only
// moves forward within an epoch; a new epoch replaces the old one.
type Progress struct {
	Epoch [16]byte `json:"epoch"`
	Seq   uint64   `json:"seq"`
	// Snap and After are the cursor of an initial sync in record-id order that has not
	// ended (ordered.go): every record of the peer's ids up to After (hex) as the peer
	// held it at its sequence Snap. Zero and empty otherwise.
	Snap  uint64 `json:"snap,omitempty"`
	After string `json:"after,omitempty"`
}

// Cursor returns the id-ordered cursor: the snapshot and the last id (Snap 0: none).
func (cur Progress) Cursor() (snap uint64, after [32]byte) {
	b, err := hex.DecodeString(cur.After)
	if cur.Snap == 0 || err != nil || len(b) != len(after) {
		return 0, after
	}
	copy(after[:], b)
	return cur.Snap, after
}

// withCursor returns cur with the cursor of an id-ordered transfer at (snap, after).
func (cur Progress) withCursor(epoch [16]byte, snap uint64, after [32]byte) Progress {
	if cur.Epoch != epoch {
		cur = Progress{Epoch: epoch}
	}
	cur.Snap, cur.After = snap, hex.EncodeToString(after[:])
	return cur
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
	cur.Snap, cur.After = 0, "" // whole up to to: an id-ordered cursor is past
	return cur, true
}

// AtLeast returns the progress once everything up to seq of the peer's epoch is held
// (after a reconciliation or a complete fast path).
func (cur Progress) AtLeast(epoch [16]byte, seq uint64) Progress {
	if cur.Epoch != epoch {
		return Progress{Epoch: epoch, Seq: seq}
	}
	cur.Seq = max(cur.Seq, seq)
	cur.Snap, cur.After = 0, ""
	return cur
}
