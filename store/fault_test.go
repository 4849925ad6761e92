package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshsync/meshsync/internal/testmode"
)

// The fault sweep (TESTPLAN row 3) runs a fixed store workload in a child process under
// strace, which fails the Nth call of one system call (pwrite64, fdatasync, fsync,
// ftruncate, fallocate, mmap) with EIO or ENOSPC, for N = 1, 2, 3, … until the workload
// completes without reaching call N. Each faulted run must end with an error (no panic, no
// crash), the store must reopen and verify clean in this process, every acknowledged write
// must be there, and every batch must be there whole or not at all.
//
// The child locks its main goroutine to the main thread (strace counts calls per thread,
// and every store call of the workload then runs on that thread).

func init() {
	if dir := os.Getenv("MESHSYNC_FAULT_CHILD"); dir != "" {
		runtime.LockOSThread()
		testmode.Enable()
		os.Exit(faultWorkload(dir, os.Stdout))
	}
	// scripts/dm-flakey.sh drives the test binary: MESHSYNC_FAULT_INIT creates a store,
	// MESHSYNC_CRASH_CHILD (crash_test.go) writes to it printing each acknowledged write,
	// and MESHSYNC_FAULT_CHECK verifies it against that log (MESHSYNC_FAULT_ACKED).
	if dir := os.Getenv("MESHSYNC_FAULT_INIT"); dir != "" {
		testmode.Enable()
		s, err := Init(dir, testPass, testOpts("flakey"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		s.Close()
		os.Exit(0)
	}
	if dir := os.Getenv("MESHSYNC_FAULT_CHECK"); dir != "" {
		testmode.Enable()
		os.Exit(checkAckLog(dir, os.Getenv("MESHSYNC_FAULT_ACKED")))
	}
}

// checkAckLog opens and verifies the store in dir and checks that every write in the log
// (lines "KEY I" as crashChild prints them) is there, holding write I or a later one.
func checkAckLog(dir, log string) int {
	b, err := os.ReadFile(log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := Open(dir, testPass, nil)
	if err != nil {
		fmt.Println("FAIL reopen:", err)
		return 1
	}
	defer s.Close()
	rep, err := s.Verify()
	if err != nil || !rep.OK() {
		fmt.Println("FAIL verify:", err, rep)
		return 1
	}
	acked := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		var key string
		var i int
		if n, _ := fmt.Sscan(l, &key, &i); n == 2 {
			acked[key] = max(acked[key], i)
		}
	}
	for key, i := range acked {
		rec, err := s.Get("c", key)
		if err != nil {
			fmt.Printf("FAIL acknowledged write %s (%d) lost: %v\n", key, i, err)
			return 1
		}
		var got int
		fmt.Sscanf(string(rec.Value), `{"i":%d`, &got)
		if got < i {
			fmt.Printf("FAIL %s holds write %d, acknowledged %d\n", key, got, i)
			return 1
		}
	}
	fmt.Printf("ok %d records, %d acknowledged keys present\n", rep.Records, len(acked))
	return 0
}

const (
	faultRounds    = 5  // rounds of one single put and one batch
	faultBatchKeys = 12 // keys per batch
	faultPad       = 2000
)

// faultWorkload opens the store in dir and writes faultRounds rounds of one single put and
// one batch, printing "ack KEY" after each commit. On the first error it prints "ERR
// diskfull=BOOL MSG", checks in the same process that the store still reads and verifies
// ("readable ok"), retries the failed write once ("retry ok"), and returns 4. It returns 0
// ("done") when every write succeeded.
func faultWorkload(dir string, out io.Writer) int {
	w := bufio.NewWriter(out)
	defer w.Flush()
	s, err := Open(dir, testPass, nil)
	if err != nil {
		fmt.Fprintf(w, "ERR diskfull=%v open: %v\n", errors.Is(err, ErrDiskFull), oneLine(err))
		return 4
	}
	defer s.Close()
	var acked []string
	for r := 0; r < faultRounds; r++ {
		single := fmt.Sprintf("p%d", r)
		keys := make([]string, faultBatchKeys)
		for j := range keys {
			keys[j] = fmt.Sprintf("b%d-%d", r, j)
		}
		writes := []struct {
			keys []string
			do   func() error
		}{
			{[]string{single}, func() error { return s.Put("c", single, []byte(fmt.Sprintf(`{"r":%d}`, r))) }},
			{keys, func() error {
				return s.Update(func(t *Tx) error {
					for _, k := range keys {
						v := fmt.Sprintf(`{"r":%d,"pad":"%s"}`, r, strings.Repeat(k[:1], faultPad))
						if err := t.Put("c", k, []byte(v)); err != nil {
							return err
						}
					}
					return nil
				})
			}},
		}
		for _, wr := range writes {
			if err := wr.do(); err != nil {
				fmt.Fprintf(w, "ERR diskfull=%v %v\n", errors.Is(err, ErrDiskFull), oneLine(err))
				w.Flush()
				if rep, verr := s.Verify(); verr == nil && rep.OK() && readsBack(s, acked) {
					fmt.Fprintln(w, "readable ok")
				} else {
					fmt.Fprintf(w, "readable FAILED %v %v\n", verr, rep)
				}
				if err := wr.do(); err == nil {
					fmt.Fprintln(w, "retry ok")
					for _, k := range wr.keys {
						fmt.Fprintln(w, "ack", k)
					}
				} else {
					fmt.Fprintf(w, "retry FAILED %v\n", oneLine(err))
				}
				return 4
			}
			for _, k := range wr.keys {
				fmt.Fprintln(w, "ack", k)
				acked = append(acked, k)
			}
			w.Flush()
		}
	}
	fmt.Fprintln(w, "done")
	return 0
}

func readsBack(s *Store, keys []string) bool {
	for _, k := range keys {
		if _, err := s.Get("c", k); err != nil {
			return false
		}
	}
	return true
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// checkFaultStore opens the store in dir (in this process, not the child that wrote it),
// verifies it, and checks that every acknowledged key is present and every batch is
// present whole or not at all.
func checkFaultStore(dir string, acked []string) error {
	s, err := Open(dir, testPass, nil)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer s.Close()
	rep, err := s.Verify()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !rep.OK() {
		return fmt.Errorf("verify: %v", rep.Problems)
	}
	for _, k := range acked {
		if _, err := s.Get("c", k); err != nil {
			return fmt.Errorf("acknowledged write %s: %w", k, err)
		}
	}
	for r := 0; r < faultRounds; r++ {
		n := 0
		for j := 0; j < faultBatchKeys; j++ {
			rec, err := s.Get("c", fmt.Sprintf("b%d-%d", r, j))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !bytes.Contains(rec.Value, []byte(fmt.Sprintf(`"r":%d`, r))) {
				return fmt.Errorf("batch %d key %d holds %.40s", r, j, rec.Value)
			}
			n++
		}
		if n != 0 && n != faultBatchKeys {
			return fmt.Errorf("partial batch %d: %d of %d keys", r, n, faultBatchKeys)
		}
	}
	return nil
}

// faultRun is the outcome of one child run under strace.
type faultRun struct {
	injected   bool   // strace failed a call
	injectLine string // the failed call as strace printed it
	exit       int
	acked      []string
	errLine    string
	diskFull   bool
	readable   bool
	retried    bool
	done       bool
	output     string
	trace      string
}

// runFaultChild copies the template store to a fresh directory and runs the workload there
// under strace, failing the when-th call of sys with errno (no injection when when is 0).
func runFaultChild(t *testing.T, strace, template, sys, errno string, when int) (faultRun, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(template, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(dir, "trace")
	args := []string{"-f", "-qq", "-o", trace, "-e", "trace=" + sys}
	if when > 0 {
		args = append(args, "-e", fmt.Sprintf("inject=%s:error=%s:when=%d", sys, errno, when))
	}
	args = append(args, os.Args[0], "-test.run=^$")
	cmd := exec.Command(strace, args...)
	cmd.Env = append(os.Environ(), "MESHSYNC_FAULT_CHILD="+dir, "GOMAXPROCS=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var run faultRun
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		run.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("strace: %v", err)
	}
	run.output = stdout.String() + stderr.String()
	for _, l := range strings.Split(stdout.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "ack "):
			run.acked = append(run.acked, strings.TrimPrefix(l, "ack "))
		case strings.HasPrefix(l, "ERR "):
			run.errLine = l
			run.diskFull = strings.HasPrefix(l, "ERR diskfull=true")
		case l == "readable ok":
			run.readable = true
		case l == "retry ok":
			run.retried = true
		case l == "done":
			run.done = true
		}
	}
	tb, _ := os.ReadFile(trace)
	for _, l := range strings.Split(string(tb), "\n") {
		if strings.Contains(l, "(INJECTED)") {
			run.injected, run.injectLine = true, l
		}
	}
	run.trace = string(tb)
	run.output += "\ntrace:\n" + tailLines(run.trace, 12)
	return run, dir
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// faultPoint is one sweep: a system call, the errno it fails with, and a stride (1: every
// call; the PR run strides the long pwrite64 and fdatasync sweeps).
type faultPoint struct {
	sys, errno string
	stride     int
}

// TestFaultNthCall runs the row-3 sweep (about 40 s with -race). MESHSYNC_FAULTS=full
// fails every call instead of striding, and adds fsync=ENOSPC and mmap=EIO. A fault that
// lands in Open (which commits once, pruning the conflict history) fails Open; those runs
// are counted apart and need only a clean error and a clean reopen.
func TestFaultNthCall(t *testing.T) {
	if testing.Short() {
		t.Skip("fault sweep runs a child process per fault")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed (apt-get install -y strace)")
	}
	if out, err := exec.Command(strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=getpid", "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot trace here (ptrace not permitted?): %v %s", err, out)
	}
	full := os.Getenv("MESHSYNC_FAULTS") == "full"
	points := []faultPoint{
		{"pwrite64", "EIO", 5}, {"pwrite64", "ENOSPC", 11},
		{"fdatasync", "EIO", 1}, {"fdatasync", "ENOSPC", 3},
		{"fsync", "EIO", 1}, {"ftruncate", "ENOSPC", 1}, {"ftruncate", "EIO", 1},
		{"fallocate", "ENOSPC", 1}, {"mmap", "ENOMEM", 1},
	}
	if full {
		for i := range points {
			points[i].stride = 1
		}
		points = append(points, faultPoint{"fsync", "ENOSPC", 1}, faultPoint{"mmap", "EIO", 1})
	}
	template := filepath.Join(t.TempDir(), "template")
	s, err := Init(template, testPass, testOpts("fault"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	start := time.Now()
	total := 0
	var summary []string
	for _, p := range points {
		clean, _ := runFaultChild(t, strace, template, p.sys, p.errno, 0)
		if clean.exit != 0 || !clean.done {
			t.Fatalf("%s: the workload fails without faults: exit %d\n%s", p.sys, clean.exit, clean.output)
		}
		calls := targetCalls(clean.trace, p.sys)
		if len(calls) == 0 {
			summary = append(summary, fmt.Sprintf("%s/%s: not called by the workload", p.sys, p.errno))
			continue
		}
		covered, missed, openFaults := 0, 0, 0
		example := "" // the error of the last fault injected in a write
		lastN := 0
		for i := 0; i < len(calls); i += p.stride {
			n := calls[i]
			var run faultRun
			var dir string
			// The Go runtime maps its own memory too, not always in the same order: an mmap
			// fault that lands on the runtime's map (or on nothing) is tried again.
			for try := 0; try < 3; try++ {
				run, dir = runFaultChild(t, strace, template, p.sys, p.errno, n)
				if run.injected && (p.sys != "mmap" || strings.Contains(run.injectLine, "MAP_SHARED")) {
					break
				}
				os.RemoveAll(dir)
				if p.sys != "mmap" {
					break
				}
			}
			if !run.injected || (p.sys == "mmap" && !strings.Contains(run.injectLine, "MAP_SHARED")) {
				missed++ // the call count moved: this point was not reached
				continue
			}
			covered++
			lastN = n
			label := fmt.Sprintf("%s=%s at call %d (%s)", p.sys, p.errno, n, strings.TrimSpace(run.injectLine))
			if run.exit != 4 || run.errLine == "" {
				t.Errorf("%s: want a clean error (exit 4), got exit %d\n%s", label, run.exit, run.output)
				continue
			}
			if strings.HasPrefix(run.errLine, "ERR diskfull=false open: ") || strings.HasPrefix(run.errLine, "ERR diskfull=true open: ") {
				// The fault hit Open: it commits once (pruneHistory), so Open itself fails
				// on a full disk. Nothing to read back or retry; the store must reopen.
				openFaults++
				if err := checkFaultStore(dir, run.acked); err != nil {
					t.Errorf("%s: %v\n%s", label, err, run.output)
				}
				continue
			}
			example = run.errLine
			if !run.readable {
				t.Errorf("%s: the store did not read back after the error\n%s", label, run.output)
			}
			if !run.retried {
				t.Errorf("%s: the write failed again once the fault passed\n%s", label, run.output)
			}
			if p.errno == "ENOSPC" && !run.diskFull {
				t.Errorf("%s: error is not ErrDiskFull: %s", label, run.errLine)
			}
			if p.errno == "ENOSPC" && !strings.Contains(run.errLine, "disk full") {
				t.Errorf("%s: error does not say disk full: %s", label, run.errLine)
			}
			if err := checkFaultStore(dir, run.acked); err != nil {
				t.Errorf("%s: %v\n%s", label, err, run.output)
			}
			os.RemoveAll(dir)
		}
		total += covered
		summary = append(summary, fmt.Sprintf("%s/%s: %d calls in the workload, %d faults injected (N=%d..%d, stride %d; %d of them failed Open), %d not reached",
			p.sys, p.errno, len(calls), covered, calls[0], lastN, p.stride, openFaults, missed))
		if example != "" {
			summary = append(summary, "    e.g. "+example[:min(len(example), 220)])
		}
	}
	for _, l := range summary {
		t.Log(l)
	}
	t.Logf("%d fault points covered in %v (MESHSYNC_FAULTS=full for every call)", total, time.Since(start).Round(time.Second))
}

// targetCalls lists the call numbers (1-based, counted per thread as strace counts for
// inject, on the thread that runs the workload) worth failing: every call, except for mmap
// only the calls that map the database file (MAP_SHARED; the Go runtime's maps are private).
func targetCalls(trace, sys string) []int {
	var main string // the thread that ran the workload: the one that maps the file
	lines := strings.Split(trace, "\n")
	for _, l := range lines {
		if strings.Contains(l, "MAP_SHARED") || (sys != "mmap" && strings.Contains(l, sys+"(")) {
			main, _, _ = strings.Cut(l, " ")
			break
		}
	}
	var calls []int
	n := 0
	for _, l := range lines {
		pid, rest, ok := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		if !ok || pid != main || !strings.HasPrefix(rest, sys+"(") {
			continue
		}
		n++
		if sys != "mmap" || strings.Contains(rest, "MAP_SHARED") {
			calls = append(calls, n)
		}
	}
	return calls
}
