package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// warmChunk is what warmMemory writes at a time.
const warmChunk = 1 << 20

// warmMemory writes n bytes to a scratch file in dir, unsynced, and removes it, so that the
// next writes of the run take memory the machine has touched lately: the kernel hands a
// file's freed pages out again first. It returns how fast the scratch file was written.
//
// Why: on a virtual machine whose host backs guest memory lazily and takes freed pages
// back (free page reporting, as on the CI machine), the first write into a page the guest
// has not touched lately costs a fault on the host. There a 16 KiB pwrite into the page
// cache took 5–6 µs on recently used memory and 33–43 µs on fresh memory, so a bbolt
// write of a million records ran at 170k to 415k records/s depending only on what the
// run before had freed, and the initial sync slowed down halfway through when it ran out
// of recently used pages. A device's own memory has no such cost. Warming as much memory
// as each measured write phase fills (the fill, the bbolt limit, the initial sync)
// measures the limit and the nodes on the same kind of memory, whatever ran before.
func warmMemory(dir string, n int64) (mbPerS float64, err error) {
	if n <= 0 {
		return 0, nil
	}
	f, err := os.CreateTemp(dir, "warm-*")
	if err != nil {
		return 0, fmt.Errorf("warm memory: %w", err)
	}
	name := f.Name()
	defer os.Remove(name)
	buf := make([]byte, warmChunk)
	for i := range buf {
		buf[i] = byte(i) | 1 // not a zero page: every page of it is written
	}
	t0 := time.Now()
	for left := n; left > 0; left -= warmChunk {
		if _, err = f.Write(buf[:min(left, warmChunk)]); err != nil {
			f.Close()
			return 0, fmt.Errorf("warm memory: write %s: %w (the bench needs about %d MiB free in %s)", filepath.Base(name), err, n>>20, dir)
		}
	}
	el := time.Since(t0)
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("warm memory: %w", err)
	}
	if err := os.Remove(name); err != nil {
		return 0, fmt.Errorf("warm memory: %w", err)
	}
	return float64(n) / (1 << 20) / max(el.Seconds(), 1e-9), nil
}
