package merkle

import (
	"errors"
	"testing"
)

// mutateNth runs an honest session and replaces message i with f(decoded message).
func mutateNth(t *testing.T, seed int64, n, d, which int, f func(m *message) []byte) error {
	t.Helper()
	a, b := randomPair(seed, n, d)
	ia, rb := NewInitiator(a, Config{}), NewResponder(b, Config{})
	_, err := relay(ia, rb, func(i int, msg []byte) []byte {
		if i != which {
			return msg
		}
		m, err := decodeMessage(msg)
		if err != nil {
			t.Fatal(err)
		}
		return f(m)
	})
	return err
}

func firstOf(m *message, kind byte) int {
	for i, e := range m.entries {
		if e.kind == kind {
			return i
		}
	}
	return -1
}

func TestHostilePeer(t *testing.T) {
	for _, c := range []struct {
		name  string
		which int // message to tamper with (even = to the responder)
		want  error
		f     func(m *message) []byte
	}{
		{"oversize message", 1, ErrTooLarge, func(m *message) []byte { return make([]byte, 64<<10+1) }},
		{"garbage", 1, ErrMalformed, func(m *message) []byte { return []byte{1, 0, 0, 0x23, 77, 1, 2} }},
		{"unknown version", 0, ErrVersion, func(m *message) []byte { return []byte{9, 0, 0, 0x23} }},
		{"wrong pass", 1, ErrProtocol, func(m *message) []byte { m.pass = 1; return appendMessage(nil, m) }},
		{"restart past the last pass", 1, ErrProtocol, func(m *message) []byte {
			m.pass, m.flags = 2, flagRestart
			return appendMessage(nil, m)
		}},
		{"first message without a root", 0, ErrProtocol, func(m *message) []byte {
			m.entries = m.entries[1:]
			return appendMessage(nil, m)
		}},
		{"root twice", 1, ErrProtocol, func(m *message) []byte {
			m.entries = append(m.entries, m.entries[0])
			return appendMessage(nil, m)
		}},
		{"repeated prefix", 1, ErrProtocol, func(m *message) []byte {
			m.entries = append(m.entries, m.entries[1])
			return appendMessage(nil, m)
		}},
		{"prefix not offered", 1, ErrProtocol, func(m *message) []byte {
			e := m.entries[1]
			e.prefix = PrefixOf(ID{0xee, 0xee, 0xee}, 7)
			m.entries = append(m.entries, e)
			return appendMessage(nil, m)
		}},
		{"prefix deeper than an id", 1, ErrMalformed, func(m *message) []byte {
			b := appendMessage(nil, m)
			return append(b, kindList, 66)
		}},
		{"questions left unanswered", 2, ErrProtocol, func(m *message) []byte {
			m.entries = nil // no reply to the responder's lists
			return appendMessage(nil, m)
		}},
		{"reply bitmap of the wrong length", 2, ErrProtocol, func(m *message) []byte {
			i := firstOf(m, kindReply)
			m.entries[i].want = append(m.entries[i].want, true)
			return appendMessage(nil, m)
		}},
		{"reply id outside its prefix", 2, ErrProtocol, func(m *message) []byte {
			i := firstOf(m, kindReply)
			m.entries[i].ids = append(m.entries[i].ids, ID{0xff, 0xff, 0xff, 0xff})
			return appendMessage(nil, m)
		}},
		{"ids nobody asked for", 3, ErrProtocol, func(m *message) []byte {
			m.entries = append(m.entries, entry{kind: kindIDs, prefix: PrefixOf(ID{1}, 5), ids: []ID{{1}}})
			return appendMessage(nil, m)
		}},
		{"final with questions open", 2, ErrProtocol, func(m *message) []byte {
			return appendMessage(nil, &message{flags: flagFinal, k: m.k, h: m.h})
		}},
		{"final that does not add up", 1, ErrMismatch, func(m *message) []byte {
			return appendMessage(nil, &message{flags: flagFinal, k: m.k, h: m.h, entries: m.entries[:1]})
		}},
	} {
		// n=300, d=30: message 1 is the responder's root and lists, message 2 the
		// initiator's replies, message 3 the ids.
		err := mutateNth(t, 7, 300, 30, c.which, c.f)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestMessagesOutOfOrder(t *testing.T) {
	a, b := randomPair(1, 100, 3)
	i := NewInitiator(a, Config{})
	if _, err := i.Handle([]byte{1, 0, 0, 0x23}); !errors.Is(err, ErrProtocol) {
		t.Errorf("Handle before Start: %v", err)
	}
	if _, err := i.Handle(nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("an error does not stick: %v", err)
	}
	r := NewResponder(b, Config{})
	if _, err := r.Start(); !errors.Is(err, ErrProtocol) {
		t.Errorf("Start on a responder: %v", err)
	}
	i = NewInitiator(a, Config{})
	first, _ := i.Start()
	if _, err := i.Start(); !errors.Is(err, ErrProtocol) {
		t.Errorf("Start twice: %v", err)
	}
	// After an honest end, any further message is refused.
	i, r = NewInitiator(a, Config{}), NewResponder(b, Config{})
	if _, err := Exchange(i, r); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Handle(first); !errors.Is(err, ErrProtocol) {
		t.Errorf("a finished responder took another message: %v", err)
	}
}

// liar reports its real root but claims every subtree below it is empty.
type liar struct{ *Mem }

func (l liar) Node(p Prefix) (Node, error) {
	if p.Level() == 0 {
		return l.Mem.Node(p)
	}
	return Node{}, nil
}

func (l liar) Items(Prefix, int) ([]Item, error) { return nil, nil }

func TestInconsistentFingerprints(t *testing.T) {
	a, b := randomPair(2, 2000, 10)
	ia, rb := NewInitiator(a, Config{}), NewResponder(liar{b}, Config{})
	st, err := relay(ia, rb, func(_ int, m []byte) []byte { return m })
	if !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrProtocol) {
		t.Fatalf("lying summary: %v after %+v", err, st)
	}
	if ia.Done() && rb.Done() {
		t.Fatal("both sides claim success")
	}
}

// splitter is a hostile peer that answers everything by claiming that every subtree
// differs and splitting it further.
func splitter(t *testing.T, msg []byte, first bool) []byte {
	m, err := decodeMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	out := &message{pass: m.pass, k: m.k, h: m.h}
	if first {
		out.entries = append(out.entries, entry{kind: kindRoot, count: 1 << 40, fp: Fingerprint{1}})
	}
	split := func(q Prefix) {
		if q.Level() >= MaxLevel {
			return
		}
		j := min(2, MaxLevel-q.Level())
		fps := make([]uint64, 1<<(4*j))
		for i := range fps {
			fps[i] = uint64(i + 1)
		}
		out.entries = append(out.entries, entry{kind: kindFPS, prefix: q, jump: j, fps: fps})
	}
	for _, e := range m.entries {
		if len(appendMessage(nil, out)) > 60<<10 {
			out.flags |= flagMore
			break
		}
		switch e.kind {
		case kindFPS:
			split(descendant(e.prefix, e.jump, 0))
		case kindList:
			split(e.prefix)
		}
	}
	return appendMessage(nil, out)
}

func TestEndlessDescent(t *testing.T) {
	a, _ := randomPair(4, 500, 0)
	for _, cfg := range []Config{{}, {MaxRounds: 12}, {MaxWork: 5000}} {
		s := NewInitiator(a, cfg)
		msg, err := s.Start()
		rounds := 0
		for err == nil && msg != nil && rounds < 5000 {
			msg, err = s.Handle(splitter(t, msg, rounds == 0))
			rounds++
		}
		if err == nil {
			t.Fatalf("%+v: no error after %d rounds", cfg, rounds)
		}
		checkSentinel(t, err)
		if rounds > 1100 {
			t.Errorf("%+v: %d rounds before the end", cfg, rounds)
		}
		t.Logf("%+v: %v after %d rounds", cfg, err, rounds)
	}
}

func TestTooManyRounds(t *testing.T) {
	a, b := randomPair(5, 4000, 3000)
	cfg := Config{MaxMessageBytes: MinMessageBytes}
	_, err := Exchange(NewInitiator(a, Config{MaxRounds: 3, MaxMessageBytes: MinMessageBytes}), NewResponder(b, cfg))
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("%v, want ErrBudget", err)
	}
}
