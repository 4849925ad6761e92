package merkle

import (
	"bytes"
	"fmt"
	"slices"
)

// Source is what a reconciliation session reads: the summary tree and the items of one
// set. Mem implements it in memory; the store implements it over its persistent index.
type Source interface {
	// Node returns the summary of the subtree p; the zero Node if it is empty. A Session
	// calls it only for prefixes of level < Depth.
	Node(p Prefix) (Node, error)
	// Items returns the items under p in id order, at most limit of them.
	Items(p Prefix, limit int) ([]Item, error)
}

const (
	// scanMax bounds the items a session reads to summarise one subtree below the stored
	// levels; a denser subtree ends the session with ErrTooLarge.
	scanMax = 1 << 16
	// replyMax bounds the full ids one entry carries. A listed subtree where this side
	// holds more is split instead of answered.
	replyMax = 96
)

// Session is one side of a reconciliation: a state machine that consumes the peer's
// messages and produces its own, in the manner of a raft node. It does no I/O and starts
// no goroutine; the caller carries the bytes. It is not safe for concurrent use.
type Session struct {
	src       Source
	cfgIn     Config
	cfg       Config
	initiator bool
	started   bool
	done      bool
	err       error

	pass        int
	k, h        int // widths this side sends in the current pass
	mine, peer  Node
	peerKnown   bool
	expectFirst bool // the next message opens a pass (we answer its root)
	restart     bool // the next message we send opens a new pass

	offered  map[Prefix]bool   // prefixes the peer may answer (from our fps)
	listed   map[Prefix][]Item // our lists awaiting a reply (or a split)
	awaiting map[Prefix]int    // our replies awaiting ids: how many
	out      []entry           // queued entries, sent as the message cap allows
	in       []deferred        // the peer's fps and lists, answered as the message cap allows
	inBytes  int               // encoded size of in
	peerMore bool

	need, have       []ID
	needSum, haveSum uint64
	rounds           int
	work             int64
}

// NewInitiator returns the side that opens the session with Start.
func NewInitiator(src Source, cfg Config) *Session {
	return &Session{src: src, cfgIn: cfg, initiator: true}
}

// NewResponder returns the side that answers; its first call is Handle.
func NewResponder(src Source, cfg Config) *Session {
	return &Session{src: src, cfgIn: cfg}
}

// Done reports whether the session has ended successfully: both sides know the result.
func (s *Session) Done() bool { return s.done }

// Err returns the error that ended the session, if any.
func (s *Session) Err() error { return s.err }

// Result returns the outcome, sorted by id. need holds the ids the peer has that this
// side lacks or holds with another digest; have the ids this side holds that the peer
// lacks or holds with another digest. An id held by both with different digests is in
// both lists. The result is complete only once Done reports true.
func (s *Session) Result() (need, have []ID) {
	return sortedUnique(s.need), sortedUnique(s.have)
}

func sortedUnique(ids []ID) []ID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(out)
}

// Start returns the initiator's first message.
func (s *Session) Start() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	if !s.initiator || s.started {
		return nil, s.fail(fmt.Errorf("start: %w: only an initiator starts, once", ErrProtocol))
	}
	s.started = true
	if err := s.init(); err != nil {
		return nil, s.fail(err)
	}
	if err := s.beginPass(0); err != nil {
		return nil, s.fail(err)
	}
	if err := s.queueOpening(); err != nil {
		return nil, s.fail(err)
	}
	s.rounds++
	return s.emit()
}

func (s *Session) init() error {
	root, err := s.src.Node(Root())
	if err != nil {
		return fmt.Errorf("read root: %w", err)
	}
	s.cfg = s.cfgIn.withDefaults(root.Count)
	return nil
}

func (s *Session) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	return s.err
}

func (s *Session) beginPass(pass int) error {
	s.pass = pass
	s.k, s.h = s.cfg.widths(pass)
	root, err := s.src.Node(Root())
	if err != nil {
		return fmt.Errorf("read root: %w", err)
	}
	s.mine, s.peer, s.peerKnown = root, Node{}, false
	s.offered = map[Prefix]bool{}
	s.listed = map[Prefix][]Item{}
	s.awaiting = map[Prefix]int{}
	s.out, s.in, s.inBytes, s.peerMore = nil, nil, 0, false
	s.need, s.have, s.needSum, s.haveSum = nil, nil, 0, 0
	return nil
}

// queueOpening queues the first message of a pass: our root and the level-1 fingerprints.
func (s *Session) queueOpening() error {
	s.out = append(s.out, entry{kind: kindRoot, count: s.mine.Count, fp: s.mine.FP})
	return s.queueFPS(Root(), 1)
}

// Handle consumes one message from the peer and returns the reply to send, or nil when
// this side has nothing more to send (then Done reports true). Any error ends the session.
func (s *Session) Handle(msg []byte) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	reply, err := s.handle(msg)
	if err != nil {
		return nil, s.fail(fmt.Errorf("handle message %d: %w", s.rounds, err))
	}
	return reply, nil
}

func (s *Session) handle(msg []byte) ([]byte, error) {
	if s.done {
		return nil, fmt.Errorf("%w: message after the end", ErrProtocol)
	}
	if !s.started {
		if s.initiator {
			return nil, fmt.Errorf("%w: message before Start", ErrProtocol)
		}
		s.started = true
		if err := s.init(); err != nil {
			return nil, err
		}
		if err := s.beginPass(0); err != nil {
			return nil, err
		}
		s.expectFirst = true
	}
	s.rounds++
	if s.rounds > s.cfg.MaxRounds {
		return nil, fmt.Errorf("%w: more than %d messages", ErrBudget, s.cfg.MaxRounds)
	}
	if len(msg) > s.cfg.MaxMessageBytes {
		return nil, fmt.Errorf("%d bytes, cap %d: %w", len(msg), s.cfg.MaxMessageBytes, ErrTooLarge)
	}
	m, err := decodeMessage(msg)
	if err != nil {
		return nil, err
	}
	if m.flags&flagRestart != 0 {
		if m.pass != s.pass+1 || m.pass >= s.cfg.MaxPasses {
			return nil, fmt.Errorf("%w: restart to pass %d from pass %d", ErrProtocol, m.pass, s.pass)
		}
		if err := s.beginPass(m.pass); err != nil {
			return nil, err
		}
		s.expectFirst = true
	} else if m.pass != s.pass {
		return nil, fmt.Errorf("%w: pass %d, expected %d", ErrProtocol, m.pass, s.pass)
	}
	final := m.flags&flagFinal != 0
	if final && m.flags&(flagMore|flagRestart) != 0 {
		return nil, fmt.Errorf("%w: final message with more or restart", ErrProtocol)
	}
	entries := m.entries
	if !s.peerKnown {
		switch {
		case len(entries) > 0 && entries[0].kind == kindRoot:
			s.peer = Node{Count: entries[0].count, FP: entries[0].fp}
			entries = entries[1:]
		case !s.expectFirst && final && len(entries) == 0:
			s.peer = s.mine // the responder ends at once: its root equals ours
		default:
			return nil, fmt.Errorf("%w: first message of a pass without a root", ErrProtocol)
		}
		s.peerKnown = true
	}
	if s.expectFirst {
		s.expectFirst = false
		if final {
			return nil, fmt.Errorf("%w: opening message marked final", ErrProtocol)
		}
		if s.peer == s.mine {
			entries = nil // equal roots: nothing to find; the reply ends the session
		} else {
			s.out = append(s.out, entry{kind: kindRoot, count: s.mine.Count, fp: s.mine.FP})
			s.offered[Root()] = true
		}
	}
	for i := range entries {
		if err := s.accept(&entries[i], m); err != nil {
			return nil, err
		}
	}
	if s.inBytes > backlogMessages*s.cfg.MaxMessageBytes {
		return nil, fmt.Errorf("%w: peer asked more than %d messages can answer", ErrBudget, backlogMessages)
	}
	if m.hasIDSum {
		s.needSum += m.idSum
	}
	if final {
		if len(s.out) > 0 || len(s.in) > 0 || len(s.listed) > 0 || len(s.awaiting) > 0 {
			return nil, fmt.Errorf("%w: peer ended with questions open", ErrProtocol)
		}
		if !s.check() {
			return nil, fmt.Errorf("%w: differences found do not account for the roots", ErrMismatch)
		}
		s.done = true
		return nil, nil
	}
	s.peerMore = m.flags&flagMore != 0
	if !s.peerMore {
		if len(s.listed) > 0 || len(s.awaiting) > 0 {
			return nil, fmt.Errorf("%w: %d lists and %d replies left unanswered", ErrProtocol, len(s.listed), len(s.awaiting))
		}
		clear(s.offered) // fingerprints the peer did not answer matched
	}
	return s.emit()
}

// check reports whether the differences found account exactly for the difference of the
// two roots, in count and in lane 0 of the fingerprint (which no truncated fingerprint or
// tag uses).
func (s *Session) check() bool {
	dc := int64(s.mine.Count) - int64(s.peer.Count)
	df := s.mine.FP.lane(0) - s.peer.FP.lane(0)
	return int64(len(s.have))-int64(len(s.need)) == dc && s.haveSum-s.needSum == df
}

// deferred is a peer's fps or list entry accepted but not yet answered.
type deferred struct {
	e    entry
	k, h int
}

// backlogMessages bounds the peer's unanswered questions, in messages' worth of bytes.
const backlogMessages = 16

// accept checks an entry against what the peer may say now and consumes the question it
// answers. Fingerprints and lists are queued for answering as the message cap allows;
// everything else is cheap and is handled at once.
func (s *Session) accept(e *entry, m *message) error {
	q := e.prefix
	switch e.kind {
	case kindRoot:
		return fmt.Errorf("%w: root out of place", ErrProtocol)
	case kindFPS:
		_, wasListed := s.listed[q]
		if !s.offered[q] && !wasListed {
			return fmt.Errorf("%w: fingerprints under %v, not offered", ErrProtocol, q)
		}
		delete(s.offered, q)
		delete(s.listed, q)
		s.in = append(s.in, deferred{*e, m.k, m.h})
		s.inBytes += e.size(m.k, m.h)
	case kindList:
		if !s.offered[q] {
			return fmt.Errorf("%w: list under %v, not offered", ErrProtocol, q)
		}
		delete(s.offered, q)
		s.in = append(s.in, deferred{*e, m.k, m.h})
		s.inBytes += e.size(m.k, m.h)
	case kindReply:
		items, ok := s.listed[q]
		if !ok {
			return fmt.Errorf("%w: reply under %v, not listed", ErrProtocol, q)
		}
		delete(s.listed, q)
		if len(e.want) != len(items) {
			return fmt.Errorf("%w: reply under %v has %d bits for %d items", ErrProtocol, q, len(e.want), len(items))
		}
		ids := entry{kind: kindIDs, prefix: q}
		for i, w := range e.want {
			if w {
				ids.add(items[i])
			}
		}
		if len(ids.ids) > 0 {
			s.out = append(s.out, ids)
		}
		return s.receive(q, e.ids)
	case kindIDs:
		n, ok := s.awaiting[q]
		if !ok || n != len(e.ids) {
			return fmt.Errorf("%w: %d ids under %v, not asked for", ErrProtocol, len(e.ids), q)
		}
		delete(s.awaiting, q)
		return s.receive(q, e.ids)
	case kindPush:
		if !s.offered[q] {
			return fmt.Errorf("%w: push under %v, not offered", ErrProtocol, q)
		}
		delete(s.offered, q)
		n, err := s.nodeOf(q)
		if err != nil {
			return err
		}
		if n.Count != 0 || len(e.ids) == 0 {
			return fmt.Errorf("%w: push under %v where we hold %d items", ErrProtocol, q, n.Count)
		}
		return s.receive(q, e.ids)
	}
	return nil
}

// answer does the work for a deferred fps or list entry: compare, then queue our move for
// every differing subtree.
func (s *Session) answer(d *deferred) error {
	e, q := &d.e, d.e.prefix
	s.inBytes -= e.size(d.k, d.h)
	if e.kind == kindList {
		n, err := s.nodeOf(q)
		if err != nil {
			return err
		}
		if n.Count > replyMax && q.Level() < MaxLevel {
			return s.queueFPS(q, s.jumpFor(n.Count, q))
		}
		return s.queueReply(q, e.tags, d.h)
	}
	nodes, err := s.summaries(q, e.jump)
	if err != nil {
		return err
	}
	for i, fp := range e.fps {
		if wireFP(&nodes[i], s.pass, d.k) == fp {
			continue
		}
		if err := s.respond(descendant(q, e.jump, i), &nodes[i], fp == 0); err != nil {
			return err
		}
	}
	return nil
}

func (s *Session) receive(q Prefix, ids []ID) error {
	for _, id := range ids {
		if !q.Contains(id) {
			return fmt.Errorf("%w: id %v outside %v", ErrProtocol, id, q)
		}
	}
	s.need = append(s.need, ids...)
	return nil
}

func (e *entry) add(it Item) {
	h := hashItem(it)
	e.ids = append(e.ids, it.ID)
	e.items = append(e.items, it)
	e.sum += h.lane(0)
}

// respond queues this side's move for a descendant whose fingerprints differ.
func (s *Session) respond(c Prefix, n *Node, peerEmpty bool) error {
	switch {
	case peerEmpty && n.Count > 0 && n.Count <= replyMax:
		items, err := s.items(c, replyMax)
		if err != nil {
			return err
		}
		e := entry{kind: kindPush, prefix: c}
		for _, it := range items {
			e.add(it)
		}
		s.out = append(s.out, e)
		return nil
	case n.Count <= uint64(s.cfg.ListThreshold) || c.Level() >= MaxLevel:
		items, err := s.items(c, maxList)
		if err != nil {
			return err
		}
		e := entry{kind: kindList, prefix: c, items: items, tags: make([]uint64, len(items))}
		for i := range items {
			h := hashItem(items[i])
			e.tags[i] = tagOf(&h, s.pass, s.h)
		}
		s.out = append(s.out, e)
		return nil
	default:
		return s.queueFPS(c, s.jumpFor(n.Count, c))
	}
}

func (s *Session) jumpFor(count uint64, q Prefix) int {
	j := 1
	if count > uint64(s.cfg.WideSplitAbove) {
		j = 2
	}
	return min(j, MaxLevel-q.Level())
}

func (s *Session) queueFPS(q Prefix, j int) error {
	nodes, err := s.summaries(q, j)
	if err != nil {
		return err
	}
	e := entry{kind: kindFPS, prefix: q, jump: j, fps: make([]uint64, len(nodes))}
	for i := range nodes {
		e.fps[i] = wireFP(&nodes[i], s.pass, s.k)
	}
	s.out = append(s.out, e)
	return nil
}

// queueReply matches the peer's tags (width h) against our items under q.
func (s *Session) queueReply(q Prefix, tags []uint64, width int) error {
	items, err := s.items(q, replyMax)
	if err != nil {
		return err
	}
	byTag := make(map[uint64][]int, len(tags))
	for i, t := range tags {
		byTag[t] = append(byTag[t], i)
	}
	e := entry{kind: kindReply, prefix: q, want: make([]bool, len(tags))}
	for _, it := range items {
		h := hashItem(it)
		t := tagOf(&h, s.pass, width)
		if l := byTag[t]; len(l) > 0 {
			byTag[t] = l[1:]
			continue
		}
		e.add(it)
	}
	for _, l := range byTag {
		for _, i := range l {
			e.want[i] = true
		}
	}
	s.out = append(s.out, e)
	return nil
}

func (s *Session) spend(n int) error {
	s.work += int64(n)
	if s.work > s.cfg.MaxWork {
		return fmt.Errorf("%w: work above %d", ErrBudget, s.cfg.MaxWork)
	}
	return nil
}

func (s *Session) items(q Prefix, limit int) ([]Item, error) {
	items, err := s.src.Items(q, limit)
	if err != nil {
		return nil, fmt.Errorf("read items under %v: %w", q, err)
	}
	if len(items) > limit {
		items = items[:limit]
	}
	return items, s.spend(len(items) + 1)
}

func (s *Session) nodeOf(q Prefix) (Node, error) {
	if q.Level() < Depth {
		if err := s.spend(1); err != nil {
			return Node{}, err
		}
		n, err := s.src.Node(q)
		if err != nil {
			return Node{}, fmt.Errorf("read node %v: %w", q, err)
		}
		return n, nil
	}
	nodes, err := s.summaries(q, 0)
	if err != nil {
		return Node{}, err
	}
	return nodes[0], nil
}

// summaries returns the nodes of the 16^j descendants of q that lie j levels below it, in
// digit order. Stored levels come from Source.Node; deeper ones from Source.Items.
func (s *Session) summaries(q Prefix, j int) ([]Node, error) {
	nodes := make([]Node, 1<<(4*j))
	if q.Level()+j < Depth {
		if err := s.spend(len(nodes)); err != nil {
			return nil, err
		}
		for i := range nodes {
			n, err := s.src.Node(descendant(q, j, i))
			if err != nil {
				return nil, fmt.Errorf("read node under %v: %w", q, err)
			}
			nodes[i] = n
		}
		return nodes, nil
	}
	items, err := s.src.Items(q, scanMax+1)
	if err != nil {
		return nil, fmt.Errorf("read items under %v: %w", q, err)
	}
	if len(items) > scanMax {
		return nil, fmt.Errorf("subtree %v holds more than %d items: %w", q, scanMax, ErrTooLarge)
	}
	if err := s.spend(len(items) + len(nodes)); err != nil {
		return nil, err
	}
	for _, it := range items {
		i := 0
		for d := range j {
			i = i<<4 | digitOf(it.ID[:], q.Level()+d)
		}
		h := hashItem(it)
		nodes[i].addHash(&h, 1)
	}
	return nodes, nil
}

func descendant(q Prefix, j, i int) Prefix {
	for d := j - 1; d >= 0; d-- {
		q = q.Child(i >> (4 * d) & 0xf)
	}
	return q
}

// emit builds the next message from the queue, registers what it asks, and decides
// whether it ends the session or, if the final check fails, opens a new pass.
func (s *Session) emit() ([]byte, error) {
	m := &message{pass: s.pass, k: s.k, h: s.h}
	if s.restart {
		m.flags |= flagRestart
		s.restart = false
	}
	budget := s.cfg.MaxMessageBytes - headerLen - 8
	size, n, asks := 0, 0, false
	for {
		if n < len(s.out) {
			es := s.out[n].size(s.k, s.h)
			if size+es > budget {
				break
			}
			size += es
			n++
			continue
		}
		if len(s.in) == 0 {
			break
		}
		d := &s.in[0]
		s.in = s.in[1:]
		if err := s.answer(d); err != nil {
			return nil, err
		}
	}
	if n == 0 && len(s.out) > 0 {
		return nil, fmt.Errorf("entry of %d bytes above the message cap: %w", s.out[0].size(s.k, s.h), ErrTooLarge)
	}
	m.entries, s.out = s.out[:n], s.out[n:]
	for i := range m.entries {
		e := &m.entries[i]
		switch e.kind {
		case kindFPS:
			asks = true
			for d := range e.fps {
				s.offered[descendant(e.prefix, e.jump, d)] = true
			}
		case kindList:
			s.listed[e.prefix] = e.items
		case kindReply, kindIDs, kindPush:
			if e.kind == kindReply {
				if w := countTrue(e.want); w > 0 {
					s.awaiting[e.prefix] = w
				}
			}
			if len(e.ids) > 0 {
				s.have = append(s.have, e.ids...)
				s.haveSum += e.sum
				m.idSum += e.sum
				m.flags |= flagIDSum
			}
		}
	}
	if len(s.out) > 0 || len(s.in) > 0 {
		m.flags |= flagMore
	}
	if len(s.out) == 0 && len(s.in) == 0 && !asks && len(s.listed) == 0 && len(s.awaiting) == 0 && !s.peerMore && !m.hasRestart() {
		if s.check() {
			m.flags |= flagFinal
			s.done = true
		} else {
			// A truncated fingerprint or tag collided: start over with wider ones.
			if s.pass+1 >= s.cfg.MaxPasses {
				return nil, fmt.Errorf("%w: differences found do not account for the roots after %d passes", ErrMismatch, s.pass+1)
			}
			if err := s.beginPass(s.pass + 1); err != nil {
				return nil, err
			}
			if err := s.queueOpening(); err != nil {
				return nil, err
			}
			s.restart = true
			return s.emit()
		}
	}
	return appendMessage(nil, m), nil
}

func (m *message) hasRestart() bool { return m.flags&flagRestart != 0 }

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
