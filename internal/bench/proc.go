package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// This file reads what the kernel says about this process (Linux /proc): CPU time,
// context switches and resident memory. Elsewhere the readers return an error and the bench
// prints zeros.

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on every Linux
// architecture Go supports).
const userHZ = 100

// procCPU returns the user and system CPU time of this process from /proc/self/stat.
func procCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	// The command name (field 2) may hold spaces: count fields after its closing paren.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("read CPU time: malformed /proc/self/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("read CPU time: malformed /proc/self/stat")
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read CPU time: malformed /proc/self/stat")
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// statusFields reads the named numeric fields (first number of the line) of a
// /proc/…/status file.
func statusFields(path string, names ...string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		for _, n := range names {
			if k == n {
				fs := strings.Fields(v)
				if len(fs) > 0 {
					out[n], _ = strconv.ParseInt(fs[0], 10, 64)
				}
			}
		}
	}
	return out, sc.Err()
}

// procWakeups sums the voluntary context switches of every thread of this process: each
// is a thread going to sleep, so their count over a window is the number of wake-ups
// (plus the threads still asleep at its end).
func procWakeups() (int64, error) {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("read context switches: no /proc/self/task")
	}
	var sum int64
	for _, t := range tasks {
		m, err := statusFields(t, "voluntary_ctxt_switches")
		if err != nil {
			continue // the thread exited
		}
		sum += m["voluntary_ctxt_switches"]
	}
	return sum, nil
}

// memory is this process's resident memory, in bytes.
type memory struct{ RSS, Anon, File int64 }

func procMemory() (memory, error) {
	m, err := statusFields("/proc/self/status", "VmRSS", "RssAnon", "RssFile")
	if err != nil {
		return memory{}, fmt.Errorf("read resident memory: %w", err)
	}
	return memory{m["VmRSS"] << 10, m["RssAnon"] << 10, m["RssFile"] << 10}, nil
}

// cpuModel names the processor from /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// tcpPorts returns the TCP ports of addrs.
func tcpPorts(addrs []ma.Multiaddr) []int {
	var out []int
	for _, a := range addrs {
		if v, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			if p, err := strconv.Atoi(v); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// loadAvg returns the 1, 5 and 15 minute load averages (/proc/loadavg), or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
