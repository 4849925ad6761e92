package session

import (
	"fmt"
	"testing"

	"github.com/meshsync/meshsync/merkle"
)

// seqSource is a Source of n envelopes numbered 1..n that counts the envelopes it hands
// out.
type seqSource struct {
	n    uint64
	read int
}

var _ Source = (*seqSource)(nil)

func (s *seqSource) Position() ([16]byte, uint64, error) { return [16]byte{}, s.n, nil }

func (s *seqSource) SinceUpTo(after, upto uint64, limit int, fn func(uint64, []byte) error) (uint64, error) {
	last, k := after, 0
	for seq := after + 1; seq <= min(upto, s.n); seq++ {
		if limit > 0 && k >= limit {
			break
		}
		s.read++
		if err := fn(seq, []byte(fmt.Sprint(seq))); err != nil {
			return last, err
		}
		last, k = seq, k+1
	}
	return last, nil
}

func (s *seqSource) Envelopes([]merkle.ID, func([]byte) error) error { return nil }

func (s *seqSource) Ordered(merkle.ID, bool, uint64, int, func(merkle.ID, []uint64, [][]byte) error) (merkle.ID, bool, error) {
	return merkle.ID{}, false, nil
}

// echoes is an Echo over the ranges (from, to].
func echoes(rs ...[2]uint64) Echo {
	return func(seq uint64) (uint64, bool) {
		for _, r := range rs {
			if seq > r[0] && seq <= r[1] {
				return r[1], true
			}
		}
		return 0, false
	}
}

// TestCollectJumpsOverEchoes: a store whose 100,000 envelopes all came from the peer has
// nothing to send it back; the sender says so in one batch and reads one envelope per
// run of echoes, not each of them (before, a reconnect after an initial sync read the
// whole store).
func TestCollectJumpsOverEchoes(t *testing.T) {
	for _, c := range []struct {
		name       string
		echo       Echo
		wantSent   []string
		wantLast   uint64
		wantReadAt int // at most
	}{
		// One run of echoes covering the store: nothing to send, the range is covered.
		{"all echoes", echoes([2]uint64{0, 100000}), nil, 100000, 1},
		// Two runs with the peer's own writes between them and after them.
		{"runs", echoes([2]uint64{0, 50000}, [2]uint64{50002, 99998}), []string{"50001", "50002", "99999", "100000"}, 100000, 6},
		// No echoes: a batch is capped at batchMaxEnvs envelopes.
		{"none", nil, nil, batchMaxEnvs, batchMaxEnvs},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := &seqSource{n: 100000}
			envs, last, err := Collect(src, 0, 100000, Filter{Echo: c.echo})
			if err != nil {
				t.Fatal(err)
			}
			if last != c.wantLast {
				t.Errorf("last %d, want %d", last, c.wantLast)
			}
			if c.wantSent != nil {
				var got []string
				for _, e := range envs {
					got = append(got, string(e))
				}
				if fmt.Sprint(got) != fmt.Sprint(c.wantSent) {
					t.Errorf("sent %v, want %v", got, c.wantSent)
				}
			}
			if src.read > c.wantReadAt {
				t.Errorf("read %d envelopes, want at most %d", src.read, c.wantReadAt)
			}
		})
	}
}
