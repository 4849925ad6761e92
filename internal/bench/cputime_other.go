//go:build !unix

package bench

import "time"

// cpuTime is not measured where getrusage does not exist: CPU rows then read 0.
func cpuTime() time.Duration { return 0 }
