package bench

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// Options configures Run. A zero count means its default.
type Options struct {
	// Records is how many records a fresh device receives; the incremental rows share as
	// many. Default 100,000.
	Records int
	// Size is the bytes of each record's value, at most store.MaxValueSize. Default 1,024.
	Size int
	// Changes is how many records change for the incremental rows (d), at most Records.
	// Default 10.
	Changes int
	// Writes is how many writes the push row times. Default 1,000.
	Writes int
	// Idle is the window over which the idle nodes' CPU time and wake-ups are counted;
	// zero measures no idle time.
	Idle time.Duration
	// Dir is an existing directory for the nodes' stores and the limit fixtures. Run
	// leaves the stores there; the caller removes the directory.
	Dir string
	// Progress, when not nil, receives one line per step, with the time since the start.
	Progress io.Writer
	// Logger, when not nil, logs what the nodes do (each with a "node" attribute).
	Logger *slog.Logger
	// Profile, when not nil, is called as each measured phase starts ("fill",
	// "initial_sync", "reconnect", "incremental", "push") and the function it returns as
	// the phase ends: `meshsync bench --profile-dir` writes a CPU, block and mutex
	// profile of each phase.
	Profile func(phase string) (stop func())
}

func (o Options) withDefaults() (Options, error) {
	o.Records = orDefault(o.Records, 100000)
	o.Size = orDefault(o.Size, 1024)
	o.Changes = orDefault(o.Changes, 10)
	o.Writes = orDefault(o.Writes, 1000)
	switch {
	case o.Records < 1, o.Writes < 1, o.Idle < 0:
		return o, errors.New("options: records and writes must be positive, idle not negative")
	case o.Size < 1 || o.Size > store.MaxValueSize:
		return o, fmt.Errorf("options: size must be between 1 and %d", store.MaxValueSize)
	case o.Changes < 1 || o.Changes > o.Records:
		return o, errors.New("options: changes must be between 1 and records")
	case o.Dir == "":
		return o, errors.New("options: no directory")
	}
	return o, nil
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// collection holds the bench's records.
const collection = "bench"

// run is one run's state: the nodes, the raw limit fixtures, the rows so far.
type run struct {
	o      Options
	kdf    store.KDFParams
	a, b   *node.Node
	hosts  *rawHosts
	bolt   *boltLimit
	rtt    time.Duration
	commit time.Duration
	small  ReconnectRow // the reconnect row's reference at 10,000 records
	// smallSrc and smallC are the reference's mesh, open from smallReconnect to reconnectRow.
	smallSrc, smallC *node.Node
	ports            map[string]int // the TCP port of each device that reconnects (fixedPort)
	// firstPush is the first change after a pairing, until the new device read it.
	firstPush time.Duration
	rows      []any
	log       func(format string, args ...any)
	phase     func(name string) (stop func())
}

// Run measures meshsync on this machine: two real nodes on loopback with real bbolt files
// in o.Dir, every figure beside a limit measured in the same run. It returns one value of
// each row type, in the order rows.go lists them.
func Run(ctx context.Context, o Options) ([]any, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &run{o: o, kdf: store.DefaultKDF}
	// Test mode (the CLI's testscript) lowers the KDF floor; say so rather than measure
	// the real Argon2id there.
	if testmode.Enabled() {
		r.kdf = store.KDFParams(testmode.KDF)
	}
	start := time.Now()
	r.log = func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "bench %6.1fs  "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
		}
	}
	defer r.close()
	r.phase = func(name string) func() {
		if o.Profile == nil {
			return func() {}
		}
		return o.Profile(name)
	}
	r.rows = append(r.rows, MachineRow{Row: "machine", CPU: cpuModel(), Cores: runtime.NumCPU(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), LoadAvg: loadAvg()})
	for _, step := range []func(context.Context) error{r.smallReconnect, r.initialSync, r.scopedSync, r.reconnectRow, r.incremental, r.push, r.rest} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return r.rows, nil
}

func (r *run) close() {
	for _, n := range []*node.Node{r.a, r.b, r.smallC, r.smallSrc} {
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

func (r *run) config(name string) node.Config {
	cfg := node.Config{
		Dir:         filepath.Join(r.o.Dir, name),
		Passphrase:  []byte("bench passphrase " + name),
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		LANOnly:     true,
		Store:       store.Options{KDF: r.kdf},
	}
	if r.o.Logger != nil {
		cfg.Logger = r.o.Logger.With("node", name)
	}
	if name == "b" || name == "c" {
		cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/" + strconv.Itoa(r.fixedPort(name))}
	}
	if name == "a" || name == "a10k" {
		// The source never dials the device catching up: every session it takes part in
		// is one the measured device starts, so each byte count covers one session.
		cfg.RetryMin = time.Hour
	}
	return cfg
}

// fixedPort is the TCP port the device name listens on at every start of the run: a
// device that reconnects comes back on its address, as a daemon on its port does, so
// that a reconnect with nothing to send has nothing to send (a new port is a new address
// in its device record, which both devices write). 0 when no free port was found.
func (r *run) fixedPort(name string) int {
	if p, ok := r.ports[name]; ok {
		return p
	}
	if r.ports == nil {
		r.ports = map[string]int{}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	r.ports[name] = l.Addr().(*net.TCPAddr).Port
	l.Close()
	return r.ports[name]
}

// initialSync fills A, measures the limits on A's envelopes, then has a fresh device B join
// and receive them all.
func (r *run) initialSync(ctx context.Context) error {
	o := r.o
	var err error
	if r.a, err = node.Init(ctx, r.config("a"), "a"); err != nil {
		return err
	}
	if err := r.a.Start(ctx); err != nil {
		return err
	}
	if _, err := r.warm(int64(o.Records)*int64(o.Size+512), "A's records"); err != nil {
		return err
	}
	r.log("A: writing %d records of %d bytes", o.Records, o.Size)
	stop := r.phase("fill")
	fill, err := fillStore(r.a.Store(), o.Records, o.Size)
	stop()
	if err != nil {
		return err
	}
	r.log("limits: raw libp2p stream, bbolt in the store's layout, XChaCha20-Poly1305 open")
	if r.hosts, err = newRawHosts(ctx); err != nil {
		return err
	}
	// Each side of the ratio writes about what A's store holds, on memory warmed alike.
	warmBytes, err := dirBytes(filepath.Join(o.Dir, "a"))
	if err != nil {
		return err
	}
	if _, err := r.warm(warmBytes, "the bbolt limit"); err != nil {
		return err
	}
	limitDB := filepath.Join(o.Dir, "limit.db")
	if r.bolt, err = openBoltLimit(limitDB); err != nil {
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
	env := make([]byte, lim.Bytes/int64(max(1, o.Records)))
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
	if err := os.Remove(limitDB); err != nil {
		r.log("warning: %v", err)
	}

	r.log("B: joining A and receiving %d records", o.Records)
	code, _, err := r.a.Invite(time.Minute)
	if err != nil {
		return err
	}
	if r.b, err = node.Join(ctx, r.config("b"), code, "b"); err != nil {
		return err
	}
	sub := r.b.Subscribe(1 << 16)
	defer sub.Close()
	warmRate, err := r.warm(warmBytes, "B's initial sync")
	if err != nil {
		return err
	}
	stop = r.phase("initial_sync")
	c0 := r.b.Store().Replication().Commits()
	t0 := time.Now()
	if err := r.startB(ctx); err != nil {
		return err
	}
	got, missed, err := waitChanges(ctx, sub, o.Records, syncTimeout(o.Records))
	el := time.Since(t0)
	commits := r.b.Store().Replication().Commits() - c0
	stop()
	if err != nil {
		return fmt.Errorf("initial sync: %w", err)
	}
	if missed > 0 || got != o.Records {
		return fmt.Errorf("initial sync moved %d records (%d more not seen), want %d", got, missed, o.Records)
	}
	_, wire, _, _ := tcpBytes(tcpPorts(r.b.Addrs()), tcpPorts(r.a.Addrs()))
	rate := float64(got) / el.Seconds()
	limit, by := lim.slowest()
	r.rows = append(r.rows, InitialSyncRow{Row: "initial_sync", Records: got, Seconds: el.Seconds(),
		RecordsPerS: rate, LimitRecordsPerS: limit, OfLimit: rate / limit, LimitBy: by,
		StreamPerS: lim.Stream, BoltPerS: lim.Bolt, AEADPerS: lim.AEAD, EnvelopeBytes: lim.Bytes,
		WireBytes: wire, FillPerS: fill, Commits: int(commits), WarmBytes: warmBytes, WarmMBPerS: warmRate})
	r.log("initial sync: %d records in %.2f s", got, el.Seconds())
	return r.signatures(got, el)
}

// warm is warmMemory in the run's directory, logged.
func (r *run) warm(n int64, what string) (float64, error) {
	rate, err := warmMemory(r.o.Dir, n)
	if err == nil && n > 0 {
		r.log("warmed %d MiB of memory for %s (%.0f MiB/s)", n>>20, what, rate)
	}
	return rate, err
}

// dirBytes is the size of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	return n, nil
}

// signatures measures one Ed25519 signature and verification and sets them beside the
// initial sync: the authority records it carried, and every record, had each been signed.
func (r *run) signatures(records int, initial time.Duration) error {
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
	for _, c := range []string{store.DevicesCollection, store.RemovalsCollection, store.KeysCollection, store.PolicyCollection} {
		recs, err := r.b.Store().List(c, "")
		if err != nil {
			return err
		}
		authority += len(recs)
	}
	r.rows = append(r.rows, SignaturesRow{Row: "signatures", SignMicros: float64(sign.Nanoseconds()) / 1e3, VerifyMicros: float64(verify.Nanoseconds()) / 1e3,
		AuthorityRecords: authority, AuthoritySeconds: float64(authority) * verify.Seconds(),
		AllRecordsSeconds: float64(records) * verify.Seconds() / float64(runtime.NumCPU()), InitialSeconds: initial.Seconds()})
	return nil
}

// startB starts B and has it sync with A at once (rather than after its loop's first
// jittered timer).
func (r *run) startB(ctx context.Context) error {
	if err := r.b.Start(ctx); err != nil {
		return err
	}
	return r.b.SyncNow(ctx)
}

func syncTimeout(records int) time.Duration {
	return 2*time.Minute + time.Duration(records)*time.Millisecond
}

// fillStore writes n raw records of size random bytes into the bench's collection in
// transactions of limitBatch and returns the rate.
func fillStore(st *store.Store, n, size int) (float64, error) {
	return fillCollection(st, collection, n, size)
}

// fillCollection is fillStore into coll.
func fillCollection(st *store.Store, coll string, n, size int) (float64, error) {
	val := make([]byte, size)
	// ChaCha8 seeded from the system: values as incompressible as crypto/rand's, made
	// five times faster; crypto/rand took an eighth of the fill's time at 1M records,
	// which is the bench making data, not A writing it.
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	src := rand.NewChaCha8(seed)
	t0 := time.Now()
	for i := 0; i < n; i += limitBatch {
		err := st.Update(func(tx *store.Tx) error {
			for j := i; j < min(n, i+limitBatch); j++ {
				src.Read(val)
				if err := tx.PutRaw(coll, recordKey(j), val); err != nil {
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

func recordKey(i int) string { return fmt.Sprintf("r%09d", i) }

// waitChanges counts the records of the bench collection that arrive from elsewhere
// until want did, or the timeout.
func waitChanges(ctx context.Context, sub *store.Subscription, want int, timeout time.Duration) (got int, missed uint64, err error) {
	return waitCollection(ctx, sub, collection, want, timeout)
}

// waitCollection counts the records of coll that arrive from elsewhere until want did, or
// the timeout.
func waitCollection(ctx context.Context, sub *store.Subscription, coll string, want int, timeout time.Duration) (got int, missed uint64, err error) {
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
			if ch.Collection == coll && !ch.Local {
				got++
			}
		}
	}
	return got, sub.Missed(), nil
}
