package consent

import (
	"encoding/hex"
	"flag"
	"math/rand/v2"
	"strings"
	"testing"
)

var canaryCases = flag.Int("canary-cases", 20000, "cases of TestApplyCanaries (test plan row 22 asks 100000)")

// TestApplyCanaries is test plan row 22 for the pure part: random documents whose every
// string and many field names are unique canaries, random grants over their paths. No
// canary in a dropped, redacted, pseudonymized, generalized or unruled position, no field
// name of a swallowed field, and no record key ever appears in the output.
func TestApplyCanaries(t *testing.T) {
	cases := *canaryCases
	if testing.Short() {
		cases = 2000
	}
	seed := rand.Uint64()
	t.Logf("seed %d, %d cases", seed, cases)
	rng := rand.New(rand.NewPCG(seed, 0))
	leaks := 0
	for i := range cases {
		c := newCanaryCase(rng)
		out, err := Apply(c.grant, c.docJSON, testKey)
		if err != nil {
			t.Fatalf("seed %d case %d: Apply: %v\ndoc %s", seed, i, err, c.docJSON)
		}
		for _, s := range c.forbidden {
			if strings.Contains(string(out), s) {
				leaks++
				t.Errorf("seed %d case %d: %s leaked\nrules %v\ndoc %s\nout %s", seed, i, s, c.grant.Fields, c.docJSON, out)
			}
		}
		if leaks > 3 {
			t.FailNow()
		}
	}
}

type canaryCase struct {
	grant     Grant
	docJSON   []byte
	forbidden []string
}

func canary(rng *rand.Rand) string {
	var b [8]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return "CNRY" + hex.EncodeToString(b[:])
}

var plainNames = []string{"a", "b", "c", "name", "email", "items", "geo"}

func randDoc(rng *rand.Rand, depth int) any {
	switch k := rng.IntN(10); {
	case depth < 4 && k < 3:
		m := map[string]any{}
		for range 1 + rng.IntN(4) {
			var name string
			switch rng.IntN(6) {
			case 0:
				name = canary(rng) // a field name that is itself secret
			case 1:
				name = "x." + canary(rng) // not addressable by a path
			default:
				name = plainNames[rng.IntN(len(plainNames))]
			}
			m[name] = randDoc(rng, depth+1)
		}
		return m
	case depth < 4 && k < 5:
		var a []any
		for range rng.IntN(4) {
			a = append(a, randDoc(rng, depth+1))
		}
		return a
	case k < 8:
		return canary(rng)
	case k < 9:
		return float64(rng.IntN(1000)) / 10
	default:
		return nil
	}
}

// docPaths lists the addressable paths of v (arrays are transparent).
func docPaths(v any, prefix []string, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if strings.Contains(k, ".") {
				continue
			}
			p := append(append([]string(nil), prefix...), k)
			out[strings.Join(p, ".")] = true
			docPaths(e, p, out)
		}
	case []any:
		for _, e := range v {
			docPaths(e, prefix, out)
		}
	}
}

var randArgs = []string{"10", "0.5", "2dp", "day", "hour", "prefix3", "prefix8"}

func newCanaryCase(rng *rand.Rand) canaryCase {
	root := map[string]any{}
	for range 1 + rng.IntN(5) {
		name := plainNames[rng.IntN(len(plainNames))]
		if rng.IntN(4) == 0 {
			name = canary(rng)
		}
		root[name] = randDoc(rng, 1)
	}
	paths := map[string]bool{}
	docPaths(root, nil, paths)
	rules := map[string]FieldRule{}
	for p := range paths { // map order is random, and so is the choice
		if rng.IntN(3) == 0 {
			continue
		}
		r := FieldRule{Path: p}
		switch rng.IntN(5) {
		case 0:
			r.Action = Keep
		case 1:
			r.Action = Drop
		case 2:
			r.Action = Redact
		case 3:
			r.Action = Pseudonymize
		default:
			r.Action, r.Arg = Generalize, randArgs[rng.IntN(len(randArgs))]
		}
		rules[p] = r
	}
	g := Grant{ID: "0123456789abcdef", Collection: "notes", Purpose: "research", Destination: peerA,
		Expires: t0.Add(1), Created: t0}
	for _, r := range rules {
		g.Fields = append(g.Fields, r)
	}
	doc, err := encodeJSON(root)
	if err != nil {
		panic(err)
	}
	c := canaryCase{grant: g, docJSON: doc}
	c.forbidden = append(c.forbidden, canary(rng)) // the record key: never part of a document
	c.collectForbidden(root, nil, false, rules)
	return c
}

// effective returns the rule of the nearest ancestor-or-self path that has one.
func effective(rules map[string]FieldRule, p []string) (FieldRule, bool) {
	for i := len(p); i > 0; i-- {
		if r, ok := rules[strings.Join(p[:i], ".")]; ok && !strings.Contains(p[i-1], ".") {
			return r, true
		}
	}
	return FieldRule{}, false
}

func hasDeeper(rules map[string]FieldRule, p []string) bool {
	pre := strings.Join(p, ".") + "."
	for k := range rules {
		if strings.HasPrefix(k, pre) {
			return true
		}
	}
	return false
}

// collectForbidden is the oracle: which canaries must not appear, independently of Apply's
// code. hidden means an ancestor swallowed the whole subtree.
func (c *canaryCase) collectForbidden(v any, p []string, hidden bool, rules map[string]FieldRule) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			cp := append(append([]string(nil), p...), k)
			r, ok := effective(rules, cp)
			deeper := !strings.Contains(k, ".") && hasDeeper(rules, cp)
			gone := !deeper && (!ok || r.Action == Drop)
			if (hidden || gone) && strings.Contains(k, "CNRY") {
				c.forbidden = append(c.forbidden, strings.TrimPrefix(k, "x."))
			}
			swallowed := !deeper && ok && (r.Action == Redact || r.Action == Pseudonymize)
			c.collectForbidden(e, cp, hidden || gone || swallowed, rules)
		}
	case []any:
		for _, e := range v {
			c.collectForbidden(e, p, hidden, rules)
		}
	case string:
		r, ok := effective(rules, p)
		if hidden || !ok || r.Action != Keep {
			c.forbidden = append(c.forbidden, v)
		}
	}
}

func TestCanaryOracleSelfCheck(t *testing.T) {
	// The oracle must flag something in most cases, or the property test proves nothing.
	rng := rand.New(rand.NewPCG(1, 2))
	flagged, kept := 0, 0
	for range 500 {
		c := newCanaryCase(rng)
		flagged += len(c.forbidden) - 1
		out, _ := Apply(c.grant, c.docJSON, testKey)
		kept += strings.Count(string(out), "CNRY")
	}
	if flagged < 500 || kept < 100 {
		t.Fatalf("weak generator: %d forbidden canaries, %d canaries kept in 500 cases", flagged, kept)
	}
}
