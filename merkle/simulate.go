package merkle

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Stats describes one reconciliation run.
type Stats struct {
	BytesSent     int // initiator → responder
	BytesReceived int // responder → initiator
	Messages      int // in both directions
	RoundTrips    int // Messages/2, rounded up
	Passes        int // 1, or more when a truncated fingerprint collided
}

// Exchange runs two sessions against each other in memory until both are done, and
// reports what went over the wire. a must be an initiator and b a responder.
func Exchange(a, b *Session) (Stats, error) {
	var st Stats
	msg, err := a.Start()
	if err != nil {
		return st, fmt.Errorf("exchange: %w", err)
	}
	toB := true
	for msg != nil {
		st.Messages++
		if toB {
			st.BytesSent += len(msg)
			msg, err = b.Handle(msg)
		} else {
			st.BytesReceived += len(msg)
			msg, err = a.Handle(msg)
		}
		if err != nil {
			return st, fmt.Errorf("exchange: %w", err)
		}
		toB = !toB
	}
	st.RoundTrips = (st.Messages + 1) / 2
	st.Passes = a.pass + 1
	if !a.Done() || !b.Done() {
		return st, fmt.Errorf("exchange: ended with initiator done=%v, responder done=%v: %w", a.Done(), b.Done(), ErrProtocol)
	}
	return st, nil
}

// Simulate builds two in-memory sets that share n items and differ in d ids (a third
// only in the first set, a third only in the second, a third in both with different
// digests), reconciles them and checks that both sides found exactly the symmetric
// difference. The sets are generated from seed.
func Simulate(n, d int, seed int64, cfg Config) (Stats, error) {
	if n < 0 || d < 0 {
		return Stats{}, fmt.Errorf("simulate: negative size n=%d d=%d", n, d)
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], uint64(seed))
	rng := rand.New(rand.NewChaCha8(key))
	random := func() (it Item) {
		for i := 0; i < 32; i += 8 {
			binary.LittleEndian.PutUint64(it.ID[i:], rng.Uint64())
			binary.LittleEndian.PutUint64(it.Digest[i:], rng.Uint64())
		}
		return it
	}
	items := make([]Item, n, n+d)
	for i := range items {
		items[i] = random()
	}
	var onlyA, onlyB, changed []Item // changed: the digest the second set holds
	for i := range d {
		it := random()
		switch i % 3 {
		case 0:
			onlyA = append(onlyA, it)
		case 1:
			onlyB = append(onlyB, it)
		default:
			changed = append(changed, it)
		}
	}
	a := NewMemFrom(append(append(items, onlyA...), changed...))
	items = nil
	b := a.Clone()
	for _, it := range onlyA {
		b.Remove(it.ID)
	}
	for _, it := range onlyB {
		b.Insert(it)
	}
	for _, it := range changed {
		it.Digest[0] ^= 1
		b.Insert(it)
	}
	ia, rb := NewInitiator(a, cfg), NewResponder(b, cfg)
	st, err := Exchange(ia, rb)
	if err != nil {
		return st, fmt.Errorf("simulate n=%d d=%d seed=%d: %w", n, d, seed, err)
	}
	wantNeedA := idsOf(onlyB, changed)
	wantHaveA := idsOf(onlyA, changed)
	needA, haveA := ia.Result()
	needB, haveB := rb.Result()
	for _, c := range []struct {
		name      string
		got, want []ID
	}{
		{"initiator need", needA, wantNeedA},
		{"initiator have", haveA, wantHaveA},
		{"responder need", needB, wantHaveA},
		{"responder have", haveB, wantNeedA},
	} {
		if !slices.Equal(c.got, c.want) {
			return st, fmt.Errorf("simulate n=%d d=%d seed=%d: %s: got %d ids, want %d: %w",
				n, d, seed, c.name, len(c.got), len(c.want), ErrMismatch)
		}
	}
	return st, nil
}

func idsOf(lists ...[]Item) []ID {
	var out []ID
	for _, l := range lists {
		for _, it := range l {
			out = append(out, it.ID)
		}
	}
	slices.SortFunc(out, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(out)
}
