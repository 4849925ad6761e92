package merkle

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPrintTable prints bytes and round trips for n × d. Run it with MESHSYNC_TABLE=1
// (MESHSYNC_TABLE="n,n d,d" picks other sizes).
func TestPrintTable(t *testing.T) {
	spec := os.Getenv("MESHSYNC_TABLE")
	if spec == "" {
		t.Skip("set MESHSYNC_TABLE=1 to print the cost table")
	}
	ns := []int{1000, 100_000, 1_000_000}
	ds := []int{0, 1, 10, 100, 1000, 10_000}
	if f := strings.Fields(spec); len(f) == 2 {
		ns, ds = ints(f[0]), ints(f[1])
	}
	seeds := 1
	if v, err := strconv.Atoi(os.Getenv("MESHSYNC_SEEDS")); err == nil {
		seeds = v
	}
	fmt.Printf("%9s %6s %10s %10s %10s %4s %6s %8s\n", "n", "d", "sent", "received", "total", "RT", "passes", "seconds")
	for _, n := range ns {
		for _, d := range ds {
			for seed := range seeds {
				start := time.Now()
				st, err := Simulate(n, d, int64(seed), Config{})
				if err != nil {
					t.Fatal(err)
				}
				fmt.Printf("%9d %6d %10d %10d %10d %4d %6d %8.2f\n", n, d, st.BytesSent, st.BytesReceived,
					st.BytesSent+st.BytesReceived, st.RoundTrips, st.Passes, time.Since(start).Seconds())
			}
		}
	}
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, _ := strconv.Atoi(f)
		out = append(out, v)
	}
	return out
}
