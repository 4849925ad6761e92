package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/meshsync/meshsync/internal/bench"
	"github.com/meshsync/meshsync/store"
)

type benchCmd struct {
	Sync      benchSyncCmd      `cmd:"" default:"withargs" help:"Run real nodes on loopback and print every figure beside the limit measured in the same run (the default)."`
	Reconcile benchReconcileCmd `cmd:"" help:"Reconcile two in-memory sets and print bytes, round trips and CPU time."`
}

// benchSyncCmd is `meshsync bench` (also `meshsync bench sync`): real nodes on loopback
// with real bbolt files in a temporary directory, every figure beside a limit measured in
// the same run (internal/bench).
type benchSyncCmd struct {
	Records      int           `help:"Records a fresh device receives; the incremental rows share as many." default:"100000"`
	Size         int           `help:"Bytes of each record's value." default:"1024"`
	Changes      int           `help:"Records changed for the incremental rows (d)." default:"10"`
	Writes       int           `help:"Writes timed for the push row." default:"1000"`
	Idle         time.Duration `help:"Window over which the idle nodes' CPU time and wake-ups are counted." default:"60s"`
	CPUProfile   string        `name:"cpuprofile" help:"Write a CPU profile of the whole run to FILE (go tool pprof)." placeholder:"FILE"`
	BlockProfile string        `name:"blockprofile" help:"Write a profile of where goroutines blocked (channels, locks, selects) during the run to FILE." placeholder:"FILE"`
	MutexProfile string        `name:"mutexprofile" help:"Write a profile of contended mutexes during the run to FILE." placeholder:"FILE"`
	ProfileDir   string        `name:"profile-dir" help:"Write a CPU, block and mutex profile of each phase (fill, initial_sync, reconnect, incremental, push) to DIR/PHASE.{cpu,block,mutex}." placeholder:"DIR"`
	Keep         bool          `help:"Keep the temporary directory (the nodes' stores)."`
	Verbose      bool          `help:"Log what the nodes do to stderr (debug level)."`
}

// Run measures every row and prints the table.
func (c *benchSyncCmd) Run(ctx context.Context, g *globals) error {
	switch {
	case c.Records < 1:
		return usagef("--records must be at least 1")
	case c.Size < 1 || c.Size > store.MaxValueSize:
		return usagef("--size must be between 1 and %d", store.MaxValueSize)
	case c.Changes < 1 || c.Changes > c.Records:
		return usagef("--changes must be between 1 and --records")
	case c.Writes < 1:
		return usagef("--writes must be at least 1")
	case c.Idle < 0:
		return usagef("--idle must not be negative")
	case c.CPUProfile != "" && c.ProfileDir != "":
		return usagef("--cpuprofile and --profile-dir exclude each other (one CPU profile at a time): choose one")
	}
	stopProfiles, err := c.startProfiles()
	if err != nil {
		return err
	}
	defer stopProfiles()
	dir, err := os.MkdirTemp("", "meshsync-bench-")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if c.Keep {
		fmt.Fprintln(g.stderr, "bench: files kept in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	o := bench.Options{Records: c.Records, Size: c.Size, Changes: c.Changes, Writes: c.Writes,
		Idle: c.Idle, Dir: dir, Progress: g.stderr}
	if c.ProfileDir != "" {
		if err := os.MkdirAll(c.ProfileDir, 0o755); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		o.Profile = func(phase string) func() { return phaseProfile(c.ProfileDir, phase, g.stderr) }
	}
	if c.Verbose {
		o.Logger = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rows, err := bench.Run(ctx, o)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if g.JSON {
		for _, row := range rows {
			if err := g.print(row, nil); err != nil {
				return err
			}
		}
		return nil
	}
	return g.print(nil, func(w io.Writer) { bench.WriteTable(w, rows, c.Size) })
}

type benchReconcileCmd struct {
	N     int   `help:"Items the two sets share." default:"1000000"`
	D     int   `help:"Differences, split between both sides." default:"10"`
	Seed  int64 `help:"Random seed." default:"1"`
	Table bool  `help:"Print the whole table n ∈ {1e3,1e5,1e6} × d ∈ {0,1,10,100,1000,10000} instead."`
}

func (c *benchReconcileCmd) Run(g *globals) error {
	if c.N < 0 || c.D < 0 {
		return usagef("--n and --d must not be negative")
	}
	var rows []bench.ReconcileRow
	if c.Table {
		all, err := bench.ReconcileTable(c.Seed)
		if err != nil {
			return err
		}
		rows = all
	} else {
		r, err := bench.Reconcile(c.N, c.D, c.Seed)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	if g.JSON {
		for _, r := range rows {
			if err := g.print(r, nil); err != nil {
				return err
			}
		}
		return nil
	}
	return g.print(nil, func(w io.Writer) { bench.WriteReconcileTable(w, rows) })
}

// startProfiles starts the whole-run profiles the flags ask for and returns what writes
// and stops them.
func (c *benchSyncCmd) startProfiles() (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return stop, fmt.Errorf("bench: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return stop, fmt.Errorf("bench: %w", err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	for _, p := range []struct{ file, name string }{{c.BlockProfile, "block"}, {c.MutexProfile, "mutex"}} {
		if p.file == "" {
			continue
		}
		f, err := os.Create(p.file)
		if err != nil {
			stop()
			return func() {}, fmt.Errorf("bench: %w", err)
		}
		setProfileRate(p.name, true)
		stops = append(stops, func() {
			pprof.Lookup(p.name).WriteTo(f, 0)
			f.Close()
			setProfileRate(p.name, false)
		})
	}
	return stop, nil
}

// setProfileRate turns the block or mutex profile on (every event) or off.
func setProfileRate(name string, on bool) {
	rate := 0
	if on {
		rate = 1
	}
	if name == "block" {
		runtime.SetBlockProfileRate(rate)
	} else {
		runtime.SetMutexProfileFraction(rate)
	}
}

// phaseProfile starts a CPU, block and mutex profile of one bench phase in dir and
// returns what writes them; it writes once, however often it is called. A file it cannot
// write is reported on stderr and does not stop the bench.
func phaseProfile(dir, phase string, stderr io.Writer) func() {
	warn := func(err error) { fmt.Fprintf(stderr, "bench: profile of %s: %v\n", phase, err) }
	cpu, err := os.Create(filepath.Join(dir, phase+".cpu"))
	if err == nil {
		if err = pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			cpu = nil
		}
	}
	if err != nil {
		warn(err)
	}
	setProfileRate("block", true)
	setProfileRate("mutex", true)
	var once sync.Once
	return func() {
		once.Do(func() {
			if cpu != nil {
				pprof.StopCPUProfile()
				cpu.Close()
			}
			for _, name := range []string{"block", "mutex"} {
				f, err := os.Create(filepath.Join(dir, phase+"."+name))
				if err == nil {
					err = errors.Join(pprof.Lookup(name).WriteTo(f, 0), f.Close())
				}
				if err != nil {
					warn(err)
				}
				setProfileRate(name, false)
			}
		})
	}
}
