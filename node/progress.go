package node

import (
	"errors"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node/session"
	"github.com/meshsync/meshsync/store"
)

// progress is what this device holds of a peer's store (session.Progress).
type progress = session.Progress

// progressTable owns the per-peer progress. It only moves forward within an epoch; a new
// epoch replaces the old one. Progress earned by applying envelopes is written in the
// same store transaction as the envelopes (applyFrom), so an interrupted transfer resumes
// exactly where it stopped at the cost of no extra fsync. Progress earned without applying
// anything (a pushed range whose envelopes were all echoes) is kept in memory and written
// with the next transaction or at Close.
type progressTable struct {
	st *store.Store

	mu    sync.Mutex
	m     map[peer.ID]progress
	echo  map[peer.ID][]seqRange    // ranges of our sequence space received from the peer
	dirty map[peer.ID]bool          // memory is ahead of the store
	scope map[peer.ID]session.Scope // what each peer said it holds in its last hello
}

func newProgressTable(st *store.Store) *progressTable {
	t := &progressTable{st: st, m: map[peer.ID]progress{}, dirty: map[peer.ID]bool{}, echo: map[peer.ID][]seqRange{},
		scope: map[peer.ID]session.Scope{}}
	var saved map[string][][2]uint64
	if ok, err := st.Local().Get(localEcho, &saved); err == nil && ok {
		for ps, rs := range saved {
			p, err := peer.Decode(ps)
			if err != nil {
				continue
			}
			for _, r := range rs {
				t.echo[p] = append(t.echo[p], seqRange{r[0], r[1]})
			}
		}
	}
	return t
}

// setScope notes what p said it holds.
func (t *progressTable) setScope(p peer.ID, sc session.Scope) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.scope[p] = sc
}

// pushFilter is what a push to p leaves out: p's own envelopes and the collections it
// does not hold (everything is sent to a peer not heard from yet; it drops what it does
// not hold).
func (t *progressTable) pushFilter(p peer.ID) session.Filter {
	t.mu.Lock()
	sc, ok := t.scope[p]
	t.mu.Unlock()
	if !ok {
		sc.All = true
	}
	return session.Skip(t.echoFilter(p), envelopeTag, sc)
}

// resetAll forgets every peer's progress, so that the next session with each reconciles
// by summary (a widened scope: the peers send the collections now held).
func (t *progressTable) resetAll(known []peer.ID) error {
	t.mu.Lock()
	peers := slices.Clone(known)
	for p := range t.m {
		peers = append(peers, p)
	}
	t.mu.Unlock()
	for _, p := range peers {
		if err := t.save(p, progress{}); err != nil {
			return err
		}
	}
	return nil
}

// localEcho holds every peer's echo ranges, so that a restart does not send a peer back
// the envelopes it sent.
const localEcho = "echo-ranges"

// echoSnapshot returns the echo ranges of every peer in their stored form.
func (t *progressTable) echoSnapshot() map[string][][2]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string][][2]uint64, len(t.echo))
	for p, rs := range t.echo {
		for _, r := range rs {
			out[p.String()] = append(out[p.String()], [2]uint64{r.from, r.to})
		}
	}
	return out
}

func progressName(p peer.ID) string { return "progress/" + p.String() }

func (t *progressTable) get(p peer.ID) progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pr, ok := t.m[p]; ok {
		return pr
	}
	var pr progress
	if ok, err := t.st.Local().Get(progressName(p), &pr); err == nil && ok {
		t.m[p] = pr
	}
	return pr
}

// planRange returns p's progress once the range (from, to] of the peer's epoch is applied
// (session.Progress.AfterRange).
func (t *progressTable) planRange(p peer.ID, epoch [16]byte, from, to uint64) (pr progress, ok bool) {
	return t.get(p).AfterRange(epoch, from, to)
}

// set makes pr p's progress in memory if it is ahead of what is held (same epoch, higher
// sequence) or of a new epoch. saved says pr is already in the store; otherwise the entry
// is dirty until the next write. It reports whether the progress changed.
func (t *progressTable) set(p peer.ID, pr progress, saved bool) bool {
	t.get(p) // loads the stored value the first time
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, held := t.m[p]
	// An id-ordered cursor moves on at the same sequence (0).
	cursor := pr.Seq == cur.Seq && pr.Snap > 0 && pr != cur
	if held && cur.Epoch == pr.Epoch && pr.Seq <= cur.Seq && !cursor {
		if saved && pr == cur {
			delete(t.dirty, p)
		}
		return false
	}
	t.m[p] = pr
	if saved {
		delete(t.dirty, p)
	} else {
		t.dirty[p] = true
	}
	return true
}

// save persists pr as p's progress now (its own transaction) and holds it in memory.
func (t *progressTable) save(p peer.ID, pr progress) error {
	if !t.set(p, pr, false) {
		return nil
	}
	t.mu.Lock()
	pr = t.m[p]
	t.mu.Unlock()
	if err := t.st.Local().Put(progressName(p), pr); err != nil {
		return err
	}
	t.set(p, pr, true)
	return nil
}

// flush persists every dirty entry (at Close).
func (t *progressTable) flush() {
	t.mu.Lock()
	m := map[peer.ID]progress{}
	for p := range t.dirty {
		m[p] = t.m[p]
	}
	t.mu.Unlock()
	for p, pr := range m {
		if t.st.Local().Put(progressName(p), pr) == nil {
			t.set(p, pr, true)
		}
	}
}

// seqRange is (from, to] of this store's sequence space.
type seqRange struct{ from, to uint64 }

// maxEchoRanges bounds the echo ranges kept per peer (oldest dropped first).
const maxEchoRanges = 256

// received records that the envelopes this store numbered (from, to] came from p, so that
// they are not sent back to it. applyFrom stores the ranges in the same transaction.
func (t *progressTable) received(p peer.ID, from, to uint64) {
	if to <= from {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	rs := t.echo[p]
	if k := len(rs); k > 0 && rs[k-1].to == from {
		rs[k-1].to = to
	} else {
		rs = append(rs, seqRange{from, to})
	}
	if len(rs) > maxEchoRanges {
		rs = rs[len(rs)-maxEchoRanges:]
	}
	t.echo[p] = rs
}

// forget undoes received(p, from, to) after the transaction that would have used those
// sequence numbers rolled back (they will be given to other envelopes).
func (t *progressTable) forget(p peer.ID, from, to uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rs := t.echo[p]
	for i := len(rs) - 1; i >= 0; i-- {
		r := &rs[i]
		if r.to == to && r.from <= from {
			r.to = from
			if r.to == r.from {
				rs = append(rs[:i], rs[i+1:]...)
			}
			break
		}
	}
	t.echo[p] = rs
}

// echoFilter returns a session.Echo reporting whether p already has our envelope seq
// because it sent it, and the end of the range that holds it. It is valid for every
// sequence number committed before the call: a range is recorded inside the transaction
// that applies it, before the commit.
func (t *progressTable) echoFilter(p peer.ID) session.Echo {
	t.mu.Lock()
	rs := append([]seqRange(nil), t.echo[p]...)
	t.mu.Unlock()
	return func(seq uint64) (uint64, bool) {
		for _, r := range rs {
			if seq > r.from && seq <= r.to {
				return r.to, true
			}
		}
		return 0, false
	}
}

// applyFrom applies envelopes received from p (prepared: store.Replication.Prepare; in
// record-id order when inOrder) in one store transaction. It records the
// sequence numbers they got as echo of p (ApplyResult.FirstSeq..LastSeq: nothing else
// writes in between), and, when pr is not nil and the store refused none of them, writes
// pr as p's progress in the same transaction.
func (n *Node) applyFrom(p peer.ID, pre *store.Prepared, pr *progress, inOrder bool) (store.ApplyResult, error) {
	var echoFrom, echoTo uint64
	wrote := false
	ar, err := n.st.Replication().ApplyPrepared(pre, func(tx *store.Tx, ar store.ApplyResult) error {
		if ar.LastSeq > 0 {
			echoFrom, echoTo = ar.FirstSeq-1, ar.LastSeq
			n.progress.received(p, echoFrom, echoTo)
			if err := tx.PutLocal(localEcho, n.progress.echoSnapshot()); err != nil {
				return err
			}
		}
		if pr != nil && rejections(ar.Rejected).whole() {
			wrote = true
			return tx.PutLocal(progressName(p), *pr)
		}
		return nil
	}, inOrder)
	if err != nil {
		if echoTo > 0 {
			n.progress.forget(p, echoFrom, echoTo)
		}
		return ar, err
	}
	if wrote {
		n.progress.set(p, *pr, true)
	}
	return ar, nil
}

// rejectionCount sorts what the store refused of a batch from a peer.
type rejectionCount struct {
	revoked int // written by a removed device after its removal: refused for good
	later   int // sealed under a key epoch this device does not hold yet: fetched again later
	bad     int // malformed, tampered: the peer misbehaves
}

func rejections(rs []store.Rejected) rejectionCount {
	var c rejectionCount
	for _, r := range rs {
		switch {
		case errors.Is(r.Err, store.ErrRevoked):
			c.revoked++
		case errors.Is(r.Err, store.ErrUnknownKeyEpoch):
			c.later++
		default:
			c.bad++
		}
	}
	return c
}

// whole reports whether progress may pass the batch: nothing in it needs fetching again.
func (c rejectionCount) whole() bool { return c.later == 0 && c.bad == 0 }
