package resolve

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// FuzzResolve is a differential fuzz of Resolve against itself: siblings
// from a random history plus two fuzzer-chosen documents, resolved in the
// given order, reversed and rotated, must give the same result.
func FuzzResolve(f *testing.F) {
	f.Add(uint64(1), uint8(4), `{"a":1}`, `{"a":2,"p":3}`, uint8(3), int64(0))
	f.Add(uint64(2), uint8(6), `[1]`, `{"c":{"x":1}}`, uint8(4), int64(1e8))
	f.Add(uint64(3), uint8(2), `"s"`, `raw`, uint8(5), int64(-1e6))
	f.Fuzz(func(t *testing.T, seed uint64, n uint8, doc1, doc2 string, pol uint8, nowOff int64) {
		r := rand.New(rand.NewPCG(seed, 4))
		h := randomHistory(t, r, 2+r.IntN(5))
		for i, doc := range []string{doc1, doc2} {
			if _, err := CanonicalJSON([]byte(doc)); err != nil {
				doc = "raw:" + doc
			}
			if doc == "raw:" {
				doc = "" // a delete
			}
			h.write([]DeviceID{"f1", "f2"}[i], doc, time.Second, r.IntN(len(h.all)))
		}
		k := 1 + int(n)%6
		var pick []int
		pick = append(pick, len(h.all)-1, len(h.all)-2)
		for len(pick) < k {
			pick = append(pick, r.IntN(len(h.all)))
		}
		sibs := h.sibs(pick...)
		p := propertyPolicies[int(pol)%len(propertyPolicies)]
		now := t0.Add(time.Duration(nowOff) * time.Millisecond)
		want, err := Resolve(p, sibs, now)
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
		ws := summary(t, sibs, want)
		rev := slices.Clone(sibs)
		slices.Reverse(rev)
		rot := append(slices.Clone(sibs[1:]), sibs[0])
		for _, alt := range [][]Sibling{rev, rot} {
			got, err := Resolve(p, alt, now)
			if err != nil {
				t.Fatalf("resolve permuted: %v", err)
			}
			if gs := summary(t, alt, got); gs != ws {
				t.Fatalf("order changed the result:\n got %s\nwant %s", gs, ws)
			}
		}
	})
}
