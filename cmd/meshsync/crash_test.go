package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
)

// TestCrashDaemonDuringSync is TESTPLAN row 1 with the real daemon: device a runs
// `meshsync daemon` as a child process while this test writes to it and to its two peers
// b and c (also child daemons), so that a commits local writes, runs sync sessions and
// applies pushed records all the time. The test kills a with SIGKILL at a uniform random
// moment of each run, checks its store in a separate process (`meshsync verify`, then
// `meshsync ls` for every acknowledged write), restarts it, and measures the time from
// restart to up-to-date with both peers. At the end all three devices must hold the same
// records, every acknowledged write included.
//
// MESHSYNC_KILLS=N sets the number of kills (default 10), MESHSYNC_SEED=N replays a run.
func TestCrashDaemonDuringSync(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three daemons")
	}
	bin, err := exec.LookPath("meshsync") // the test binary, set up by testscript.Main
	if err != nil {
		t.Skipf("no meshsync command in PATH: %v", err)
	}
	kills := 10
	if n, _ := strconv.Atoi(os.Getenv("MESHSYNC_KILLS")); n > 0 {
		kills = n
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("MESHSYNC_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed=%d kills=%d (replay: MESHSYNC_SEED=%d MESHSYNC_KILLS=%d go test -race -run TestCrashDaemonDuringSync -v ./cmd/meshsync/)", seed, kills, seed, kills)
	rng := rand.New(rand.NewPCG(seed, 1))

	h := &crashHarness{t: t, bin: bin, root: t.TempDir()}
	h.env = append(os.Environ(),
		"MESHSYNC_PASSPHRASE=crash test passphrase",
		"MESHSYNC_LISTEN=/ip4/127.0.0.1/tcp/0",
		"MESHSYNC_NO_MDNS=1",
		"MESHSYNC_LAN_ONLY=1",
		"HOME="+h.root,
	)
	a, b, c := h.dir("a"), h.dir("b"), h.dir("c")
	h.cli(a, "init", "--name", "a")
	da := h.start(a)
	for _, d := range []string{b, c} {
		inv, err := da.client.Invite(context.Background(), 5*time.Minute, false)
		if err != nil {
			t.Fatal(err)
		}
		h.cli(d, "join", inv.Code, "--name", filepath.Base(d))
	}
	db, dc := h.start(b), h.start(c)
	defer func() { db.stop(); dc.stop() }()
	if _, ok := da.upToDate(time.Minute); !ok {
		t.Fatalf("a never synced with b and c:\n%s", da.log())
	}

	// Writers: one to a (which dies), one to b and c (whose writes a receives by push and
	// sync). A write counts as acknowledged when the daemon's API answered success.
	w := &crashWriters{acked: map[string]string{}}
	w.a.Store(da)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.loop(ctx, "a", func() *crashDaemon { return w.a.Load() }) }()
	go func() {
		defer wg.Done()
		w.loop(ctx, "bc", func() *crashDaemon {
			if w.n.Add(1)%2 == 0 {
				return db
			}
			return dc
		})
	}()

	phases := map[string]int{}
	var recovery []time.Duration
	notUp := 0
	// Each life of a ends U(0, runFor) after its process started, so kills land while it
	// opens the store and starts, in writes and commits, in the sync sessions after a
	// restart, and in applies of pushed records. A kill counts in every phase active at
	// that instant.
	runFor := 3 * time.Second
	for k := 0; k < kills; k++ {
		cur := w.a.Load()
		time.Sleep(time.Until(cur.started.Add(time.Duration(rng.Int64N(int64(runFor))))))
		phase := cur.phase()
		for _, p := range strings.Split(phase, "+") {
			phases[p]++
		}
		cur.kill()
		w.a.Store(nil)
		if r := <-cur.recovered; k > 0 { // the first life was not a restart
			if r > 0 {
				recovery = append(recovery, r)
			} else {
				notUp++
			}
		}

		// The store, checked offline by separate processes.
		var v struct {
			OK       bool     `json:"ok"`
			Problems []string `json:"problems"`
		}
		if err := json.Unmarshal([]byte(h.cli(a, "--json", "verify")), &v); err != nil || !v.OK {
			t.Fatalf("kill %d (%s): verify: %v %v\n%s", k, phase, err, v.Problems, cur.log())
		}
		have := h.records(a)
		for key, val := range w.ackedFrom("a-") {
			if got, ok := have[key]; !ok || got != val {
				t.Fatalf("kill %d (%s): acknowledged write %s=%s lost (have %q)\n%s", k, phase, key, val, got, cur.log())
			}
		}

		w.a.Store(h.spawn(a))
		if (k+1)%10 == 0 && k+1 < kills {
			t.Logf("%d kills so far: phases %v, %d restarts measured", k+1, phases, len(recovery))
		}
	}
	stop()
	wg.Wait()
	final := w.a.Load()
	defer final.stop()
	select {
	case <-final.up:
	case <-final.exitWait:
		t.Fatalf("a exited after its last restart:\n%s", final.log())
	}
	if r := <-final.recovered; r > 0 {
		recovery = append(recovery, r)
	} else {
		notUp++
	}

	// Convergence: the three devices end with the same records, every acknowledged write
	// among them.
	var ra, rb, rc map[string]string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, d := range []*crashDaemon{final, db, dc} {
			d.client.Sync(context.Background(), true, 20*time.Second)
		}
		ra, rb, rc = final.records(t), db.records(t), dc.records(t)
		if maps.Equal(ra, rb) && maps.Equal(ra, rc) || time.Now().After(deadline) {
			break
		}
	}
	if !maps.Equal(ra, rb) || !maps.Equal(ra, rc) {
		t.Fatalf("devices did not converge: a %d, b %d, c %d records", len(ra), len(rb), len(rc))
	}
	for key, val := range w.ackedFrom("") {
		if ra[key] != val {
			t.Fatalf("acknowledged write %s=%s missing after convergence (have %q)", key, val, ra[key])
		}
	}
	names := slices.Sorted(maps.Keys(phases))
	var byPhase []string
	for _, p := range names {
		byPhase = append(byPhase, fmt.Sprintf("%s %d", p, phases[p]))
	}
	slices.Sort(recovery)
	t.Logf("%d kills survived (by phase, a kill counting in each active one: %s); 0 lost of %d acknowledged writes (%d to a); %d records converged on 3 devices",
		kills, strings.Join(byPhase, ", "), len(w.ackedFrom("")), len(w.ackedFrom("a-")), len(ra))
	if len(recovery) > 0 {
		t.Logf("recovery (restart to up-to-date with both peers): p50 %v, p99 %v, max %v over %d restarts (%d killed again before up-to-date)",
			pct(recovery, 50), pct(recovery, 99), recovery[len(recovery)-1], len(recovery), notUp)
	}
}

func pct(d []time.Duration, p int) time.Duration {
	i := (len(d)*p + 99) / 100
	return d[max(0, min(len(d)-1, i-1))].Round(time.Millisecond)
}

type crashHarness struct {
	t    *testing.T
	bin  string
	root string
	env  []string
}

func (h *crashHarness) dir(name string) string { return filepath.Join(h.root, name) }

// cli runs one meshsync command in a new process and returns its stdout.
func (h *crashHarness) cli(dir string, args ...string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, append([]string{"--dir", dir}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) } // stacks on stderr
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = h.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("meshsync %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// records lists collection c of the store in dir (offline: no daemon may run on it).
func (h *crashHarness) records(dir string) map[string]string {
	var out struct {
		Records []struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		} `json:"records"`
	}
	if err := json.Unmarshal([]byte(h.cli(dir, "--json", "ls", "c")), &out); err != nil {
		h.t.Fatal(err)
	}
	m := map[string]string{}
	for _, r := range out.Records {
		m[r.Key] = string(r.Value)
	}
	return m
}

// crashDaemon is one running `meshsync daemon` child and what the test sees of it.
type crashDaemon struct {
	t        *testing.T
	dir      string
	cmd      *exec.Cmd
	exitWait chan struct{}
	up       chan struct{} // closed once client and cancel are set
	// recovered receives the time from start to up-to-date with every device (0: killed
	// or timed out before).
	recovered chan time.Duration
	client    *localapi.Client
	started   time.Time
	logBuf    *lockedBuf
	cancel    context.CancelFunc

	inflight  atomic.Int32 // writes sent and not yet answered
	syncing   sync.Map     // device id -> struct{}: sessions running, from the event stream
	lastApply atomic.Int64 // unix nanos of the last record received from a peer
}

// start runs a daemon on dir and waits until its control API answers.
func (h *crashHarness) start(dir string) *crashDaemon {
	h.t.Helper()
	d := h.spawn(dir)
	select {
	case <-d.up:
	case <-d.exitWait:
		h.t.Fatalf("daemon on %s exited: %s", dir, d.log())
	case <-time.After(time.Minute):
		h.t.Fatalf("daemon on %s did not answer: %s", dir, d.log())
	}
	return d
}

// spawn runs a daemon on dir and returns at once. In the background it dials the control
// API (then closes up), follows the event stream, and measures the time from spawn to
// up-to-date with every device (sent on recovered; 0 when the daemon died first).
func (h *crashHarness) spawn(dir string) *crashDaemon {
	cmd := exec.Command(h.bin, "--dir", dir, "daemon", "--log-level", "debug")
	cmd.Env = h.env
	d := &crashDaemon{t: h.t, dir: dir, cmd: cmd, logBuf: &lockedBuf{},
		recovered: make(chan time.Duration, 1), up: make(chan struct{}), exitWait: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.logBuf, d.logBuf
	d.started = time.Now()
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { cmd.Wait(); close(d.exitWait) }()
	h.t.Cleanup(func() { // a failed test leaves no daemon behind
		cmd.Process.Signal(syscall.SIGKILL)
		<-d.exitWait
	})
	go func() {
		var c *localapi.Client
		for c == nil {
			select {
			case <-d.exitWait:
				d.recovered <- 0
				return
			case <-time.After(10 * time.Millisecond):
			}
			if time.Since(d.started) > time.Minute {
				d.recovered <- 0
				return
			}
			c, _ = localapi.Dial(context.Background(), dir)
		}
		ctx, cancel := context.WithCancel(context.Background())
		d.client, d.cancel = c, cancel
		close(d.up)
		go func() {
			for ev, err := range c.Events(ctx, true) {
				if err != nil {
					return
				}
				switch {
				case ev.State != nil:
					if ev.State.Device.Status == node.StatusSyncing {
						d.syncing.Store(ev.State.Device.DeviceID, struct{}{})
					} else {
						d.syncing.Delete(ev.State.Device.DeviceID)
					}
				case ev.Record != nil && !ev.Record.Local:
					d.lastApply.Store(time.Now().UnixNano())
				}
			}
		}()
		r, _ := d.upToDate(30 * time.Second)
		d.recovered <- r
	}()
	return d
}

// ready reports whether the control API answered (d.client is set).
func (d *crashDaemon) ready() bool {
	select {
	case <-d.up:
		return true
	default:
		return false
	}
}

// phase names what the daemon was doing at this instant, as this process saw it, joined by
// "+": starting (opening the store and the host; its control API not answering yet:
// "startup"), a write sent to it and not yet answered ("write/commit"), a sync session
// running by its event stream ("sync"), a record from a peer committed in the last 20 ms
// ("apply"), or none of these ("idle").
func (d *crashDaemon) phase() string {
	if !d.ready() {
		return "startup"
	}
	var p []string
	if d.inflight.Load() > 0 {
		p = append(p, "write/commit")
	}
	if d.syncingAny() {
		p = append(p, "sync")
	}
	if time.Since(time.Unix(0, d.lastApply.Load())) < 20*time.Millisecond {
		p = append(p, "apply")
	}
	if len(p) == 0 {
		return "idle"
	}
	return strings.Join(p, "+")
}

func (d *crashDaemon) syncingAny() bool {
	found := false
	d.syncing.Range(func(_, _ any) bool { found = true; return false })
	return found
}

// upToDate waits (up to limit) until the daemon finished a session with every device, and
// returns the time since its start. A device that is still being dialled (a dial backoff
// from before the restart) is asked again.
func (d *crashDaemon) upToDate(limit time.Duration) (time.Duration, bool) {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		if _, err := d.client.Sync(context.Background(), true, time.Until(end)); err == nil {
			return time.Since(d.started), true
		}
		select {
		case <-d.exitWait:
			return 0, false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, false
}

func (d *crashDaemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exitWait
	if d.ready() {
		d.cancel()
		d.client.Close()
	}
}

func (d *crashDaemon) stop() {
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.exitWait:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.exitWait
	}
	if d.ready() {
		d.cancel()
		d.client.Close()
	}
}

func (d *crashDaemon) log() string { return d.logBuf.tail(30) }

func (d *crashDaemon) records(t *testing.T) map[string]string {
	recs, err := d.client.List(context.Background(), "c", "")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, r := range recs {
		m[r.Key] = string(r.Value)
	}
	return m
}

// crashWriters writes records with unique keys and keeps the log of acknowledged ones.
type crashWriters struct {
	a  atomic.Pointer[crashDaemon]
	n  atomic.Int64
	mu sync.Mutex
	// acked maps key -> value of every write a daemon acknowledged.
	acked map[string]string
}

func (w *crashWriters) loop(ctx context.Context, prefix string, target func() *crashDaemon) {
	for i := 0; ctx.Err() == nil; i++ {
		d := target()
		if d == nil || !d.ready() {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		key := fmt.Sprintf("%s-%d", prefix, i)
		if prefix == "bc" {
			key = fmt.Sprintf("%s-%d", filepath.Base(d.dir), i)
		}
		val := fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("p", 200))
		d.inflight.Add(1)
		err := d.client.Put(context.Background(), "c", key, []byte(val))
		d.inflight.Add(-1)
		if err == nil {
			w.mu.Lock()
			w.acked[key] = val
			w.mu.Unlock()
		}
		time.Sleep(time.Duration(i%4) * 10 * time.Millisecond) // 0-30 ms: moments without a write
	}
}

func (w *crashWriters) ackedFrom(prefix string) map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]string{}
	for k, v := range w.acked {
		if strings.HasPrefix(k, prefix) {
			m[k] = v
		}
	}
	return m
}

// lockedBuf collects a child's output.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := bufio.NewScanner(strings.NewReader(l.b.String()))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestFaultMissingStore is TESTPLAN row 10 for the daemon: a store that went missing (file
// deleted, emptied, or its disk not mounted) must stop the daemon with an error rather
// than start a fresh store that would sync as an empty device. The peer keeps every record
// (no tombstone can come from a daemon that never started), and nothing is created in
// place of the missing store.
func TestFaultMissingStore(t *testing.T) {
	h := daemonHarness(t, "missing store passphrase")
	a, b := h.dir("a"), h.dir("b")
	h.cli(a, "init", "--name", "a")
	da := h.start(a)
	inv, err := da.client.Invite(context.Background(), 5*time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	h.cli(b, "join", inv.Code, "--name", "b")
	db := h.start(b)
	defer db.stop()
	for i := 0; i < 20; i++ {
		if err := da.client.Put(context.Background(), "c", fmt.Sprint("k", i), []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	var want map[string]string
	for end := time.Now().Add(time.Minute); ; {
		db.upToDate(10 * time.Second)
		if want = db.records(t); len(want) == 20 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("b holds %d records before the test, want 20:\n%s", len(want), db.log())
		}
	}
	da.stop()
	saved, err := os.ReadFile(filepath.Join(a, "meshsync.db"))
	if err != nil {
		t.Fatal(err)
	}

	// refuse runs the daemon on dir and wants it to exit with an error within a minute.
	refuse := func(name, dir, wantErr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, h.bin, "--dir", dir, "daemon")
		cmd.Env = h.env
		out, err := cmd.CombinedOutput()
		if err == nil || ctx.Err() != nil {
			t.Fatalf("%s: the daemon started (err %v):\n%s", name, err, out)
		}
		if !strings.Contains(string(out), wantErr) {
			t.Errorf("%s: error does not say %q:\n%s", name, wantErr, out)
		}
		t.Logf("%s: refused: %s", name, strings.TrimSpace(lastLine(string(out))))
	}
	check := func(name string) {
		t.Helper()
		db.client.Sync(context.Background(), true, 2*time.Second)
		if got := db.records(t); !maps.Equal(got, want) {
			t.Fatalf("%s: the peer holds %d records, want the same 20", name, len(got))
		}
	}

	// Deleted: the directory is there, the file is not. No new store appears.
	dbPath := filepath.Join(a, "meshsync.db")
	if err := os.Remove(dbPath); err != nil {
		t.Fatal(err)
	}
	refuse("deleted", a, "no meshsync store")
	if _, err := os.Stat(dbPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted: the daemon created %s (%v)", dbPath, err)
	}
	check("deleted")

	// Emptied: a zero-length file (a failed copy, a truncated restore).
	if err := os.WriteFile(dbPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refuse("emptied", a, "corrupt")
	check("emptied")

	// The whole directory missing: the path of a disk that is not mounted. Nothing may be
	// created there, or the disk would mount over a fresh store later.
	gone := filepath.Join(h.root, "media", "usb", "meshsync")
	refuse("directory missing", gone, "no meshsync store")
	if _, err := os.Stat(filepath.Join(h.root, "media")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory missing: the daemon created %s", filepath.Join(h.root, "media"))
	}
	check("directory missing")

	// An unmounted disk: a mount point whose file system is gone leaves an empty
	// directory. Root only (needs mount).
	mnt := filepath.Join(h.root, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt).Run(); err != nil {
		t.Logf("unmounted path: skipped (mount needs root: %v)", err)
	} else {
		if err := os.WriteFile(filepath.Join(mnt, "meshsync.db"), saved, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Fatalf("umount: %v %s", err, out)
		}
		refuse("unmounted", mnt, "no meshsync store")
		entries, _ := os.ReadDir(mnt)
		for _, e := range entries {
			if e.Name() == "meshsync.db" {
				t.Errorf("unmounted: the daemon created a store on the bare mount point")
			}
		}
		check("unmounted")
	}
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

// TestDiskFullDaemon runs a daemon whose store sits on a small tmpfs (root only) while its
// peer sends it more than fits: the sync with the peer fails with the reason "disk full"
// in the daemon's status, a local write says "disk full", the store stays readable and
// consistent through the daemon, and once the file system has room again the daemon
// catches up without a restart.
func TestDiskFullDaemon(t *testing.T) {
	h := daemonHarness(t, "disk full passphrase")
	mnt := h.dir("small")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	a, b := filepath.Join(mnt, "a"), h.dir("b")
	h.cli(a, "init", "--name", "a")
	da := h.start(a)
	defer da.stop()
	inv, err := da.client.Invite(context.Background(), 5*time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	h.cli(b, "join", inv.Code, "--name", "b")
	db := h.start(b)
	defer db.stop()

	// b writes 4 MiB; a has room for less than 3.
	big := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat(fmt.Sprint(i%10), 20000)))
	}
	for i := 0; i < 200; i++ {
		if err := db.client.Put(context.Background(), "c", fmt.Sprint("b", i), big(i)); err != nil {
			t.Fatal(err)
		}
	}
	var reason string
	for end := time.Now().Add(time.Minute); reason == ""; {
		da.client.Sync(context.Background(), true, 5*time.Second)
		st, err := da.client.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range st.Devices {
			if d.Name == "b" && d.Status == node.StatusError && strings.HasPrefix(d.Reason, "disk full") {
				reason = d.Reason
			}
		}
		if reason == "" && time.Now().After(end) {
			t.Fatalf("a's status never showed disk full: %+v\n%s", st.Devices, da.log())
		}
	}
	t.Logf("a's state for b: error, reason %q", reason)
	// A local write may still fit in pages the failed sync left free inside the file; the
	// disk is full once the next ones do not, and each refusal must say so.
	wrote, refused := 0, false
	for i := 0; i < 100 && !refused; i++ {
		err := da.client.Put(context.Background(), "c", fmt.Sprint("local", i), big(i))
		switch {
		case err == nil:
			wrote++
		case strings.Contains(err.Error(), "disk full"):
			refused = true
			t.Logf("local write %d: %v", i, err)
		default:
			t.Fatalf("local write on a full disk: %v, want an error saying disk full", err)
		}
	}
	if !refused {
		t.Errorf("100 local writes of 20 KB on a full 3 MiB disk all succeeded, want disk full")
	}
	rep, err := da.client.Verify(context.Background())
	if err != nil || !rep.OK() {
		t.Fatalf("verify on a full disk: %v %+v", err, rep)
	}
	held := len(da.records(t)) - wrote
	if held == 0 || held >= 200 {
		t.Fatalf("a holds %d of b's 200 records on a full disk", held)
	}

	// Room again: the same daemon catches up.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	if _, ok := da.upToDate(time.Minute); !ok {
		t.Fatalf("a did not catch up once space returned:\n%s", da.log())
	}
	if got := len(da.records(t)); got != 200+wrote {
		t.Fatalf("a holds %d records after catching up, want b's 200 and its own %d", got, wrote)
	}
	if err := da.client.Put(context.Background(), "c", "local", big(0)); err != nil {
		t.Fatalf("local write after space returned: %v", err)
	}
	t.Logf("a held %d of 200 records while full (%d local writes fit in free pages), all after space returned, no restart", held, wrote)
}

// daemonHarness is a crashHarness for tests that run real daemons (skipped with -short or
// without the meshsync command), with loopback-only, LAN-only settings and pass.
func daemonHarness(t *testing.T, pass string) *crashHarness {
	t.Helper()
	if testing.Short() {
		t.Skip("runs daemons")
	}
	bin, err := exec.LookPath("meshsync")
	if err != nil {
		t.Skipf("no meshsync command in PATH: %v", err)
	}
	h := &crashHarness{t: t, bin: bin, root: t.TempDir()}
	h.env = append(os.Environ(),
		"MESHSYNC_PASSPHRASE="+pass,
		"MESHSYNC_LISTEN=/ip4/127.0.0.1/tcp/0",
		"MESHSYNC_NO_MDNS=1",
		"MESHSYNC_LAN_ONLY=1",
		"HOME="+h.root,
	)
	return h
}
