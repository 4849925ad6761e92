package bench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/meshsync/meshsync/store"
)

// rest counts the CPU time and wake-ups of the two connected, idle nodes; the resident
// memory of B alone (A closed), as it stands after the sync and after a restart; its
// bytes on disk; and, for comparison, the wake-ups of the same process with no node open.
func (r *run) rest(ctx context.Context) error {
	o := r.o
	r.log("rest: %s with both nodes idle", o.Idle)
	idle, cpu, wk, err := idleWindow(ctx, o.Idle)
	if err != nil {
		return err
	}
	root, err := r.b.Store().Replication().Root()
	if err != nil {
		return err
	}
	r.log("footprint: where B's bytes on disk go")
	fp, err := r.b.Store().Replication().Footprint()
	if err != nil {
		return err
	}
	fi, err := os.Stat(filepath.Join(r.b.Store().Dir(), store.FileName))
	if err != nil {
		return err
	}
	if err := r.a.Close(); err != nil {
		return err
	}
	r.a = nil
	mem := settledMemory(r.log)
	held := int(max(1, root.Count))
	row := RestRow{Row: "rest", Records: held, RSSBytes: mem.RSS, RSSAnonBytes: mem.Anon, RSSFileBytes: mem.File,
		DiskBytes: fi.Size(), DiskBytesPerRec: float64(fi.Size()) / float64(held), IdleNodes: 2,
		IdleSeconds: idle.Seconds(), IdleCPUSeconds: cpu.Seconds(), IdleWakeups: wk,
		WakeupsSource: "voluntary context switches of every thread of the process (/proc/self/task/*/status), both nodes"}
	if idle > 0 {
		row.IdleCPUFraction = cpu.Seconds() / idle.Seconds()
		row.IdleWakeupsPerMin = float64(wk) / idle.Minutes()
	}

	r.log("rest: B restarted alone")
	if _, err := r.reopenB(ctx); err != nil {
		return err
	}
	if err := r.b.Start(ctx); err != nil {
		return err
	}
	mem = settledMemory(r.log)
	row.RSSRestartedBytes, row.RSSRestartedFileBytes = mem.RSS, mem.File
	if err := r.b.Close(); err != nil {
		return err
	}
	r.b = nil
	fpRow := footprintRow(fp, o.Size)
	if err := r.compacted(ctx, &fpRow); err != nil {
		return err
	}

	base := min(o.Idle, 10*time.Second)
	r.log("rest: %s with no node open (the Go runtime alone)", base)
	runtime.GC()
	if idle, cpu, wk, err = idleWindow(ctx, base); err != nil {
		return err
	}
	if idle > 0 {
		row.BaselineCPUFraction = cpu.Seconds() / idle.Seconds()
		row.BaselineWakeupsPerMin = float64(wk) / idle.Minutes()
	}
	r.rows = append(r.rows, row, fpRow)
	return nil
}

// compacted compacts B's store (closed) and adds its footprint afterwards to row.
func (r *run) compacted(ctx context.Context, row *FootprintRow) error {
	r.log("footprint: B's store compacted")
	t0 := time.Now()
	if _, err := store.Compact(r.config("b").Dir, nil); err != nil {
		return err
	}
	row.CompactSeconds = time.Since(t0).Seconds()
	if _, err := r.reopenB(ctx); err != nil {
		return err
	}
	fp, err := r.b.Store().Replication().Footprint()
	if cerr := r.b.Close(); err == nil {
		err = cerr
	}
	r.b = nil
	if err != nil {
		return err
	}
	c := footprintRow(fp, row.ValueBytes)
	row.CompactedPerRecord, row.CompactedFill, row.CompactedFree, row.CompactedOther = c.PerRecord, c.Fill, c.Free, c.Other
	row.CompactedEnvelopeFill, row.CompactedIndexFill, row.CompactedMerkleFill = c.EnvelopeFillRate, c.IndexFillRate, c.MerkleFillRate
	row.CompactedPageSize = c.PageSize
	return nil
}

// footprintRow sets a store's footprint out per record.
func footprintRow(fp store.Footprint, size int) FootprintRow {
	n := float64(max(1, fp.Records))
	per := func(b int64) float64 { return float64(b) / n }
	rate := func(b store.BucketFootprint) float64 { return float64(b.InuseBytes) / float64(max(1, b.AllocBytes)) }
	// The record index (bucket "items", layout 3); "ids" and "coll" are the indexes of the
	// layout before it (zero in a store of today's layout).
	env, ids, coll, tree := fp.Buckets["env"], fp.Buckets["items"], fp.Buckets["coll"], fp.Buckets["tree"]
	ids.InuseBytes += fp.Buckets["ids"].InuseBytes
	ids.AllocBytes += fp.Buckets["ids"].AllocBytes
	var inuse, alloc int64
	for _, b := range fp.Buckets {
		inuse += b.InuseBytes
		alloc += b.AllocBytes
	}
	envBytes := fp.EnvelopeHeaderBytes + fp.CiphertextBytes
	row := FootprintRow{Row: "footprint", Records: fp.Records, Envelopes: fp.Envelopes, FileBytes: fp.FileBytes,
		PerRecord: per(fp.FileBytes), EnvelopeHeader: per(fp.EnvelopeHeaderBytes), Ciphertext: per(fp.CiphertextBytes),
		ValueBytes: size, IndexEntries: per(ids.InuseBytes + coll.InuseBytes), MerkleNodes: per(tree.InuseBytes),
		EnvelopePages: per(env.InuseBytes - envBytes), Fill: per(alloc - inuse), Free: per(fp.FreeBytes),
		EnvelopeFillRate: rate(env), IndexFillRate: rate(ids), MerkleFillRate: rate(tree), PageSize: fp.PageSize}
	row.Other = row.PerRecord - row.EnvelopeHeader - row.Ciphertext - row.IndexEntries - row.MerkleNodes -
		row.EnvelopePages - row.Fill - row.Free
	return row
}

// idleWindow waits d and returns the CPU time and voluntary context switches of the
// process meanwhile.
func idleWindow(ctx context.Context, d time.Duration) (el, cpu time.Duration, wakeups int64, err error) {
	runtime.GC()
	debug.FreeOSMemory()
	cpu0, err0 := procCPU()
	wk0, err1 := procWakeups()
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, 0, 0, ctx.Err()
	case <-time.After(d):
	}
	el = time.Since(t0)
	cpu1, err2 := procCPU()
	wk1, err3 := procWakeups()
	if err := errors.Join(err0, err1, err2, err3); err != nil {
		return el, 0, 0, nil // not Linux: the row shows zeros
	}
	return el, cpu1 - cpu0, wk1 - wk0, nil
}

// settledMemory collects garbage, returns freed memory to the OS and reads the RSS.
func settledMemory(log func(string, ...any)) memory {
	runtime.GC()
	debug.FreeOSMemory()
	m, err := procMemory()
	if err != nil {
		log("warning: %v", err)
	}
	return m
}
