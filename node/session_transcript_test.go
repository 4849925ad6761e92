package node

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/node/session"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// TestSessionTranscripts runs the sync session's state machines (node/session) against
// each other over in-memory stores, as written in testdata/session/*.txt. Commands:
//
//	store NAME [contact=-Nd] [horizon=-Nd] [blind] [version=N]
//	                                                a store with its own epoch, whose
//	                                                sessions speak sync version N
//	put NAME KEY… [at=-Nd]                          local writes (each a new version)
//	known NAME PEER SEQ                             NAME holds PEER's store up to SEQ
//	echo NAME PEER FROM TO                          NAME's (FROM, TO] came from PEER
//	sync A B [lie=B.FIELD=V,…] [hostile=B] [cap=N] [applybatch=N] [batch=N]
//	                                                (FIELD: last, root, known, epoch,
//	                                                version, proof, resume, horizon=±Nd)
//	                                                a session, A initiating; a hostile
//	                                                side sends the frames listed as input
//	                                                instead of its own envelopes; cap
//	                                                bounds A's received bytes, batch the
//	                                                envelopes of an id-ordered Batch
//	show NAME                                       the store, in sequence order
//
// Keys are named by their record; a key starting with "bad" is refused by the receiving
// store as tampered, one with "later" as sealed under a key epoch not held yet. The test
// store keeps one envelope per record (the last to arrive). A hostile side applies
// nothing.
func TestSessionTranscripts(t *testing.T) {
	runTranscripts(t, "testdata/session/*.txt", func(t *testing.T) func(*transcriptCmd) string {
		e := &sessionEnv{t: t, stores: map[string]*memStore{}, keys: map[merkle.ID]string{}}
		return e.run
	})
}

// transcriptNow is the clock of every transcript.
var transcriptNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type sessionEnv struct {
	t      *testing.T
	stores map[string]*memStore
	order  []string
	keys   map[merkle.ID]string // record names, for printing
}

// memStore is an in-memory store as a session sees it: envelopes by sequence, one per id.
type memStore struct {
	name     string
	epoch    [16]byte
	seq      uint64
	bySeq    map[uint64][]byte
	ids      map[merkle.ID]uint64
	sum      *merkle.Mem
	counter  uint64
	known    map[string]session.Progress
	echo     map[string][][2]uint64
	contact  time.Time
	horizon  time.Time
	blind    bool
	peerIDs  map[string]peer.ID
	selfPeer peer.ID
	version  byte
}

var _ session.Source = (*memStore)(nil)

func (m *memStore) Position() ([16]byte, uint64, error) { return m.epoch, m.seq, nil }

func (m *memStore) SinceUpTo(after, upto uint64, limit int, fn func(uint64, []byte) error) (uint64, error) {
	last, n := after, 0
	for s := after + 1; s <= min(upto, m.seq); s++ {
		raw, ok := m.bySeq[s]
		if !ok {
			continue
		}
		if limit > 0 && n >= limit {
			break
		}
		if err := fn(s, raw); err != nil {
			return last, err
		}
		last = s
		n++
	}
	return last, nil
}

func (m *memStore) Ordered(after merkle.ID, first bool, upto uint64, limit int, fn func(merkle.ID, []uint64, [][]byte) error) (merkle.ID, bool, error) {
	ids := slices.SortedFunc(maps.Keys(m.ids), func(a, b merkle.ID) int { return bytes.Compare(a[:], b[:]) })
	last, any, n := after, false, 0
	for _, id := range ids {
		if !first && bytes.Compare(id[:], after[:]) <= 0 {
			continue
		}
		if limit > 0 && n >= limit {
			break
		}
		n++
		if seq := m.ids[id]; seq <= upto {
			if err := fn(id, []uint64{seq}, [][]byte{m.bySeq[seq]}); err != nil {
				return last, any, err
			}
		}
		last, any = id, true
	}
	return last, any, nil
}

func (m *memStore) Envelopes(ids []merkle.ID, fn func([]byte) error) error {
	for _, id := range ids {
		if s, ok := m.ids[id]; ok {
			if err := fn(m.bySeq[s]); err != nil {
				return err
			}
		}
	}
	return nil
}

// add stores raw as the envelope of its id, under the next sequence number.
func (m *memStore) add(id merkle.ID, raw []byte) uint64 {
	if old, ok := m.ids[id]; ok {
		delete(m.bySeq, old)
		m.sum.Remove(id)
	}
	m.seq++
	m.bySeq[m.seq] = raw
	m.ids[id] = m.seq
	m.sum.Insert(merkle.Item{ID: id, Digest: sha256.Sum256(raw)})
	return m.seq
}

func (m *memStore) hello(peerName string, initiator bool, key []byte) wire.Hello {
	root := m.sum.Root()
	pr := m.known[peerName]
	snap, after := pr.Cursor()
	return wire.Hello{
		ResumeSnap: snap, ResumeAfter: after,
		Version: m.version, Proof: session.Proof(key, session.Role(initiator), m.selfPeer, m.peerIDs[peerName]),
		Epoch: m.epoch, KnownEpoch: pr.Epoch, KnownSeq: pr.Seq, LastSeq: m.seq,
		RootCount: root.Count, RootFP: root.FP,
		Horizon: session.TimeMs(m.horizon), LastContact: session.TimeMs(m.contact),
	}
}

func (e *sessionEnv) store(name string) *memStore {
	m := e.stores[name]
	if m == nil {
		e.t.Fatalf("no store %q", name)
	}
	return m
}

// days parses "-90d" as 90 days before transcriptNow.
func (e *sessionEnv) days(v string) time.Time {
	n, err := strconv.Atoi(strings.TrimSuffix(v, "d"))
	if err != nil {
		e.t.Fatalf("bad day offset %q", v)
	}
	return transcriptNow.Add(time.Duration(n) * 24 * time.Hour)
}

func (e *sessionEnv) envelope(m *memStore, key string, at time.Time) (merkle.ID, []byte) {
	id := merkle.ID(sha256.Sum256([]byte("id/" + key)))
	e.keys[id] = key
	m.counter++
	dev := resolve.DeviceID(m.name)
	env := store.Envelope{ID: id, Version: resolve.Version{Device: dev,
		Clock: resolve.MakeTimestamp(at.UnixMilli(), 0), VV: resolve.VersionVector{dev: m.counter}},
		Ciphertext: []byte(fmt.Sprintf("%-16s", key))}
	raw, err := env.MarshalBinary()
	if err != nil {
		e.t.Fatal(err)
	}
	return id, raw
}

// label names an envelope: its record, and the writer and counter when not the first.
func (e *sessionEnv) label(raw []byte) string {
	env, err := store.UnmarshalEnvelope(raw)
	if err != nil {
		return "?malformed"
	}
	return fmt.Sprintf("%s@%s%d", e.keys[env.ID], env.Version.Device, env.Version.VV[env.Version.Device])
}

func (e *sessionEnv) labels(envs [][]byte) string {
	if len(envs) == 0 {
		return "-"
	}
	var out []string
	for _, raw := range envs {
		out = append(out, e.label(raw))
	}
	return strings.Join(out, " ")
}

func (e *sessionEnv) epochName(ep [16]byte) string {
	if ep == ([16]byte{}) {
		return "-"
	}
	for _, m := range e.stores {
		if m.epoch == ep {
			return m.name
		}
	}
	return fmt.Sprintf("%x", ep[:2])
}

func (e *sessionEnv) frame(f session.Frame) string {
	switch f.Type {
	case wire.TypeHello:
		h, err := wire.UnmarshalHello(f.Body)
		if err != nil {
			return "hello ?" + err.Error()
		}
		line := fmt.Sprintf("hello epoch=%s last=%d known=%s:%d root=%d", e.epochName(h.Epoch), h.LastSeq,
			e.epochName(h.KnownEpoch), h.KnownSeq, h.RootCount)
		if h.ResumeSnap > 0 {
			line += fmt.Sprintf(" resume=%d:%s", h.ResumeSnap, e.keys[h.ResumeAfter])
		}
		return line
	case wire.TypeMerkle:
		return fmt.Sprintf("merkle %dB", len(f.Body))
	case wire.TypeBatch:
		b, err := wire.UnmarshalBatch(f.Body)
		if err != nil {
			return "batch ?" + err.Error()
		}
		if b.From == 0 && b.To == 0 {
			return "batch " + e.labels(b.Envelopes)
		}
		return fmt.Sprintf("batch (%d,%d] %s", b.From, b.To, e.labels(b.Envelopes))
	case wire.TypeEnd:
		end, _ := wire.UnmarshalEnd(f.Body)
		return fmt.Sprintf("end sent=%d", end.Sent)
	case wire.TypeDone:
		d, _ := wire.UnmarshalDone(f.Body)
		return fmt.Sprintf("done applied=%d rejected=%d stale=%d conflicts=%d", d.Applied, d.Rejected, d.Stale, d.Conflicts)
	}
	return fmt.Sprintf("frame %q %dB", byte(f.Type), len(f.Body))
}

func (e *sessionEnv) run(c *transcriptCmd) string {
	switch c.name {
	case "store":
		name := c.args[0]
		m := &memStore{name: name, bySeq: map[uint64][]byte{}, ids: map[merkle.ID]uint64{}, sum: merkle.NewMem(),
			known: map[string]session.Progress{}, echo: map[string][][2]uint64{}, blind: slices.Contains(c.args, "blind"),
			peerIDs: map[string]peer.ID{}, selfPeer: peer.ID("peer-" + name)}
		copy(m.epoch[:], name)
		m.version = wire.Version
		if v, ok := c.opts["version"]; ok {
			n, _ := strconv.Atoi(v)
			m.version = byte(n)
		}
		if v, ok := c.opts["contact"]; ok {
			m.contact = e.days(v)
		}
		if v, ok := c.opts["horizon"]; ok {
			m.horizon = e.days(v)
		}
		e.stores[name] = m
		e.order = append(e.order, name)
		return "ok"
	case "put":
		m := e.store(c.args[0])
		at := transcriptNow
		if v, ok := c.opts["at"]; ok {
			at = e.days(v)
		}
		var out []string
		for _, k := range c.args[1:] {
			id, raw := e.envelope(m, k, at)
			out = append(out, fmt.Sprintf("%d:%s", m.add(id, raw), e.label(raw)))
		}
		return strings.Join(out, " ")
	case "known":
		m, p := e.store(c.args[0]), e.store(c.args[1])
		seq, _ := strconv.ParseUint(c.args[2], 10, 64)
		m.known[p.name] = session.Progress{Epoch: p.epoch, Seq: seq}
		return "ok"
	case "echo":
		m := e.store(c.args[0])
		from, _ := strconv.ParseUint(c.args[2], 10, 64)
		to, _ := strconv.ParseUint(c.args[3], 10, 64)
		m.echo[c.args[1]] = append(m.echo[c.args[1]], [2]uint64{from, to})
		return "ok"
	case "show":
		return e.show(e.store(c.args[0]))
	case "sync":
		return e.sync(c)
	}
	e.t.Fatalf("%s: unknown command %q", c.pos, c.name)
	return ""
}

func (e *sessionEnv) show(m *memStore) string {
	var out []string
	for s := uint64(1); s <= m.seq; s++ {
		if raw, ok := m.bySeq[s]; ok {
			out = append(out, fmt.Sprintf("%d:%s", s, e.label(raw)))
		}
	}
	line := "envelopes: " + strings.Join(out, " ")
	if len(out) == 0 {
		line = "envelopes: -"
	}
	lines := []string{line, fmt.Sprintf("epoch=%s last=%d", m.name, m.seq)}
	for _, p := range e.order {
		if pr, ok := m.known[p]; ok {
			lines = append(lines, fmt.Sprintf("knows %s: %s", p, e.progress(pr)))
		}
	}
	if !m.horizon.IsZero() {
		lines = append(lines, "horizon "+m.horizon.Format(time.DateOnly))
	}
	return strings.Join(lines, "\n")
}

// progress prints a progress: epoch:seq, and the id-ordered cursor when there is one.
func (e *sessionEnv) progress(pr session.Progress) string {
	out := fmt.Sprintf("%s:%d", e.epochName(pr.Epoch), pr.Seq)
	if snap, after := pr.Cursor(); snap > 0 {
		out += fmt.Sprintf(" cursor=%d:%s", snap, e.keys[after])
	}
	return out
}

// side is one end of a transcript session.
type side struct {
	name    string
	m       *memStore
	peer    *side
	sess    *session.Session
	out     session.Output
	err     error
	inbox   []session.Frame
	over    bool
	failed  bool
	hostile []session.Frame // frames sent instead of the Sender's
}

func (e *sessionEnv) sync(c *transcriptCmd) string {
	key := []byte("mesh key")
	a := &side{name: c.args[0], m: e.store(c.args[0])}
	b := &side{name: c.args[1], m: e.store(c.args[1])}
	a.peer, b.peer = b, a
	a.m.peerIDs[b.name], b.m.peerIDs[a.name] = b.m.selfPeer, a.m.selfPeer
	var log []string
	logf := func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }
	for _, s := range []*side{a, b} {
		h := s.m.hello(s.peer.name, s == a, key)
		e.lie(c, s.name, &h)
		cfg := session.Config{Initiator: s == a, Self: s.m.selfPeer, Peer: s.peer.m.selfPeer, ProofKey: key,
			Hello: h, Source: s.m, Summary: s.m.sum, Now: transcriptNow, TombstoneTTL: store.DefaultTombstoneTTL,
			Blind: s.m.blind, Echo: s.m.echoOf(s.peer.name)}
		if v, ok := c.opts["cap"]; ok && s == a {
			cfg.MaxBytes, _ = strconv.Atoi(v)
		}
		if v, ok := c.opts["applybatch"]; ok {
			cfg.ApplyBatch, _ = strconv.Atoi(v)
		}
		if v, ok := c.opts["batch"]; ok {
			cfg.BatchEnvelopes, _ = strconv.Atoi(v)
		}
		s.sess = session.New(cfg)
		if c.opts["hostile"] == s.name {
			s.hostile = e.script(s.m, c.input)
		}
		s.out, s.err = s.sess.Start()
	}
	for moved := true; moved; {
		moved = false
		for _, s := range []*side{a, b} {
			if e.step(s, logf) {
				moved = true
			}
		}
	}
	for _, s := range []*side{a, b} {
		r := s.sess.Result()
		switch {
		case s.failed:
			logf("%s: error %v", s.name, s.err)
			if r.Violation != session.NoViolation {
				logf("%s: violation %s", s.name, r.Violation)
			}
		case !s.over:
			logf("%s: stalled waiting for %s", s.name, s.sess.Waiting())
		default:
			logf("%s: ok mode=%s sent=%d received=%d applied=%d rejected=%d peer-applied=%d merkle=%d",
				s.name, r.Mode, r.Sent, r.Received, r.Applied, r.Rejected, r.PeerApplied, r.MerkleMessages)
			if r.Mode == "full-resync" {
				var lacks []string
				for _, id := range r.Lacks {
					lacks = append(lacks, e.keys[id])
				}
				logf("%s: full resync since %s, forget what the peer lacks: %s", s.name, r.Since.Format(time.DateOnly), strings.Join(lacks, " "))
			}
		}
	}
	return strings.Join(log, "\n")
}

// lie edits name's hello as the sync command's lie=NAME.FIELD=VALUE,… says.
func (e *sessionEnv) lie(c *transcriptCmd, name string, h *wire.Hello) {
	lies, ok := c.opts["lie"]
	if !ok {
		// key=value splitting took the first "=": lie=b.last=5 arrives as opts["lie"]="b.last=5"
		return
	}
	for _, l := range strings.Split(lies, ",") {
		who, rest, _ := strings.Cut(l, ".")
		if who != name {
			continue
		}
		field, v, _ := strings.Cut(rest, "=")
		n, _ := strconv.ParseUint(v, 10, 64)
		switch field {
		case "last":
			h.LastSeq = n
		case "root":
			h.RootCount = n
		case "version":
			h.Version = byte(n)
		case "proof":
			h.Proof[0] ^= 1
		case "known":
			h.KnownSeq = n
		case "resume":
			h.ResumeSnap = n
		case "epoch":
			copy(h.Epoch[:], v)
		case "horizon":
			h.Horizon = session.TimeMs(e.days(v))
		default:
			e.t.Fatalf("%s: unknown hello field %q", c.pos, field)
		}
	}
}

// script turns a hostile side's input lines into frames:
//
//	batch [FROM TO] KEY…   envelopes of KEY from the side's store (a new one if it has none)
//	end N                  End claiming N envelopes
//	done                   Done
func (e *sessionEnv) script(m *memStore, lines []string) []session.Frame {
	var out []session.Frame
	for _, l := range lines {
		f := strings.Fields(l)
		switch f[0] {
		case "batch":
			b := &wire.Batch{}
			keys := f[1:]
			if len(keys) >= 2 {
				from, err1 := strconv.ParseUint(keys[0], 10, 64)
				to, err2 := strconv.ParseUint(keys[1], 10, 64)
				if err1 == nil && err2 == nil {
					b.From, b.To, keys = from, to, keys[2:]
				}
			}
			for _, k := range keys {
				id := merkle.ID(sha256.Sum256([]byte("id/" + k)))
				if s, ok := m.ids[id]; ok {
					b.Envelopes = append(b.Envelopes, m.bySeq[s])
				} else {
					_, raw := e.envelope(m, k, transcriptNow)
					b.Envelopes = append(b.Envelopes, raw)
				}
			}
			out = append(out, session.Frame{Type: wire.TypeBatch, Body: b.Marshal()})
		case "end":
			n, _ := strconv.ParseUint(f[1], 10, 64)
			out = append(out, session.Frame{Type: wire.TypeEnd, Body: (&wire.End{Sent: n}).Marshal()})
		case "done":
			out = append(out, session.Frame{Type: wire.TypeDone, Body: (&wire.Done{}).Marshal()})
		default:
			e.t.Fatalf("unknown hostile frame %q", l)
		}
	}
	return out
}

func (m *memStore) echoOf(p string) session.Echo {
	rs := m.echo[p]
	return func(seq uint64) (uint64, bool) {
		for _, r := range rs {
			if seq > r[0] && seq <= r[1] {
				return r[1], true
			}
		}
		return 0, false
	}
}

// send puts a frame on the wire towards s's peer.
func (e *sessionEnv) send(s *side, f session.Frame, logf func(string, ...any)) {
	logf("%s→%s %s", s.name, s.peer.name, e.frame(f))
	s.peer.inbox = append(s.peer.inbox, f)
}

// step advances s as far as it can without a frame it does not have; it reports whether
// it did anything. It is the node's driver (sync.go) without the stream.
func (e *sessionEnv) step(s *side, logf func(string, ...any)) bool {
	moved := false
	for !s.over {
		out := s.out
		s.out = session.Output{}
		for _, f := range out.Send {
			e.send(s, f, logf)
		}
		if s.err != nil {
			s.over, s.failed = true, true
			if out.Rollback {
				logf("%s: rolled back: new store epoch", s.name)
			}
			return true
		}
		if !out.AdoptHorizon.IsZero() {
			s.m.horizon = out.AdoptHorizon
			logf("%s: adopt horizon %s", s.name, out.AdoptHorizon.Format(time.DateOnly))
		}
		if out.Transfer {
			logf("%s: transfer", s.name)
			if s.hostile != nil {
				for _, f := range s.hostile {
					e.send(s, f, logf)
				}
			} else {
				for snd := s.sess.Sender(); ; {
					f, ok, err := snd.Next()
					if err != nil {
						e.t.Fatal(err)
					}
					if !ok {
						break
					}
					e.send(s, f, logf)
				}
			}
		}
		switch {
		case out.Apply != nil:
			s.out, s.err = s.sess.Applied(e.apply(s, out.Apply, logf))
		case out.Received:
			s.out, s.err = s.sess.Sent(s.sess.Sender().Sent())
		case out.Done:
			s.over = true
			return true
		default:
			if len(s.inbox) == 0 {
				if s.peer.failed {
					s.over, s.failed, s.err = true, true, fmt.Errorf("read %s: stream reset", s.sess.Waiting())
					return true
				}
				return moved
			}
			f := s.inbox[0]
			s.inbox = s.inbox[1:]
			s.out, s.err = s.sess.Step(f)
		}
		moved = true
	}
	return moved
}

// apply applies a group to s's store as the node's applyGroup does, and logs it.
func (e *sessionEnv) apply(s *side, a *session.Apply, logf func(string, ...any)) session.Applied {
	if s.hostile != nil {
		logf("%s: drop %s", s.name, e.labels(a.Envelopes)) // a hostile side keeps its store as it is
		return session.Applied{}
	}
	m := s.m
	pr := a.Progress(m.known[s.peer.name])
	var r session.Applied
	var got []string
	first := m.seq
	for _, raw := range a.Envelopes {
		env, err := store.UnmarshalEnvelope(raw)
		key := ""
		if err == nil {
			key = e.keys[env.ID]
		}
		switch {
		case err != nil || strings.HasPrefix(key, "bad"):
			r.Bad++
			got = append(got, "!"+e.label(raw))
			continue
		case strings.HasPrefix(key, "later"):
			r.Later++
			got = append(got, "~"+e.label(raw))
			continue
		}
		got = append(got, e.label(raw))
		if seq, ok := m.ids[env.ID]; ok && string(m.bySeq[seq]) == string(raw) {
			continue
		}
		m.add(env.ID, raw)
		r.Added++
	}
	if m.seq > first {
		m.echo[s.peer.name] = append(m.echo[s.peer.name], [2]uint64{first, m.seq})
	}
	what := "apply " + strings.Join(got, " ")
	if len(a.Envelopes) == 0 {
		what = "apply -"
	}
	if a.Final {
		what += " final"
	}
	if pr != nil && (len(a.Envelopes) == 0 || r.Bad == 0 && r.Later == 0) {
		m.known[s.peer.name] = *pr
		what += " progress=" + e.progress(*pr)
	}
	logf("%s: %s", s.name, what)
	return r
}
