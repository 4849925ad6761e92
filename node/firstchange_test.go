package node

import (
	"testing"
	"time"
)

// TestFirstChangeAfterJoin: the first write on either device right after a pairing is
// readable on the other without any timer's help: retries and anti-entropy are an hour
// away, so only the pairing itself and the push can carry it.
func TestFirstChangeAfterJoin(t *testing.T) {
	slow := func(c *Config) {
		c.RetryMin, c.RetryMax, c.AntiEntropy = time.Hour, time.Hour, time.Hour
	}
	for _, dir := range []string{"inviter", "joiner"} {
		t.Run("put on the "+dir, func(t *testing.T) {
			a := newMeshWith(t, 1, slow)[0]
			cfg := testConfig(t, "b")
			slow(&cfg)
			b := joinWith(t, a, "b", cfg)
			t0 := time.Now()
			from, to := a, b
			if dir == "joiner" {
				from, to = b, a
			}
			if err := from.Put("notes", "first", []byte(`"hello"`)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the first change arrives", func() error { return hasValue(to, "notes", "first", `"hello"`) })
			t.Logf("first change after join: %v (logged, not asserted)", time.Since(t0))
		})
	}
}
