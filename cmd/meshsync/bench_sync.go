package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/crypto/argon2"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// benchSyncCmd is `meshsync bench` (also `meshsync bench sync`): real nodes on loopback
// with real bbolt files in a temporary directory, every figure beside a limit measured in
// the same run.
type benchSyncCmd struct {
	Records    int           `help:"Records a fresh device receives; the incremental rows share as many." default:"100000"`
	Size       int           `help:"Bytes of each record's value." default:"1024"`
	Changes    int           `help:"Records changed for the incremental rows (d)." default:"10"`
	Writes     int           `help:"Writes timed for the push row." default:"1000"`
	Idle       time.Duration `help:"Window over which the idle nodes' CPU time and wake-ups are counted." default:"60s"`
	CPUProfile string        `name:"cpuprofile" help:"Write a CPU profile of the whole run to FILE (go tool pprof)." placeholder:"FILE"`
	Keep       bool          `help:"Keep the temporary directory (the nodes' stores)."`
	Verbose    bool          `help:"Log what the nodes do to stderr (debug level)."`
}

// The rows. Field names are a stable schema for scripts (fields may be added, none
// renamed); each row is one JSON object per line with --json.
type (
	benchMachine struct {
		Row     string `json:"row"` // "machine"
		CPU     string `json:"cpu"`
		Cores   int    `json:"cores"`
		OS      string `json:"os"`
		Go      string `json:"go"`
		LoadAvg string `json:"load_avg,omitempty"` // at the start: other work on the machine
	}
	benchInitial struct {
		Row              string  `json:"row"` // "initial_sync"
		Records          int     `json:"records"`
		Seconds          float64 `json:"seconds"`
		RecordsPerS      float64 `json:"records_per_s"`
		LimitRecordsPerS float64 `json:"limit_records_per_s"`
		OfLimit          float64 `json:"of_limit"`
		LimitBy          string  `json:"limit_by"`
		StreamPerS       float64 `json:"stream_records_per_s"`
		BoltPerS         float64 `json:"bbolt_records_per_s"`
		AEADPerS         float64 `json:"aead_records_per_s"`
		EnvelopeBytes    int64   `json:"envelope_bytes"`     // what the limits carried, wrote and opened
		WireBytes        int64   `json:"wire_bytes"`         // TCP payload A→B during the sync
		FillPerS         float64 `json:"fill_records_per_s"` // local writes on A, 4096 per transaction
	}
	benchIncremental struct {
		Row           string  `json:"row"` // "incremental_fast" or "incremental_merkle"
		N             int     `json:"n"`
		D             int     `json:"d"`
		Found         int     `json:"found"`          // differences found (merkle) or records applied (fast)
		BytesSent     int64   `json:"bytes_sent"`     // by the device catching up
		BytesReceived int64   `json:"bytes_received"` // by the device catching up
		RoundTrips    int     `json:"round_trips"`
		Seconds       float64 `json:"seconds"`
		FloorSeconds  float64 `json:"floor_seconds"`
		Measured      string  `json:"measured"`
		// The fast path is measured over a fresh connection; the same reconnect with
		// nothing to send costs this much (handshake, identify, hello, push streams).
		ConnectBytesSent     int64   `json:"connect_bytes_sent,omitempty"`
		ConnectBytesReceived int64   `json:"connect_bytes_received,omitempty"`
		ConnectSeconds       float64 `json:"connect_seconds,omitempty"`
	}
	benchPush struct {
		Row      string  `json:"row"` // "push"
		Writes   int     `json:"writes"`
		P50ms    float64 `json:"p50_ms"`
		P99ms    float64 `json:"p99_ms"`
		FloorMs  float64 `json:"floor_ms"`
		RTTms    float64 `json:"rtt_ms"`
		CommitMs float64 `json:"commit_ms"`
		PutP50ms float64 `json:"put_p50_ms"` // the writer's own committed Put
	}
	benchRest struct {
		Row               string  `json:"row"` // "rest"
		Records           int     `json:"records"`
		RSSBytes          int64   `json:"rss_bytes"`
		RSSAnonBytes      int64   `json:"rss_anon_bytes"`
		RSSFileBytes      int64   `json:"rss_file_bytes"`
		DiskBytes         int64   `json:"disk_bytes"`
		DiskBytesPerRec   float64 `json:"disk_bytes_per_record"`
		IdleNodes         int     `json:"idle_nodes"`
		IdleSeconds       float64 `json:"idle_seconds"`
		IdleCPUSeconds    float64 `json:"idle_cpu_seconds"`
		IdleCPUFraction   float64 `json:"idle_cpu_fraction"` // of one core
		IdleWakeups       int64   `json:"idle_wakeups"`
		IdleWakeupsPerMin float64 `json:"idle_wakeups_per_min"`
		WakeupsSource     string  `json:"wakeups_source"`
		// B restarted alone (A closed): the memory of a node that opens its store, not
		// one that just wrote it.
		RSSRestartedBytes     int64 `json:"rss_restarted_bytes"`
		RSSRestartedFileBytes int64 `json:"rss_restarted_file_bytes"`
		// The same process with no node open: the Go runtime's own share.
		BaselineCPUFraction   float64 `json:"baseline_cpu_fraction"`
		BaselineWakeupsPerMin float64 `json:"baseline_wakeups_per_min"`
	}
	// benchSignatures is what signed authority records cost (store/authority.go): every
	// record of a reserved collection is signed by its writer and verified on arrival;
	// data records are not.
	benchSignatures struct {
		Row          string  `json:"row"` // "signatures"
		SignMicros   float64 `json:"sign_us"`
		VerifyMicros float64 `json:"verify_us"`
		// Authority records B verified during the initial sync, and their share of it.
		AuthorityRecords int     `json:"authority_records"`
		AuthoritySeconds float64 `json:"authority_seconds"`
		// What verifying a signature on every record of the initial sync would have cost,
		// over all cores, beside the initial sync's own time.
		AllRecordsSeconds float64 `json:"all_records_seconds"`
		InitialSeconds    float64 `json:"initial_seconds"`
	}
	benchUnlock struct {
		Row     string  `json:"row"` // "unlock"
		Seconds float64 `json:"seconds"`
		KDF     string  `json:"kdf"`
		TestKDF bool    `json:"test_kdf"`
		// KDFSeconds is Argon2id alone with the same parameters, in the same run: the
		// floor of an unlock.
		KDFSeconds float64 `json:"kdf_seconds"`
	}
)

const benchCollection = "bench"

// benchRun is one run's state: the nodes, the raw limit fixtures, the rows so far.
type benchRun struct {
	c      *benchSyncCmd
	g      *globals
	dir    string
	kdf    store.KDFParams
	a, b   *node.Node
	hosts  *rawHosts
	bolt   *rawBolt
	rtt    time.Duration
	commit time.Duration
	rows   []any
	log    func(format string, args ...any)
}

// Run measures every row and prints the table.
func (c *benchSyncCmd) Run(ctx context.Context, g *globals) (err error) {
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
	}
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "meshsync-bench-")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if c.Keep {
		fmt.Fprintln(g.stderr, "bench: files kept in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	r := &benchRun{c: c, g: g, dir: dir, kdf: store.DefaultKDF}
	// Test mode (the CLI's testscript) lowers the KDF floor; say so rather than measure
	// the real Argon2id there.
	if testmode.Enabled() {
		r.kdf = store.KDFParams(testmode.KDF)
	}
	start := time.Now()
	r.log = func(format string, args ...any) {
		fmt.Fprintf(g.stderr, "bench %6.1fs  "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
	defer r.close()
	r.rows = append(r.rows, benchMachine{Row: "machine", CPU: cpuModel(), Cores: runtime.NumCPU(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), LoadAvg: loadAvg()})
	for _, step := range []func(context.Context) error{r.initialSync, r.incremental, r.push, r.rest} {
		if err := step(ctx); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return r.print()
}

func (r *benchRun) close() {
	for _, n := range []*node.Node{r.a, r.b} {
		if n != nil {
			n.Close()
		}
	}
	if r.hosts != nil {
		r.hosts.Close()
	}
	if r.bolt != nil {
		r.bolt.Close()
	}
}

func (r *benchRun) config(name string) node.Config {
	cfg := node.Config{
		Dir:         filepath.Join(r.dir, name),
		Passphrase:  []byte("bench passphrase " + name),
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		LANOnly:     true,
		Store:       store.Options{KDF: r.kdf},
	}
	if r.c.Verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(r.g.stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	if name == "a" {
		// The source never dials the device catching up: every session it takes part in
		// is one the measured device starts, so each byte count covers one session.
		cfg.RetryMin = time.Hour
	}
	return cfg
}

// initialSync fills A, measures the limits on A's envelopes, then has a fresh device B join
// and receive them all.
func (r *benchRun) initialSync(ctx context.Context) error {
	c := r.c
	var err error
	if r.a, err = node.Init(ctx, r.config("a"), "a"); err != nil {
		return err
	}
	if err := r.a.Start(ctx); err != nil {
		return err
	}
	r.log("A: writing %d records of %d bytes", c.Records, c.Size)
	fill, err := fillStore(r.a.Store(), c.Records, c.Size)
	if err != nil {
		return err
	}
	r.log("limits: raw libp2p stream, bbolt in the store's layout, XChaCha20-Poly1305 open")
	if r.hosts, err = newRawHosts(ctx); err != nil {
		return err
	}
	if r.bolt, err = openRawBolt(r.dir); err != nil {
		return err
	}
	lim, err := measureLimits(ctx, r.a.Store(), r.hosts, r.bolt)
	if err != nil {
		return err
	}
	// The push floor's parts are measured now too, while nothing else runs.
	if r.rtt, err = r.hosts.rtt(ctx, 500); err != nil {
		return err
	}
	env := make([]byte, lim.Bytes/int64(max(1, c.Records)))
	if r.commit, err = r.bolt.commitTime(env, 51); err != nil {
		return err
	}
	// Nothing of the fixtures may stay mapped or running while the nodes are measured.
	r.hosts.Close()
	r.hosts = nil
	if err := r.bolt.Close(); err != nil {
		return err
	}
	r.bolt = nil
	if err := os.Remove(filepath.Join(r.dir, "limit.db")); err != nil {
		r.log("warning: %v", err)
	}

	r.log("B: joining A and receiving %d records", c.Records)
	code, _, err := r.a.Invite(time.Minute)
	if err != nil {
		return err
	}
	if r.b, err = node.Join(ctx, r.config("b"), code, "b"); err != nil {
		return err
	}
	sub := r.b.Subscribe(1 << 16)
	defer sub.Close()
	t0 := time.Now()
	if err := r.startB(ctx); err != nil {
		return err
	}
	got, missed, err := waitChanges(ctx, sub, c.Records, syncTimeout(c.Records))
	el := time.Since(t0)
	if err != nil {
		return fmt.Errorf("initial sync: %w", err)
	}
	if missed > 0 || got != c.Records {
		return fmt.Errorf("initial sync moved %d records (%d more not seen), want %d", got, missed, c.Records)
	}
	_, wire, _, _ := tcpBytes(tcpPorts(r.b.Addrs()), tcpPorts(r.a.Addrs()))
	rate := float64(got) / el.Seconds()
	limit, by := lim.slowest()
	r.rows = append(r.rows, benchInitial{Row: "initial_sync", Records: got, Seconds: el.Seconds(),
		RecordsPerS: rate, LimitRecordsPerS: limit, OfLimit: rate / limit, LimitBy: by,
		StreamPerS: lim.Stream, BoltPerS: lim.Bolt, AEADPerS: lim.AEAD, EnvelopeBytes: lim.Bytes,
		WireBytes: wire, FillPerS: fill})
	r.log("initial sync: %d records in %.2f s", got, el.Seconds())
	return r.signatures(got, el)
}

// signatures measures one Ed25519 signature and verification and sets them beside the
// initial sync: the authority records it carried, and every record, had each been signed.
func (r *benchRun) signatures(records int, initial time.Duration) error {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	msg := make([]byte, 256) // about what an authority record's signed message holds
	const n = 2000
	t0 := time.Now()
	var sig []byte
	for range n {
		sig = ed25519.Sign(key, msg)
	}
	sign := time.Since(t0) / n
	pub := key.Public().(ed25519.PublicKey)
	t0 = time.Now()
	for range n {
		if !ed25519.Verify(pub, msg, sig) {
			return errors.New("signature bench: verify failed")
		}
	}
	verify := time.Since(t0) / n
	var authority int
	for _, c := range []string{node.DevicesCollection, store.RemovalsCollection, store.KeysCollection, store.PolicyCollection} {
		recs, err := r.b.Store().List(c, "")
		if err != nil {
			return err
		}
		authority += len(recs)
	}
	r.rows = append(r.rows, benchSignatures{Row: "signatures", SignMicros: float64(sign.Nanoseconds()) / 1e3, VerifyMicros: float64(verify.Nanoseconds()) / 1e3,
		AuthorityRecords: authority, AuthoritySeconds: float64(authority) * verify.Seconds(),
		AllRecordsSeconds: float64(records) * verify.Seconds() / float64(runtime.NumCPU()), InitialSeconds: initial.Seconds()})
	return nil
}

// startB starts B and has it sync with A at once (rather than after its loop's first
// jittered timer).
func (r *benchRun) startB(ctx context.Context) error {
	if err := r.b.Start(ctx); err != nil {
		return err
	}
	return r.b.SyncNow(ctx)
}

func syncTimeout(records int) time.Duration {
	return 2*time.Minute + time.Duration(records)*time.Millisecond
}

// fillStore writes n raw records of size random bytes in transactions of 4096 and returns
// the rate.
func fillStore(st *store.Store, n, size int) (float64, error) {
	val := make([]byte, size)
	t0 := time.Now()
	for i := 0; i < n; i += limitBatch {
		err := st.Update(func(tx *store.Tx) error {
			for j := i; j < min(n, i+limitBatch); j++ {
				rand.Read(val)
				if err := tx.PutRaw(benchCollection, benchKey(j), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("fill: %w", err)
		}
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

func benchKey(i int) string { return fmt.Sprintf("r%09d", i) }

// waitChanges counts the records of the bench collection that arrive from elsewhere
// until want did, or the timeout.
func waitChanges(ctx context.Context, sub *store.Subscription, want int, timeout time.Duration) (got int, missed uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for got+int(sub.Missed()) < want {
		select {
		case <-ctx.Done():
			return got, sub.Missed(), fmt.Errorf("%d of %d records arrived: %w", got, want, ctx.Err())
		case ch, ok := <-sub.C:
			if !ok {
				return got, sub.Missed(), errors.New("the store closed")
			}
			if ch.Collection == benchCollection && !ch.Local {
				got++
			}
		}
	}
	return got, sub.Missed(), nil
}

// waitSession waits until n has finished a session with p that ended after t.
func waitSession(ctx context.Context, n *node.Node, p string, t time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		for _, d := range n.States().Devices {
			if d.PeerID.String() == p && d.LastSync.After(t) && d.Status != node.StatusSyncing {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a session: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// reopenB closes B (when open) and opens it again (not started), timing the unlock.
func (r *benchRun) reopenB(ctx context.Context) (time.Duration, error) {
	if r.b != nil {
		if err := r.b.Close(); err != nil {
			return 0, err
		}
		r.b = nil
	}
	t0 := time.Now()
	b, err := node.Open(ctx, r.config("b"))
	if err != nil {
		return 0, err
	}
	r.b = b
	return time.Since(t0), nil
}

// reconnect starts B, waits for its session with A and returns the TCP bytes of that
// connection (B's view) and the time from Start.
func (r *benchRun) reconnect(ctx context.Context, sub *store.Subscription, want int) (sent, recv int64, el time.Duration, err error) {
	t0 := time.Now()
	if err := r.startB(ctx); err != nil {
		return 0, 0, 0, err
	}
	if want > 0 {
		if _, _, err := waitChanges(ctx, sub, want, time.Minute); err != nil {
			return 0, 0, 0, err
		}
		el = time.Since(t0)
	}
	if err := waitSession(ctx, r.b, r.a.PeerID().String(), t0.Round(0)); err != nil {
		return 0, 0, 0, err
	}
	if want == 0 {
		el = time.Since(t0)
	}
	sent, recv, _, err = tcpBytes(tcpPorts(r.b.Addrs()), tcpPorts(r.a.Addrs()))
	return sent, recv, el, err
}

// incremental measures d changes on A reaching B, which was offline: a Merkle
// reconciliation of the two stores' summaries, and the fast path of a real session.
func (r *benchRun) incremental(ctx context.Context) error {
	c := r.c
	r.log("unlock, and a reconnect with nothing to send (baseline)")
	unlock, err := r.reopenB(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	argon2.IDKey([]byte("bench passphrase"), make([]byte, 16), r.kdf.Time, r.kdf.Memory, r.kdf.Threads, 32)
	kdf := time.Since(t0)
	r.rows = append(r.rows, benchUnlock{Row: "unlock", Seconds: unlock.Seconds(), TestKDF: r.kdf == store.KDFParams(testmode.KDF),
		KDF: fmt.Sprintf("argon2id t=%d m=%dMiB p=%d", r.kdf.Time, r.kdf.Memory>>10, r.kdf.Threads), KDFSeconds: kdf.Seconds()})
	cs, cr, cel, err := r.reconnect(ctx, nil, 0)
	if err != nil {
		return fmt.Errorf("baseline reconnect: %w", err)
	}

	r.log("incremental: B offline, A changes %d of %d records", c.Changes, c.Records)
	if err := r.b.Close(); err != nil {
		return err
	}
	r.b = nil
	rng := mrand.New(mrand.NewPCG(1, 2))
	val := make([]byte, c.Size)
	for _, i := range rng.Perm(c.Records)[:c.Changes] {
		rand.Read(val)
		if err := r.a.PutRaw(benchCollection, benchKey(i), val); err != nil {
			return err
		}
	}
	if _, err := r.reopenB(ctx); err != nil {
		return err
	}

	// Merkle: the node's reconciliation over the two stores' real summaries, in memory.
	t0 = time.Now()
	ini := merkle.NewInitiator(r.b.Store().Replication().Summary(), merkle.Config{})
	resp := merkle.NewResponder(r.a.Store().Replication().Summary(), merkle.Config{})
	st, err := merkle.Exchange(ini, resp)
	mel := time.Since(t0)
	if err != nil {
		return err
	}
	need, _ := ini.Result()
	r.rows = append(r.rows, benchIncremental{Row: "incremental_merkle", N: c.Records, D: c.Changes, Found: len(need),
		BytesSent: int64(st.BytesSent), BytesReceived: int64(st.BytesReceived), RoundTrips: st.RoundTrips,
		Seconds: mel.Seconds(), FloorSeconds: float64(st.RoundTrips) * r.rtt.Seconds(),
		Measured: "merkle.Exchange over both bbolt summaries in memory: reconciliation messages only, no network"})

	// Fast path: a real session on a fresh connection.
	sub := r.b.Subscribe(1 << 12)
	defer sub.Close()
	fs, fr, fel, err := r.reconnect(ctx, sub, c.Changes)
	if err != nil {
		return fmt.Errorf("fast path: %w", err)
	}
	r.rows = append(r.rows, benchIncremental{Row: "incremental_fast", N: c.Records, D: c.Changes, Found: c.Changes,
		BytesSent: fs, BytesReceived: fr, RoundTrips: 1, Seconds: fel.Seconds(),
		FloorSeconds:     (r.rtt + r.commit).Seconds(),
		Measured:         "real session after B restarts: TCP payload of the new connection (TCP_INFO), time from Start until the d records are readable; round trips by protocol (hello, then batches and done in one flight)",
		ConnectBytesSent: cs, ConnectBytesReceived: cr, ConnectSeconds: cel.Seconds()})
	return nil
}

// push times writes on A until each is readable on B.
func (r *benchRun) push(ctx context.Context) error {
	c := r.c
	r.log("push: %d writes on A, each until readable on B", c.Writes)
	sub := r.b.Subscribe(1 << 12)
	defer sub.Close()
	val := make([]byte, c.Size)
	wait := func(key string) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return fmt.Errorf("push of %s: %w", key, ctx.Err())
			case ch, ok := <-sub.C:
				if !ok {
					return errors.New("push: the store closed")
				}
				if ch.Collection == "push" && ch.Key == key {
					return nil
				}
			}
		}
	}
	if err := r.a.PutRaw("push", "warm-up", val); err != nil {
		return err
	}
	if err := wait("warm-up"); err != nil {
		return err
	}
	lat := make([]time.Duration, 0, c.Writes)
	put := make([]time.Duration, 0, c.Writes)
	for i := range c.Writes {
		key := "w" + strconv.Itoa(i)
		rand.Read(val)
		t0 := time.Now()
		if err := r.a.PutRaw("push", key, val); err != nil {
			return err
		}
		put = append(put, time.Since(t0))
		if err := wait(key); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	r.rows = append(r.rows, benchPush{Row: "push", Writes: c.Writes, P50ms: ms(quantile(lat, 0.5)),
		P99ms: ms(quantile(lat, 0.99)), FloorMs: ms(r.rtt + r.commit), RTTms: ms(r.rtt), CommitMs: ms(r.commit),
		PutP50ms: ms(quantile(put, 0.5))})
	return nil
}

// rest counts the CPU time and wake-ups of the two connected, idle nodes; the resident
// memory of B alone (A closed), as it stands after the sync and after a restart; its
// bytes on disk; and, for comparison, the wake-ups of the same process with no node open.
func (r *benchRun) rest(ctx context.Context) error {
	c := r.c
	r.log("rest: %s with both nodes idle", c.Idle)
	idle, cpu, wk, err := idleWindow(ctx, c.Idle)
	if err != nil {
		return err
	}
	root, err := r.b.Store().Replication().Root()
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
	row := benchRest{Row: "rest", Records: held, RSSBytes: mem.RSS, RSSAnonBytes: mem.Anon, RSSFileBytes: mem.File,
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

	base := min(c.Idle, 10*time.Second)
	r.log("rest: %s with no node open (the Go runtime alone)", base)
	runtime.GC()
	if idle, cpu, wk, err = idleWindow(ctx, base); err != nil {
		return err
	}
	if idle > 0 {
		row.BaselineCPUFraction = cpu.Seconds() / idle.Seconds()
		row.BaselineWakeupsPerMin = float64(wk) / idle.Minutes()
	}
	r.rows = append(r.rows, row)
	return nil
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

// print writes the rows: JSON lines, or the table.
func (r *benchRun) print() error {
	if r.g.JSON {
		for _, row := range r.rows {
			if err := r.g.print(row, nil); err != nil {
				return err
			}
		}
		return nil
	}
	return r.g.print(nil, func(w io.Writer) { writeBenchTable(w, r.rows, r.c.Size) })
}
