package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/meshsync/meshsync/resolve"
)

// Config chooses a run. Zero fields take the defaults noted.
type Config struct {
	// Seed makes the run reproducible.
	Seed uint64
	// Replicas is the number of replicas, 3..7; zero picks one from the seed.
	Replicas int
	// Records is the number of data records; zero means 4.
	Records int
	// Steps is the number of random steps before the final exchange; zero
	// means 120.
	Steps int
}

// Report counts what a run did.
type Report struct {
	Replicas, Steps                                         int
	Puts, Deletes, PolicyChanges, Decisions                 int
	Delivered, Duplicated, Dropped, AntiEntropy, Partitions int
	// Conflicts counts the conflicts seen at the end, by type, over all
	// records (as resolved by one replica).
	Conflicts map[resolve.ConflictType]int
	// Clamped counts remote clocks that were more than MaxSkew ahead.
	Clamped int
}

// ErrDiverged is wrapped by every invariant violation Run reports.
var ErrDiverged = errors.New("replicas diverged")

const (
	collection = "c"
	policyKey  = "_policy/" + collection
)

// write is one version made by one replica, with the set of writes its
// author had seen (the true causal past, tracked apart from version vectors).
type write struct {
	id    int
	rec   string
	sib   resolve.Sibling
	knows map[int]bool
}

type replica struct {
	dev     resolve.DeviceID
	clock   resolve.Clock
	offset  time.Duration // error of this replica's wall clock
	recs    map[string][]*write
	knows   map[string]map[int]bool
	history map[int]bool
	lastTS  resolve.Timestamp
	pol     *resolve.Policy // cache of the resolved policy record
}

type sim struct {
	cfg      Config
	r        *rand.Rand
	now      time.Time
	reps     []*replica
	queues   [][][]*write // queues[from][to]
	group    []int        // partition group per replica, all 0 when healed
	writes   []*write
	records  []string
	rep      Report
	failures []string
}

var start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Run simulates one seed and returns its report, or an error wrapping
// ErrDiverged that names the seed and every violated invariant.
func Run(cfg Config) (Report, error) {
	s := &sim{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, 0x6d657368)), now: start}
	n := cfg.Replicas
	if n == 0 {
		n = 3 + s.r.IntN(5)
	}
	if n < 2 {
		return Report{}, fmt.Errorf("sim seed=%d: need at least 2 replicas, got %d", cfg.Seed, n)
	}
	nrec := cfg.Records
	if nrec == 0 {
		nrec = 4
	}
	steps := cfg.Steps
	if steps == 0 {
		steps = 120
	}
	s.rep = Report{Replicas: n, Steps: steps, Conflicts: map[resolve.ConflictType]int{}}
	for i := range nrec {
		s.records = append(s.records, fmt.Sprintf("%s/k%d", collection, i))
	}
	s.records = append(s.records, policyKey)
	s.queues = make([][][]*write, n)
	s.group = make([]int, n)
	for i := range n {
		rp := &replica{
			dev:     resolve.DeviceID(fmt.Sprintf("%016x", s.r.Uint64())),
			recs:    map[string][]*write{},
			knows:   map[string]map[int]bool{},
			history: map[int]bool{},
			offset:  time.Duration(s.r.IntN(600)-300) * time.Second,
		}
		if s.r.IntN(4) == 0 {
			rp.offset = time.Duration(15+s.r.IntN(60)) * time.Minute // beyond MaxSkew
		}
		s.reps = append(s.reps, rp)
		s.queues[i] = make([][]*write, n)
	}
	for step := 0; step < steps; step++ {
		s.step()
	}
	s.finalExchange()
	s.check()
	if len(s.failures) > 0 {
		return s.rep, fmt.Errorf("sim seed=%d: %w:\n%s", cfg.Seed, ErrDiverged, strings.Join(s.failures, "\n"))
	}
	return s.rep, nil
}

func (s *sim) failf(format string, args ...any) {
	if len(s.failures) < 20 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	}
}

func (s *sim) wall(rp *replica) time.Time { return s.now.Add(rp.offset) }

func (s *sim) step() {
	s.now = s.now.Add(time.Duration(s.r.IntN(5000)) * time.Millisecond)
	if s.r.IntN(40) == 0 {
		// A wall clock jumps, sometimes backwards.
		rp := s.reps[s.r.IntN(len(s.reps))]
		rp.offset += time.Duration(s.r.IntN(7200)-3600) * time.Second
	}
	if s.r.IntN(30) == 0 {
		// Days pass: user-choice deadlines expire mid-run.
		s.now = s.now.Add(time.Duration(s.r.IntN(48)) * time.Hour)
	}
	rp := s.r.IntN(len(s.reps))
	switch x := s.r.IntN(100); {
	case x < 28:
		s.put(rp, s.records[s.r.IntN(len(s.records)-1)], false)
	case x < 34:
		s.put(rp, s.records[s.r.IntN(len(s.records)-1)], true)
	case x < 38:
		s.put(rp, policyKey, false)
	case x < 41:
		s.decide(rp)
	case x < 80:
		s.deliver()
	case x < 86:
		s.drop()
	case x < 93:
		s.antiEntropy(rp)
	default:
		s.partition()
	}
}

func (s *sim) linkUp(a, b int) bool { return s.group[a] == s.group[b] }

func (s *sim) send(from int, w *write) {
	for to := range s.reps {
		if to != from {
			s.queues[from][to] = append(s.queues[from][to], w)
		}
	}
}

func (s *sim) deliver() {
	type link struct{ a, b int }
	var links []link
	for a := range s.queues {
		for b := range s.queues[a] {
			if len(s.queues[a][b]) > 0 && s.linkUp(a, b) {
				links = append(links, link{a, b})
			}
		}
	}
	if len(links) == 0 {
		return
	}
	l := links[s.r.IntN(len(links))]
	q := s.queues[l.a][l.b]
	i := s.r.IntN(len(q)) // any message: reordering
	w := q[i]
	if s.r.IntN(8) == 0 {
		s.rep.Duplicated++ // delivered now and left in the queue to arrive again
	} else {
		s.queues[l.a][l.b] = slices.Delete(q, i, i+1)
	}
	s.rep.Delivered++
	s.receive(l.b, w)
}

func (s *sim) drop() {
	a, b := s.r.IntN(len(s.reps)), s.r.IntN(len(s.reps))
	if q := s.queues[a][b]; len(q) > 0 {
		i := s.r.IntN(len(q))
		s.queues[a][b] = slices.Delete(q, i, i+1)
		s.rep.Dropped++
	}
}

func (s *sim) antiEntropy(from int) {
	to := s.r.IntN(len(s.reps))
	if to == from || !s.linkUp(from, to) {
		return
	}
	s.rep.AntiEntropy++
	for _, rec := range s.records {
		for _, w := range s.reps[from].recs[rec] {
			s.queues[from][to] = append(s.queues[from][to], w)
		}
	}
}

func (s *sim) partition() {
	if slices.Max(s.group) > 0 {
		clear(s.group) // heal
		return
	}
	s.rep.Partitions++
	k := 2 + s.r.IntN(2)
	for i := range s.group {
		s.group[i] = s.r.IntN(k)
	}
}

// receive applies a version to replica i's antichain and resolves the
// record, recording the losers in the replica's history.
func (s *sim) receive(i int, w *write) {
	if s.apply(i, w) {
		s.resolve(i, w.rec, s.wall(s.reps[i]))
	}
}

// apply adds a version to replica i's antichain and reports whether it
// changed.
func (s *sim) apply(i int, w *write) bool {
	rp := s.reps[i]
	if _, clamped := rp.clock.Observe(w.sib.Version.Clock, s.wall(rp)); clamped {
		s.rep.Clamped++
	}
	k := rp.knows[w.rec]
	if k == nil {
		k = map[int]bool{}
		rp.knows[w.rec] = k
	}
	for id := range w.knows {
		k[id] = true
	}
	anti := rp.recs[w.rec]
	for _, a := range anti {
		if a.sib.Version.VV.Dominates(w.sib.Version.VV) {
			return false // duplicate or superseded
		}
	}
	keep := anti[:0:0]
	for _, a := range anti {
		if w.sib.Version.VV.Compare(a.sib.Version.VV) != resolve.After {
			keep = append(keep, a)
		}
	}
	rp.recs[w.rec] = append(keep, w)
	if w.rec == policyKey {
		rp.pol = nil
	}
	return true
}

func sibsOf(anti []*write) []resolve.Sibling {
	r := make([]resolve.Sibling, len(anti))
	for i, w := range anti {
		r[i] = w.sib
	}
	return r
}

// policy returns replica i's current policy for the collection.
func (s *sim) policy(i int, now time.Time) resolve.Policy {
	if p := s.reps[i].pol; p != nil {
		return *p
	}
	p := s.loadPolicy(i, now)
	s.reps[i].pol = &p
	return p
}

// loadPolicy resolves the policy record by timestamp (so now plays no part).
func (s *sim) loadPolicy(i int, now time.Time) resolve.Policy {
	anti := s.reps[i].recs[policyKey]
	if len(anti) == 0 {
		return resolve.Policy{}
	}
	res, err := resolve.Resolve(resolve.Policy{}, sibsOf(anti), now)
	if err != nil {
		s.failf("replica %d: resolve policy: %v", i, err)
		return resolve.Policy{}
	}
	var p resolve.Policy
	if res.Value.Kind != resolve.KindJSON || json.Unmarshal(res.Value.Data, &p) != nil || p.Validate() != nil {
		return resolve.Policy{}
	}
	return p
}

func (s *sim) resolve(i int, rec string, now time.Time) (resolve.Result, bool) {
	rp := s.reps[i]
	anti := rp.recs[rec]
	if len(anti) == 0 {
		return resolve.Result{}, false
	}
	p := resolve.Policy{}
	if rec != policyKey {
		p = s.policy(i, now)
	}
	res, err := resolve.Resolve(p, sibsOf(anti), now)
	if err != nil {
		s.failf("replica %d record %s: resolve: %v", i, rec, err)
		return resolve.Result{}, false
	}
	if c := res.Conflict; c != nil {
		for _, l := range c.Losers {
			rp.history[anti[l].id] = true
		}
	}
	return res, true
}

// put writes a new version on replica i: a delete, a policy, or a random
// edit of the resolved value.
func (s *sim) put(i int, rec string, del bool) {
	var val resolve.Value
	var prev *resolve.Value
	if res, ok := s.resolve(i, rec, s.wall(s.reps[i])); ok {
		prev = &res.Value
	}
	switch {
	case del:
		val = resolve.Value{Kind: resolve.KindDeleted}
		s.rep.Deletes++
	case rec == policyKey:
		s.rep.PolicyChanges++
		b, _ := json.Marshal(s.randomPolicy())
		val = resolve.Value{Kind: resolve.KindJSON, Data: b}
	case s.r.IntN(25) == 0:
		val = resolve.Value{Kind: resolve.KindRaw, Data: []byte{byte(s.r.IntN(3))}}
		s.rep.Puts++
	default:
		s.rep.Puts++
		val = resolve.Value{Kind: resolve.KindJSON, Data: s.mutate(prev)}
	}
	s.commit(i, rec, prev, val)
}

// decide resolves a conflict on replica i by writing one sibling's value.
func (s *sim) decide(i int) {
	rec := s.records[s.r.IntN(len(s.records)-1)]
	res, ok := s.resolve(i, rec, s.wall(s.reps[i]))
	if !ok || res.Conflict == nil {
		return
	}
	s.rep.Decisions++
	anti := s.reps[i].recs[rec]
	pick := anti[s.r.IntN(len(anti))].sib.Value
	s.commit(i, rec, &res.Value, resolve.Value{Kind: pick.Kind, Data: pick.Data})
}

func (s *sim) commit(i int, rec string, prev *resolve.Value, val resolve.Value) {
	rp := s.reps[i]
	vv := resolve.VersionVector{}
	for _, a := range rp.recs[rec] {
		vv = vv.Merge(a.sib.Version.VV)
	}
	vv[rp.dev]++
	ts := rp.clock.Now(s.wall(rp))
	if ts <= rp.lastTS {
		s.failf("replica %d: clock went from %v to %v", i, rp.lastTS, ts)
	}
	rp.lastTS = ts
	v := resolve.Version{Device: rp.dev, Clock: ts, VV: vv}
	if val.Kind == resolve.KindJSON {
		var err error
		if val, err = resolve.StampVersion(prev, val.Data, v); err != nil {
			s.failf("replica %d: stamp: %v", i, err)
			return
		}
	}
	w := &write{id: len(s.writes), rec: rec, sib: resolve.Sibling{Version: v, Value: val}, knows: map[int]bool{}}
	for id := range rp.knows[rec] {
		w.knows[id] = true
	}
	w.knows[w.id] = true
	s.writes = append(s.writes, w)
	s.receive(i, w)
	s.send(i, w)
}

func (s *sim) randomPolicy() resolve.Policy {
	strategies := []resolve.Strategy{resolve.StrategyTimestamp, resolve.StrategyPriority, resolve.StrategyMerge, resolve.StrategyUser}
	p := resolve.Policy{Strategy: strategies[s.r.IntN(len(strategies))]}
	if p.Strategy == resolve.StrategyUser {
		p.Fallback = strategies[s.r.IntN(3)]
		p.Deadline = time.Duration(1+s.r.IntN(24)) * time.Hour
	}
	if s.r.IntN(2) == 0 {
		p.PriorityField = "p"
	} else {
		p.DeviceRank = map[resolve.DeviceID]int{}
		for _, rp := range s.reps {
			p.DeviceRank[rp.dev] = s.r.IntN(3)
		}
	}
	if s.r.IntN(3) == 0 {
		p.Critical = []string{[]string{"a", "o.x", "p"}[s.r.IntN(3)]}
	}
	return p
}

// mutate returns a random edit of prev as JSON text.
func (s *sim) mutate(prev *resolve.Value) []byte {
	doc := map[string]any{}
	if prev != nil && prev.Kind == resolve.KindJSON {
		var m map[string]any
		if json.Unmarshal(prev.Data, &m) == nil && m != nil {
			doc = m
		}
	}
	switch s.r.IntN(20) {
	case 0:
		return []byte(fmt.Sprintf("[%d]", s.r.IntN(3)))
	case 1:
		return []byte(fmt.Sprintf(`"s%d"`, s.r.IntN(3)))
	}
	keys := []string{"a", "b", "c", "p", "o"}
	for n := 1 + s.r.IntN(3); n > 0; n-- {
		k := keys[s.r.IntN(len(keys))]
		switch s.r.IntN(5) {
		case 0:
			delete(doc, k)
		case 1:
			o, _ := doc["o"].(map[string]any)
			if o == nil {
				o = map[string]any{}
			}
			o[[]string{"x", "y"}[s.r.IntN(2)]] = s.r.IntN(4)
			doc["o"] = o
		default:
			doc[k] = s.r.IntN(5)
		}
	}
	b, _ := json.Marshal(doc)
	return b
}

// finalExchange heals the network and brings every replica every version:
// all to replica 0, then replica 0 to all, in batches (check resolves).
func (s *sim) finalExchange() {
	clear(s.group)
	for i := 1; i < len(s.reps); i++ {
		for _, rec := range s.records {
			for _, w := range s.reps[i].recs[rec] {
				s.apply(0, w)
			}
		}
	}
	for i := 1; i < len(s.reps); i++ {
		for _, rec := range s.records {
			for _, w := range s.reps[0].recs[rec] {
				s.apply(i, w)
			}
		}
	}
}

func antichainKey(anti []*write) string {
	keys := make([]string, len(anti))
	for i, w := range anti {
		v := w.sib.Version
		fb, _ := w.sib.Value.Fields.MarshalBinary()
		keys[i] = fmt.Sprintf("%s@%d%s|%d|%x|%x", v.Device, v.Clock, v.VV, w.sib.Value.Kind, w.sib.Value.Data, fb)
	}
	slices.Sort(keys)
	return strings.Join(keys, "\n")
}

func resultKey(anti []*write, r resolve.Result) string {
	fb, _ := r.Value.Fields.MarshalBinary()
	k := fmt.Sprintf("%d|%x|%x|", r.Value.Kind, r.Value.Data, fb)
	if r.Winner >= 0 {
		k += fmt.Sprint("winner=", anti[r.Winner].id)
	}
	if c := r.Conflict; c != nil {
		var ls []int
		for _, l := range c.Losers {
			ls = append(ls, anti[l].id)
		}
		slices.Sort(ls)
		k += fmt.Sprintf("|%s open=%v %v %s %v", c.Type, c.Open, c.Deadline, c.Strategy, ls)
	}
	return k
}

func (s *sim) check() {
	end := s.now.Add(time.Minute)
	late := end.Add(resolve.MaxDeadline + 48*time.Hour)
	for _, rec := range s.records {
		want := antichainKey(s.reps[0].recs[rec])
		for i, rp := range s.reps {
			if got := antichainKey(rp.recs[rec]); got != want {
				s.failf("record %s: replica %d antichain differs from replica 0:\n%s\nvs\n%s", rec, i, got, want)
			}
		}
		for _, now := range []time.Time{end, late} {
			var first string
			for i, rp := range s.reps {
				// Each replica holds its antichain in its own order.
				s.r.Shuffle(len(rp.recs[rec]), func(a, b int) {
					rp.recs[rec][a], rp.recs[rec][b] = rp.recs[rec][b], rp.recs[rec][a]
				})
				res, ok := s.resolve(i, rec, now)
				if !ok {
					continue
				}
				k := resultKey(rp.recs[rec], res)
				if i == 0 {
					first = k
					if now.Equal(late) && res.Conflict != nil {
						s.rep.Conflicts[res.Conflict.Type]++
					}
				} else if k != first {
					s.failf("record %s at %v: replica %d resolves %s, replica 0 %s", rec, now, i, k, first)
				}
				if now.Equal(late) && res.Conflict != nil && res.Conflict.Open {
					s.failf("record %s: conflict still open long after its deadline", rec)
				}
				s.checkWrites(i, rec, res)
			}
		}
	}
}

// checkWrites: every write of rec is the resolved value, a loser in the
// replica's history, or superseded by a version whose author had seen it.
func (s *sim) checkWrites(i int, rec string, res resolve.Result) {
	rp := s.reps[i]
	anti := rp.recs[rec]
	for _, w := range s.writes {
		if w.rec != rec {
			continue
		}
		if j := slices.Index(anti, w); j >= 0 {
			if w.sib.Value.Same(res.Value) {
				continue
			}
			if res.Conflict == nil || !slices.Contains(res.Conflict.Losers, j) || !rp.history[w.id] {
				s.failf("record %s replica %d: write %d lost: neither resolved value nor loser in history", rec, i, w.id)
			}
			continue
		}
		superseded := false
		for _, a := range anti {
			if a.knows[w.id] {
				superseded = true
				break
			}
		}
		if !superseded {
			s.failf("record %s replica %d: write %d dropped without a version that saw it", rec, i, w.id)
		}
	}
}
