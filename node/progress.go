package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/store"
)

// progress is what this device holds of a peer's store: every envelope the peer held up
// to sequence Seq of its store epoch Epoch (or something newer that supersedes it).
type progress struct {
	Epoch [16]byte `json:"epoch"`
	Seq   uint64   `json:"seq"`
}

// progressTable owns the per-peer progress. Updates only move forward within an epoch; a
// new epoch replaces the old one. It is persisted in the store's local state after every
// sync batch and at most once a second for pushes, so an interrupted transfer resumes
// where it stopped (a crash costs at most a second of re-sent, idempotent envelopes).
type progressTable struct {
	st *store.Store

	mu    sync.Mutex
	m     map[peer.ID]progress
	echo  map[peer.ID][]seqRange  // ranges of our sequence space received from the peer
	apply map[peer.ID]*sync.Mutex // held while envelopes from the peer are applied
	dirty map[peer.ID]bool
	last  time.Time // last lazy flush
}

func newProgressTable(st *store.Store) *progressTable {
	return &progressTable{st: st, m: map[peer.ID]progress{}, dirty: map[peer.ID]bool{}, echo: map[peer.ID][]seqRange{}, apply: map[peer.ID]*sync.Mutex{}}
}

func progressName(p peer.ID) string { return "progress/" + p.String() }

func (t *progressTable) get(p peer.ID) progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pr, ok := t.m[p]; ok {
		return pr
	}
	var pr progress
	if ok, err := t.st.GetLocal(progressName(p), &pr); err == nil && ok {
		t.m[p] = pr
	}
	return pr
}

// advance records that the range (from, to] of the peer's epoch has been applied. It
// moves the progress only when the range starts at or below what is already held (no
// gap), and reports whether it did.
func (t *progressTable) advance(p peer.ID, epoch [16]byte, from, to uint64) bool {
	cur := t.get(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur.Epoch != epoch {
		if from != 0 {
			return false
		}
		cur = progress{Epoch: epoch}
	}
	if from > cur.Seq {
		return false
	}
	if to > cur.Seq {
		cur.Seq = to
		t.m[p] = cur
		t.dirty[p] = true
	}
	return true
}

// atLeast records that everything up to seq of the peer's epoch is held (after a
// reconciliation or a complete fast path).
func (t *progressTable) atLeast(p peer.ID, epoch [16]byte, seq uint64) {
	cur := t.get(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur.Epoch != epoch {
		cur = progress{Epoch: epoch}
	}
	if seq > cur.Seq || cur.Seq == 0 {
		cur.Seq = max(cur.Seq, seq)
		t.m[p] = cur
		t.dirty[p] = true
	}
}

// save persists p's progress now.
func (t *progressTable) save(p peer.ID) error {
	t.mu.Lock()
	pr, dirty := t.m[p], t.dirty[p]
	delete(t.dirty, p)
	t.mu.Unlock()
	if !dirty {
		return nil
	}
	return t.st.PutLocal(progressName(p), pr)
}

// saveLazy persists p's progress if the last lazy save is more than a second old.
func (t *progressTable) saveLazy(p peer.ID, now time.Time) {
	t.mu.Lock()
	due := now.Sub(t.last) > time.Second
	if due {
		t.last = now
	}
	t.mu.Unlock()
	if due {
		t.flush()
	}
}

// flush persists every dirty entry.
func (t *progressTable) flush() {
	t.mu.Lock()
	var ps []peer.ID
	for p := range t.dirty {
		ps = append(ps, p)
	}
	t.mu.Unlock()
	for _, p := range ps {
		t.save(p)
	}
}

// seqRange is (from, to] of this store's sequence space.
type seqRange struct{ from, to uint64 }

// maxEchoRanges bounds the echo ranges kept per peer (oldest dropped first).
const maxEchoRanges = 256

// received records that the envelopes this store numbered (from, to] came from p, so that
// they are not sent back to it. Only memory: after a restart they may be echoed once.
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

// echoFilter returns a function reporting whether p already has our envelope seq because
// it sent it. The function is only valid for ranges recorded before the call.
func (t *progressTable) echoFilter(p peer.ID) func(seq uint64) bool {
	// Wait for an apply from p in flight: its envelopes are committed (and announced)
	// before their range is recorded.
	am := t.applyLock(p)
	am.Lock()
	am.Unlock()
	t.mu.Lock()
	rs := append([]seqRange(nil), t.echo[p]...)
	t.mu.Unlock()
	return func(seq uint64) bool {
		for _, r := range rs {
			if seq > r.from && seq <= r.to {
				return true
			}
		}
		return false
	}
}

// applyFrom applies envelopes received from p and records the sequence numbers they got
// as echo of p. The range is known exactly only when no other write committed in between
// (the store numbers one new envelope per Added in one transaction).
func (n *Node) applyFrom(p peer.ID, envs [][]byte) (store.ApplyResult, error) {
	am := n.progress.applyLock(p)
	am.Lock()
	defer am.Unlock()
	before, err := n.st.LastSeq()
	if err != nil {
		return store.ApplyResult{}, err
	}
	ar, err := n.st.Apply(envs)
	if err != nil {
		return ar, err
	}
	if after, err := n.st.LastSeq(); err == nil && ar.Added > 0 && after-before == uint64(ar.Added) {
		n.progress.received(p, before, after)
	}
	return ar, nil
}

func (t *progressTable) applyLock(p peer.ID) *sync.Mutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.apply[p]
	if m == nil {
		m = &sync.Mutex{}
		t.apply[p] = m
	}
	return m
}
