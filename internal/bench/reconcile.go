package bench

import (
	"errors"
	"fmt"

	"github.com/meshsync/meshsync/merkle"
)

// Reconcile reconciles two in-memory sets that share n items and differ in d, split
// between both sides (merkle.Simulate), and returns the bytes, round trips and CPU time.
func Reconcile(n, d int, seed int64) (ReconcileRow, error) {
	if n < 0 || d < 0 {
		return ReconcileRow{}, errors.New("reconcile: n and d must not be negative")
	}
	start := cpuTime()
	st, err := merkle.Simulate(n, d, seed, merkle.Config{})
	if err != nil {
		return ReconcileRow{}, fmt.Errorf("reconcile n=%d d=%d: %w", n, d, err)
	}
	return ReconcileRow{N: n, D: d, BytesSent: st.BytesSent, BytesReceived: st.BytesReceived,
		RoundTrips: st.RoundTrips, Seconds: (cpuTime() - start).Seconds()}, nil
}

// ReconcileTable runs Reconcile over n ∈ {1e3, 1e5, 1e6} × d ∈ {0, 1, 10, 100, 1000, 10000}.
func ReconcileTable(seed int64) ([]ReconcileRow, error) {
	var rows []ReconcileRow
	for _, n := range []int{1000, 100000, 1000000} {
		for _, d := range []int{0, 1, 10, 100, 1000, 10000} {
			r, err := Reconcile(n, d, seed)
			if err != nil {
				return nil, err
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}
