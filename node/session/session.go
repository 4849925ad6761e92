package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/internal/wire"
)

// Source is what a session reads of the local store besides its Merkle summary. The
// store implements it through a small adapter in package node; the tests, in memory.
type Source interface {
	// Position returns the store's epoch and its last sequence number now.
	Position() (epoch [16]byte, last uint64, err error)
	// SinceUpTo calls fn with the envelopes numbered in (after, upto], in order, at most
	// limit of them (0: no limit), until fn returns an error; it returns the last
	// sequence number visited.
	SinceUpTo(after, upto uint64, limit int, fn func(seq uint64, raw []byte) error) (uint64, error)
	// Envelopes calls fn with every envelope held for each of ids (none for an unknown
	// id).
	Envelopes(ids []merkle.ID, fn func(raw []byte) error) error
	// Ordered calls fn with the records whose ids come after after (every record when
	// first is set), in id order, each with its envelopes numbered up to upto and their
	// sequence numbers (a record with none left is not called), until fn returns an error
	// or limit records were visited; raws may alias the store's memory for the call only.
	// It returns the last id visited and whether it visited any.
	Ordered(after merkle.ID, first bool, upto uint64, limit int, fn func(id merkle.ID, seqs []uint64, raws [][]byte) error) (last merkle.ID, any bool, err error)
}

// Frame is one frame of the sync protocol, as package wire reads and writes it.
type Frame struct {
	Type wire.Type
	Body []byte
	// Wire, when set, is the frame as it goes on the wire, length prefix and type
	// included (Body is its tail): a Sender builds its batches in place.
	Wire []byte
}

// Defaults of Config's bounds.
const (
	DefaultApplyBatch = 4096
	// DefaultApplyBytes bounds the envelope bytes a receiving session gathers before it
	// hands them over to be applied.
	DefaultApplyBytes = 16 << 20
	// DefaultMaxBytes bounds the envelope bytes one session receives. A 1M-record
	// initial sync of 1 KiB records carries about 1.2 GiB, so it fits in one session; a
	// larger transfer ends at the cap after applying what arrived, and the next session
	// continues from there.
	DefaultMaxBytes = 2 << 30
)

// Config is one side of one session. Every field but Source and Summary is a value: the
// caller reads its store (last sequence, root, epoch, progress, horizon) into Hello.
type Config struct {
	// Initiator is set on the side that opened the stream; it sends its hello first.
	Initiator bool
	// Self and Peer are the two sides' peer ids, bound into the hellos' mesh proofs.
	Self, Peer peer.ID
	// ProofKey is the key of the mesh proof the peer's hello must carry.
	ProofKey []byte
	// Hello is this side's hello, proof included (Proof).
	Hello wire.Hello
	// Source reads the local store; Summary is its Merkle summary. Neither may change
	// during the reconciliation (the store reads from snapshots).
	Source  Source
	Summary merkle.Source
	// Scoped, when set, returns the summary of the collections of tags only: the session
	// reconciles over the collections both sides hold (common). Nil: Summary, whole.
	Scoped func(tags [][8]byte) merkle.Source
	// TagOf reads the collection tag of an encoded envelope, so that the fast path sends
	// the peer only the collections it holds. Nil: no filter.
	TagOf func(raw []byte) [8]byte
	// Now is this side's clock when the session starts; TombstoneTTL its tombstone
	// lifetime (for the horizon plan).
	Now          time.Time
	TombstoneTTL time.Duration
	// Blind is set on a blind replica, which takes on a device's tombstone horizon
	// (Output.AdoptHorizon).
	Blind bool
	// Echo reports the sequence numbers of this store that came from the peer: the fast
	// path does not send them back, and jumps over each run of them. Nil: none. The
	// Sender calls it.
	Echo Echo
	// ApplyBatch and ApplyBytes bound one apply group, MaxBytes the envelope bytes the
	// session receives. Zero means the default.
	ApplyBatch, ApplyBytes, MaxBytes int
	// BatchEnvelopes bounds the envelopes of one Batch this side sends in id order (0:
	// 4,096); tests make it small to interrupt a transfer between batches.
	BatchEnvelopes int
	// Newest is the newest hello version this side takes (0: wire.Version). A test
	// playing a device of an older release sets its version, which refuses a newer
	// hello as that release did.
	Newest byte
}

// Output is what one step asks of the caller, in this order: write Send, adopt the
// horizon, start the Sender, apply Apply and report it with Applied; then, unless Done,
// read the next frame for Step. A caller may report Apply groups later, in order, and
// read further frames meanwhile while Ready says so (Session.Ready). With an error the caller still writes Send, notes a
// rollback when Rollback is set, and ends the stream with a reset.
type Output struct {
	// Send holds the frames to write now, in order.
	Send []Frame
	// AdoptHorizon is set on a blind replica when it takes on the peer's horizon.
	AdoptHorizon time.Time
	// Transfer is set once hellos and reconciliation are over: run Sender() beside the
	// session until it ends.
	Transfer bool
	// Apply holds envelopes to apply in one transaction (possibly none, at End: then
	// only the progress it carries), reported back with Applied.
	Apply *Apply
	// Received is set once everything the peer sent is applied: wait for the Sender to
	// end, then call Sent.
	Received bool
	// Rollback is set, with ErrRolledBack, when the peer remembers more of this store than
	// it holds: the store was put back from an older copy. Start a new store epoch.
	Rollback bool
	// Done is set when the session ended well; Result is final.
	Done bool
}

type phase int

const (
	phaseHello phase = iota
	phaseMerkle
	phaseTransfer
	phaseSending // everything received and applied, the Sender still runs
	phaseDone    // Done sent, the peer's awaited
	phaseOver
)

func (p phase) String() string {
	return [...]string{"hello", "reconcile", "envelopes", "sending", "done", "over"}[p]
}

type mode int

const (
	modeNone mode = iota
	modeFast
	modeMerkle
	// modeOrdered is the fast path from nothing between two version-5 sides: the sender's
	// records in id order as its store held them at its hello's last sequence (ordered.go).
	modeOrdered
)

func (m mode) String() string { return [...]string{"none", "fast", "merkle", "ordered"}[m] }

// Result reports a session, complete once Output.Done.
type Result struct {
	Mode        string
	Sent        int // envelopes sent
	Received    int // envelopes received
	Applied     int // received envelopes that changed the store
	Rejected    int // received envelopes refused by the store that may be fetched again
	Bad         int // of those, malformed or tampered: the peer misbehaved
	Revoked     int // received envelopes of a removed device, refused for good
	Conflicts   []merkle.ID
	PeerApplied int // what the peer reported applying of ours
	// MyLastSeq is our last sequence at hello: the peer now holds everything up to it.
	// After a resumed transfer in id order, it is the snapshot the transfer began at: the
	// peer holds that, and the records past its cursor as of our hello.
	MyLastSeq   uint64
	PeerLastSeq uint64
	PeerEpoch   [16]byte
	// PeerRecords is the record count of the peer's store (its hello's Merkle root) in the
	// collections both sides hold.
	PeerRecords uint64
	// PeerVersion is the sync version of the peer's hello: a responder's is the
	// initiator's version or older (it answers an older peer in the peer's version).
	PeerVersion byte
	// PeerScope is what the peer's hello says it holds: a push sends it nothing else.
	PeerScope Scope
	// MerkleMessages counts the reconciliation messages sent and received.
	MerkleMessages int
	// Violation names the bound the peer broke, when one ended the session.
	Violation Violation
	// Resync is the horizon plan. When this side resynced fully (Mode "full-resync"),
	// Since is its last contact before the session and Lacks the ids the peer lacks: old
	// records the caller forgets (store.ForgetBefore).
	Resync ResyncPlan
	Since  time.Time
	Lacks  []merkle.ID
}

// Session is one side of one sync session: a state machine that takes the peer's frames
// and the caller's apply reports and returns frames to write and envelopes to apply, in
// the manner of merkle.Session. It does no I/O, starts no goroutine and reads no clock.
// It is not safe for concurrent use; its Sender runs on its own.
type Session struct {
	cfg    Config
	phase  phase
	res    Result
	theirs *wire.Hello

	send, recv mode
	from       uint64 // fast path: what this side sends from
	keep       func([]byte) bool
	ms         *merkle.Session
	need, have []merkle.ID
	sender     *Sender

	// receiving
	recvFrom  uint64 // fast: the next batch starts here
	pending   [][]byte
	held      int // bytes of the frames pending aliases
	total     int // bytes of every batch received
	ranged    bool
	rFrom     uint64
	rTo       uint64
	ord       orderCheck // ordered: what the peer sent so far
	applying  []*Apply   // handed over, not reported applied yet, oldest first
	cappedErr error      // the cap was reached: end once the group in flight is applied
	err       error
}

// New returns a session; call Start first.
func New(cfg Config) *Session {
	if cfg.ApplyBatch <= 0 {
		cfg.ApplyBatch = DefaultApplyBatch
	}
	if cfg.ApplyBytes <= 0 {
		cfg.ApplyBytes = DefaultApplyBytes
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	s := &Session{cfg: cfg}
	s.res.MyLastSeq = cfg.Hello.LastSeq
	return s
}

// Proof is the mesh proof of a hello: only holders of the mesh key can make it, and it is
// bound to the role ('I' initiator, 'R' responder) and both peer ids, so it cannot be
// replayed elsewhere.
func Proof(key []byte, role byte, from, to peer.ID) [32]byte {
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

// Role is the role byte of a proof.
func Role(initiator bool) byte {
	if initiator {
		return 'I'
	}
	return 'R'
}

// Result returns what the session did so far.
func (s *Session) Result() Result { return s.res }

// Waiting names the frame the session expects next, for the caller's error messages.
func (s *Session) Waiting() string { return s.phase.String() }

// Sender returns the side that sends envelopes, once an Output reported Transfer.
func (s *Session) Sender() *Sender { return s.sender }

func (s *Session) fail(err error) (Output, error) {
	if s.err == nil {
		s.err = err
	}
	s.phase = phaseOver
	return Output{}, s.err
}

// Start returns the first output: the initiator's hello; nothing for the responder.
func (s *Session) Start() (Output, error) {
	if s.cfg.Initiator {
		return Output{Send: []Frame{s.hello()}}, nil
	}
	return Output{}, nil
}

func (s *Session) hello() Frame { return Frame{Type: wire.TypeHello, Body: s.cfg.Hello.Marshal()} }

func expect(f Frame, want wire.Type) error {
	if f.Type != want {
		return fmt.Errorf("%w: got frame %q, want %q", ErrProtocol, byte(f.Type), byte(want))
	}
	return nil
}

// Step takes one frame from the peer.
func (s *Session) Step(f Frame) (Output, error) {
	if s.err != nil {
		return Output{}, s.err
	}
	switch s.phase {
	case phaseHello:
		return s.stepHello(f)
	case phaseMerkle:
		return s.stepMerkle(f)
	case phaseTransfer:
		return s.stepTransfer(f)
	case phaseDone:
		return s.stepDone(f)
	}
	return s.fail(fmt.Errorf("%w: frame %q while %s", ErrProtocol, byte(f.Type), s.Waiting()))
}

func (s *Session) readHello(f Frame) (*wire.Hello, error) {
	if err := expect(f, wire.TypeHello); err != nil {
		return nil, fmt.Errorf("read hello: %w", err)
	}
	h, err := wire.UnmarshalHello(f.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if h.Version < wire.MinVersion {
		return nil, fmt.Errorf("%w: it speaks sync version %d, this device %d: upgrade meshsync on it", ErrOldPeer, h.Version, wire.Version)
	}
	newest := byte(wire.Version)
	if s.cfg.Newest != 0 {
		newest = s.cfg.Newest
	}
	if h.Version > newest {
		return nil, fmt.Errorf("%w: peer speaks sync version %d, this device %d: upgrade meshsync on this device", ErrProtocol, h.Version, newest)
	}
	want := Proof(s.cfg.ProofKey, Role(!s.cfg.Initiator), s.cfg.Peer, s.cfg.Self)
	if !hmac.Equal(h.Proof[:], want[:]) {
		return nil, fmt.Errorf("%w: hello does not prove the mesh key", ErrNotMember)
	}
	return h, nil
}

func (s *Session) stepHello(f Frame) (Output, error) {
	theirs, err := s.readHello(f)
	if err != nil {
		return s.fail(err)
	}
	s.theirs = theirs
	mine := &s.cfg.Hello
	if theirs.Version < mine.Version {
		Speak(mine, theirs.Version) // the responder answers an older peer in its version
	}
	var out Output
	if !s.cfg.Initiator {
		out.Send = append(out.Send, s.hello())
	}
	s.res.PeerLastSeq, s.res.PeerEpoch, s.res.PeerRecords = theirs.LastSeq, theirs.Epoch, theirs.RootCount
	s.res.PeerVersion = theirs.Version
	// The peer remembers more of this store's epoch than the store holds: the file was put
	// back from an older copy, and a fast path from the peer's number would skip what the
	// store wrote since. Start a new epoch and end the session; the next one reconciles by
	// Merkle summary. Compare with the store as it is now, not at the hello: a push may
	// have taken the store (and the peer's knowledge of it) further since.
	if theirs.KnownEpoch == mine.Epoch && theirs.KnownSeq > mine.LastSeq {
		if epoch, now, err := s.cfg.Source.Position(); err == nil && theirs.KnownSeq > now && epoch == mine.Epoch {
			out.Rollback = true
			s.err = fmt.Errorf("%w (peer knows sequence %d, this store has %d)", ErrRolledBack, theirs.KnownSeq, now)
			s.phase = phaseOver
			return out, s.err
		}
	}
	s.res.PeerScope = ScopeOf(theirs)
	// The two sides compare, and reconcile, the collections both hold.
	tags := common(mine, theirs)
	myView, theirView := restrict(mine, tags), restrict(theirs, tags)
	s.res.PeerRecords = theirView.RootCount // of the collections this side takes
	var sendFrom, recvFrom uint64
	s.send, sendFrom = direction(myView, theirView)
	s.recv, recvFrom = direction(theirView, myView)
	s.from, s.recvFrom = sendFrom, recvFrom
	s.send = ordered(s.send, sendFrom, mine, theirs)
	s.recv = ordered(s.recv, recvFrom, theirs, mine)
	if s.recv == modeOrdered {
		s.ord = newOrderCheck(theirs, mine)
	}
	if s.send == modeOrdered && resumes(mine, theirs) {
		s.res.MyLastSeq = theirs.ResumeSnap
	}
	self, peer := helloHorizon(mine), helloHorizon(theirs)
	// A blind replica, which never collects, takes on a device's horizon first, so that it
	// can tell a device back from a long absence to resync.
	if s.cfg.Blind && peer.Horizon.After(self.Horizon) {
		out.AdoptHorizon = believable(s.cfg.Now, s.cfg.TombstoneTTL, peer.Horizon)
	}
	// A side back from beyond the other's tombstone horizon resyncs fully: that needs the
	// Merkle result, whatever the fast path could do.
	s.res.Resync = PlanResync(s.cfg.Now, s.cfg.TombstoneTTL, self, peer, s.cfg.Initiator)
	if s.send == modeMerkle || s.recv == modeMerkle || s.res.Resync.Merkle && (s.send != modeNone || s.recv != modeNone) {
		s.res.Mode = "merkle"
		s.phase = phaseMerkle
		src := s.cfg.Summary
		if s.cfg.Scoped != nil {
			src = s.cfg.Scoped(held(mine, tags)) // a tag only the peer names adds nothing but reads
		}
		if !s.cfg.Initiator {
			s.ms = merkle.NewResponder(src, merkle.Config{})
			return out, nil
		}
		s.ms = merkle.NewInitiator(src, merkle.Config{})
		msg, err := s.ms.Start()
		if err != nil {
			return s.fail(fmt.Errorf("reconcile: %w", err))
		}
		return s.merkleOut(out, msg)
	}
	s.res.Mode = s.recv.String() + "/" + s.send.String()
	return s.transfer(out), nil
}

// direction decides how the sender's envelopes reach the receiver, and from which
// sequence on the fast path.
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

func (s *Session) stepMerkle(f Frame) (Output, error) {
	if err := expect(f, wire.TypeMerkle); err != nil {
		return s.fail(fmt.Errorf("reconcile: %w", err))
	}
	s.res.MerkleMessages++
	msg, err := s.ms.Handle(f.Body)
	if err != nil {
		return s.fail(fmt.Errorf("%w: reconcile: %v", ErrProtocol, err))
	}
	if msg == nil {
		if !s.ms.Done() {
			return s.fail(fmt.Errorf("%w: reconciliation stalled", ErrProtocol))
		}
		return s.reconciled(Output{}), nil
	}
	return s.merkleOut(Output{}, msg)
}

// merkleOut sends a reconciliation message, and moves on when it was the last.
func (s *Session) merkleOut(out Output, msg []byte) (Output, error) {
	out.Send = append(out.Send, Frame{Type: wire.TypeMerkle, Body: msg})
	s.res.MerkleMessages++
	if s.ms.Done() {
		return s.reconciled(out), nil
	}
	return out, nil
}

// reconciled takes the reconciliation's result: it covers both directions, every
// difference travels, none by sequence.
func (s *Session) reconciled(out Output) Output {
	s.need, s.have = s.ms.Result()
	if s.res.Resync.Self {
		s.res.Mode = "full-resync"
		s.res.Since = msTime(s.cfg.Hello.LastContact)
		s.keep = resyncFilter(s.need, s.res.Since)
	}
	s.send, s.recv = modeMerkle, modeMerkle
	return s.transfer(out)
}

func (s *Session) transfer(out Output) Output {
	s.phase = phaseTransfer
	s.sender = &Sender{src: s.cfg.Source, mode: s.send, from: s.from, upto: s.cfg.Hello.LastSeq,
		skip: s.skipFor(), have: s.have, keep: s.keep}
	if s.send == modeOrdered {
		s.sender.after, s.sender.first = resumeFrom(&s.cfg.Hello, s.theirs)
		s.sender.maxEnvs = batchMaxEnvs
		if n := s.cfg.BatchEnvelopes; n > 0 && n < batchMaxEnvs {
			s.sender.maxEnvs = n
		}
	}
	out.Transfer = true
	return out
}

// skipFor is what the fast path leaves out: the runs of the peer's own envelopes (Echo)
// and the collections it does not hold.
func (s *Session) skipFor() Filter {
	return Skip(s.cfg.Echo, s.cfg.TagOf, s.res.PeerScope)
}

// Skip combines an echo filter and a peer's scope into the Filter Collect takes: either
// may be nil (tagOf nil or a peer that holds everything: no scope filter).
func Skip(echo Echo, tagOf func([]byte) [8]byte, peer Scope) Filter {
	f := Filter{Echo: echo}
	if tagOf != nil && !peer.All {
		f.Skip = func(_ uint64, raw []byte) bool { return !peer.Wants(tagOf(raw)) }
	}
	return f
}

// Sent reports that the Sender ended after sending n envelopes: it returns the Done
// frame.
func (s *Session) Sent(n int) (Output, error) {
	if s.err != nil {
		return Output{}, s.err
	}
	if s.phase != phaseSending {
		return s.fail(fmt.Errorf("sent while %s", s.Waiting()))
	}
	s.res.Sent = n
	r := &s.res
	done := wire.Done{Applied: uint64(r.Applied), Rejected: uint64(r.Rejected), Conflicts: uint64(len(r.Conflicts))}
	done.Stale = uint64(r.Received - r.Applied - r.Rejected)
	s.phase = phaseDone
	return Output{Send: []Frame{{Type: wire.TypeDone, Body: done.Marshal()}}}, nil
}

func (s *Session) stepDone(f Frame) (Output, error) {
	if err := expect(f, wire.TypeDone); err != nil {
		return s.fail(fmt.Errorf("read done: %w", err))
	}
	pd, err := wire.UnmarshalDone(f.Body)
	if err != nil {
		return s.fail(fmt.Errorf("%w: %v", ErrProtocol, err))
	}
	s.res.PeerApplied = int(pd.Applied)
	if s.res.Resync.Self && s.res.Mode == "full-resync" {
		s.res.Lacks = peerLacks(s.have, s.need)
	}
	s.phase = phaseOver
	return Output{Done: true}, nil
}
