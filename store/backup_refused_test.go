package store

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	bolt "go.etcd.io/bbolt"
)

// The age payload format (filippo.io/age internal/stream): after the text header, a 16-byte
// nonce, then chunks of 64 KiB of plaintext plus a 16-byte Poly1305 tag, the last one
// shorter and flagged as last.
const (
	ageNonceSize = 16
	ageChunkSize = 64<<10 + 16
)

// backupEnvInt reads a positive integer from the environment, or returns def.
func backupEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// ageLayout splits an age file into its text header and its payload chunks.
type ageLayout struct {
	headerEnd int      // offset of the nonce (end of the "--- mac" line)
	chunks    [][2]int // [start, end) of every encrypted chunk
}

func parseAgeLayout(t testing.TB, file []byte) ageLayout {
	t.Helper()
	i := bytes.Index(file, []byte("\n--- "))
	if i < 0 {
		t.Fatal("no age header MAC line")
	}
	j := bytes.IndexByte(file[i+1:], '\n')
	l := ageLayout{headerEnd: i + 1 + j + 1}
	for at := l.headerEnd + ageNonceSize; at < len(file); at += ageChunkSize {
		l.chunks = append(l.chunks, [2]int{at, min(at+ageChunkSize, len(file))})
	}
	return l
}

// chunk returns a copy of chunk k.
func (l ageLayout) chunk(file []byte, k int) []byte {
	return bytes.Clone(file[l.chunks[k][0]:l.chunks[k][1]])
}

// withChunks reassembles file's header and nonce with the given chunks.
func (l ageLayout) withChunks(file []byte, chunks ...[]byte) []byte {
	out := bytes.Clone(file[:l.headerEnd+ageNonceSize])
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out
}

// ageOpen decrypts a backup with the test's backup passphrase and returns its JSON lines
// (through gunzip: Export writes format version 2).
func ageOpen(t testing.TB, file []byte) []byte {
	t.Helper()
	id, err := age.NewScryptIdentity(string(backupPass))
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(file), id)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// ageSeal compresses and encrypts plain under the backup passphrase, as Export would:
// what a tool (or a person) holding the passphrase would produce by editing a backup's
// contents.
func ageSeal(t testing.TB, plain []byte) []byte {
	t.Helper()
	rcpt, err := age.NewScryptRecipient(string(backupPass))
	if err != nil {
		t.Fatal(err)
	}
	rcpt.SetWorkFactor(1)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(w)
	if _, err := zw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// backupLines splits plaintext into lines, each keeping its newline.
func backupLines(plain []byte) [][]byte {
	var out [][]byte
	for len(plain) > 0 {
		i := bytes.IndexByte(plain, '\n')
		if i < 0 {
			i = len(plain) - 1
		}
		out = append(out, plain[:i+1])
		plain = plain[i+1:]
	}
	return out
}

func joinBackupLines(ls ...[][]byte) []byte {
	var out []byte
	for _, l := range ls {
		for _, x := range l {
			out = append(out, x...)
		}
	}
	return out
}

// exportWF exports s with the given age work factor.
func exportWF(t testing.TB, s *Store, wf int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.Export(&buf, backupPass, &ExportOptions{WorkFactor: wf}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// refusalCase is one damaged backup: data builds the file (a fresh copy), pass is the
// passphrase tried (the right one when nil), want the error it must be refused with (any
// clear refusal, ErrBadBackup or ErrWrongPassphrase, when nil; any error at all with
// anyErr).
type refusalCase struct {
	class, name string
	data        func() []byte
	pass        []byte
	want        error
	anyErr      bool
}

// refusalTally counts the damaged backups tried, per class and per error.
type refusalTally struct {
	mu      sync.Mutex
	order   []string
	cases   map[string]int
	wrong   map[string]int // refused as ErrWrongPassphrase
	bad     map[string]int // refused as ErrBadBackup
	other   map[string]int // refused with another error
	failed  int
	samples []string
	spent   map[string]time.Duration // time in Import per class (summed over workers)
}

// runRefusals imports every case into s, on every core, and fails the test unless each is
// refused with a clear error (or the one it wants), returns no stats and leaves the
// store's sequence counter at seq0.
func runRefusals(t *testing.T, s *Store, seq0 uint64, cases []refusalCase) *refusalTally {
	rt := &refusalTally{cases: map[string]int{}, wrong: map[string]int{}, bad: map[string]int{}, other: map[string]int{}, spent: map[string]time.Duration{}}
	for _, c := range cases {
		if _, ok := rt.cases[c.class]; !ok {
			rt.order = append(rt.order, c.class)
			rt.cases[c.class] = 0
		}
	}
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(cases); i += workers {
				rt.one(s, seq0, cases[i])
			}
		}()
	}
	wg.Wait()
	return rt
}

func (rt *refusalTally) one(s *Store, seq0 uint64, c refusalCase) {
	pass := c.pass
	if pass == nil {
		pass = backupPass
	}
	data := c.data()
	start := time.Now()
	st, err := s.Import(bytes.NewReader(data), pass, false)
	spent := time.Since(start)
	seq, serr := s.Replication().LastSeq()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.spent[c.class] += spent
	rt.cases[c.class]++
	var problem string
	switch {
	case err == nil:
		problem = "import accepted"
	case serr != nil || seq != seq0:
		problem = fmt.Sprintf("refused (%v) but the store's sequence moved from %d to %d (%v)", err, seq0, seq, serr)
	case st != (ImportStats{}):
		problem = fmt.Sprintf("refused (%v) with stats %+v", err, st)
	case c.want != nil && !errors.Is(err, c.want):
		problem = fmt.Sprintf("refused with %v, want %v", err, c.want)
	case errors.Is(err, ErrWrongPassphrase):
		rt.wrong[c.class]++
	case errors.Is(err, ErrBadBackup):
		rt.bad[c.class]++
	case c.anyErr:
		rt.other[c.class]++
	default:
		problem = fmt.Sprintf("refused with an unclear error: %v", err)
	}
	if problem != "" {
		rt.failed++
		if len(rt.samples) < 10 {
			rt.samples = append(rt.samples, c.class+": "+c.name+": "+problem)
		}
	}
}

func (rt *refusalTally) report(t *testing.T) {
	t.Helper()
	total := 0
	for _, c := range rt.order {
		total += rt.cases[c]
		t.Logf("%-34s %6d cases, refused %6d (bad backup %d, wrong passphrase %d, other %d), %v in Import",
			c, rt.cases[c], rt.bad[c]+rt.wrong[c]+rt.other[c], rt.bad[c], rt.wrong[c], rt.other[c], rt.spent[c].Round(time.Millisecond))
	}
	t.Logf("%-34s %6d cases, %d not refused whole", "total", total, rt.failed)
	for _, s := range rt.samples {
		t.Error(s)
	}
}

// TestBackupRefusedByClass is test plan row 14 at scale: every kind of damage to a backup
// is refused whole, with nothing imported and the Merkle root unchanged. Classes:
// truncation (every age chunk boundary of a backup of more than three 64 KiB chunks, ±1
// byte, and random offsets), bit flips (MESHSYNC_BACKUP_FLIPS distinct bits, default
// 10,000: every bit of the age header and random bits of the body, and random bits in
// every chunk of the large backup), appended bytes, reordered, dropped and duplicated chunks,
// splices of two backups of the same mesh (at the ciphertext level, and at the line level
// re-encrypted under the right passphrase), a downgraded scrypt work factor in the age
// header, and wrong passphrases. MESHSYNC_BACKUP_CUTS (default 1,000) sets the random
// truncations, MESHSYNC_BACKUP_BIG (default 40) the random cases in the large backup;
// MESHSYNC_SEED=N replays.
func TestBackupRefusedByClass(t *testing.T) {
	flips := backupEnvInt("MESHSYNC_BACKUP_FLIPS", 10000)
	cuts := backupEnvInt("MESHSYNC_BACKUP_CUTS", 1000)
	bigSamples := backupEnvInt("MESHSYNC_BACKUP_BIG", 40)
	seed := mrand.Uint64()
	if s, err := strconv.ParseUint(os.Getenv("MESHSYNC_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (MESHSYNC_SEED=%d replays)", seed, seed)
	rng := mrand.New(mrand.NewPCG(seed, 14))

	// The small backup: records are added until the file holds at least `flips` bits, so
	// that the flips below are all at distinct positions.
	a := mustInit(t, testOpts("a"))
	var small []byte
	for i := 0; len(small)*8 < flips; i++ {
		if err := a.Put("notes", fmt.Sprint("n", i), []byte(fmt.Sprintf(`{"i":%d,"text":"a note of some length"}`, i))); err != nil {
			t.Fatal(err)
		}
		small = exportWF(t, a, 1)
	}
	// The large backup: more than three 64 KiB age chunks.
	for i := range 4 {
		blob := make([]byte, 24<<10)
		rand.Read(blob)
		if err := putRaw(a, "blobs", fmt.Sprint("b", i), blob); err != nil {
			t.Fatal(err)
		}
	}
	big := exportWF(t, a, 1)
	// A second backup of the same mesh, from another device with records of its own.
	d := peer(t, a, "d", nil)
	for i := range 4 {
		blob := make([]byte, 24<<10)
		rand.Read(blob)
		if err := putRaw(d, "blobs", fmt.Sprint("d", i), blob); err != nil {
			t.Fatal(err)
		}
	}
	other := exportWF(t, d, 1)
	// The same contents as big under the default-cost recipe's work factor (10 in tests).
	strong := exportWF(t, a, 10)
	bl, ol, sl := parseAgeLayout(t, big), parseAgeLayout(t, other), parseAgeLayout(t, small)
	if len(bl.chunks) <= 3 || len(ol.chunks) <= 3 {
		t.Fatalf("large backups have %d and %d chunks, want more than 3", len(bl.chunks), len(ol.chunks))
	}
	t.Logf("small backup: %d bytes (%d bits, age header %d bytes, %d chunk); large: %d bytes, %d chunks; other device's: %d bytes, %d chunks",
		len(small), len(small)*8, sl.headerEnd, len(sl.chunks), len(big), len(bl.chunks), len(other), len(ol.chunks))

	// The device the damaged backups are imported into: same mesh, a record of its own.
	target := peer(t, a, "target", nil)
	if err := target.Put("notes", "own", []byte(`"mine"`)); err != nil {
		t.Fatal(err)
	}
	bLines, oLines := backupLines(ageOpen(t, big)), backupLines(ageOpen(t, other))
	// Every genuine file (and a re-encryption of its plaintext) would import: the
	// refusals below come from the damage alone.
	for name, f := range map[string][]byte{"small": small, "large": big, "other": other, "strong": strong, "large re-encrypted": ageSeal(t, joinBackupLines(bLines))} {
		st, err := target.Import(bytes.NewReader(f), backupPass, true)
		if err != nil || st.New == 0 {
			t.Fatalf("genuine %s backup: dry run %+v, %v", name, st, err)
		}
	}

	var cases []refusalCase
	add := func(class, name string, data func() []byte) {
		cases = append(cases, refusalCase{class: class, name: name, data: data})
	}
	fixed := func(b []byte) func() []byte { return func() []byte { return b } }

	// Truncation: every chunk boundary of the large backup (and the ends of its header
	// and nonce), one byte either side, and random offsets in both backups.
	bounds := []int{0, bl.headerEnd, bl.headerEnd + ageNonceSize}
	for _, c := range bl.chunks {
		bounds = append(bounds, c[1])
	}
	for _, b := range bounds {
		for _, cut := range []int{b - 1, b, b + 1} {
			if cut >= 0 && cut < len(big) {
				add("truncation at a chunk boundary", fmt.Sprint("cut at ", cut), fixed(big[:cut]))
			}
		}
	}
	for range cuts {
		cut := rng.IntN(len(small))
		add("truncation at a random offset", fmt.Sprint("cut at ", cut), fixed(small[:cut]))
	}
	for range bigSamples / 2 {
		cut := rng.IntN(len(big))
		add("truncation, large, random offset", fmt.Sprint("cut at ", cut), fixed(big[:cut]))
	}

	// Bit flips in the small backup, age header and payload, and random bits in every
	// chunk of the large backup (the earlier chunks decrypt and their
	// envelopes are applied inside the import's transaction before the flip is met).
	flip := func(file []byte, pos int, mask byte) func() []byte {
		return func() []byte {
			b := bytes.Clone(file)
			b[pos] ^= mask
			return b
		}
	}
	// Every bit of the age header, and distinct random bits of the payload up to `flips`.
	headerBits, payloadBits := sl.headerEnd*8, (len(small)-sl.headerEnd)*8
	bits := make([]int, 0, max(flips, headerBits))
	for i := range headerBits {
		bits = append(bits, i)
	}
	for _, i := range rng.Perm(payloadBits)[:max(0, min(payloadBits, flips-headerBits))] {
		bits = append(bits, headerBits+i)
	}
	for _, i := range bits {
		class := "bit flip, age header"
		if i/8 >= sl.headerEnd {
			class = "bit flip, payload"
		}
		add(class, fmt.Sprintf("byte %d bit %d", i/8, i%8), flip(small, i/8, 1<<(i%8)))
	}
	for k := range bigSamples {
		c := bl.chunks[k%len(bl.chunks)]
		pos, mask := c[0]+rng.IntN(c[1]-c[0]), byte(1)<<rng.IntN(8)
		add("bit flip, large, chunk "+fmt.Sprint(k%len(bl.chunks)), fmt.Sprintf("byte %d mask %#x", pos, mask), flip(big, pos, mask))
	}

	// Appended bytes.
	n := len(bl.chunks)
	chunks := make([][]byte, n)
	for k := range chunks {
		chunks[k] = bl.chunk(big, k)
	}
	for name, tail := range map[string][]byte{"a byte": {'x'}, "a zero tag": make([]byte, 16), "a copy of the last chunk": chunks[n-1], "a full chunk": chunks[0]} {
		add("append", name, fixed(append(bytes.Clone(big), tail...)))
	}

	// Chunk reorder: every swap of two full chunks, the last chunk moved, chunks dropped
	// and duplicated.
	reorder := func(name string, mod func(cs [][]byte) [][]byte) {
		add("chunk reorder", name, func() []byte { return bl.withChunks(big, mod(slices.Clone(chunks))...) })
	}
	for i := 0; i < n-1; i++ {
		for j := i + 1; j < n-1; j++ {
			reorder(fmt.Sprintf("swap %d and %d", i, j), func(cs [][]byte) [][]byte { cs[i], cs[j] = cs[j], cs[i]; return cs })
		}
	}
	reorder("last chunk first", func(cs [][]byte) [][]byte { return append([][]byte{cs[n-1]}, cs[:n-1]...) })
	reorder("last two swapped", func(cs [][]byte) [][]byte { cs[n-2], cs[n-1] = cs[n-1], cs[n-2]; return cs })
	for k := range n {
		reorder(fmt.Sprint("chunk dropped ", k), func(cs [][]byte) [][]byte { return slices.Delete(cs, k, k+1) })
		reorder(fmt.Sprint("chunk duplicated ", k), func(cs [][]byte) [][]byte { return slices.Insert(cs, k, cs[k]) })
	}

	// Splices of two backups of the same mesh (same passphrase). In ciphertext: each file
	// has its own file key, so nothing of one decrypts under the other's header.
	add("splice, ciphertext", "header of one, payload of the other", fixed(append(bytes.Clone(big[:bl.headerEnd]), other[ol.headerEnd:]...)))
	add("splice, ciphertext", "header and nonce of one, chunks of the other", fixed(append(bytes.Clone(big[:bl.headerEnd+ageNonceSize]), other[ol.headerEnd+ageNonceSize:]...)))
	for k := 1; k < min(n, len(ol.chunks)); k++ {
		add("splice, ciphertext", fmt.Sprintf("first %d chunks of one, the rest of the other", k), fixed(append(bytes.Clone(big[:bl.chunks[k][0]]), other[ol.chunks[k][0]:]...)))
		add("splice, ciphertext", fmt.Sprint("chunk replaced by the other's ", k-1), fixed(bl.withChunks(big, slices.Replace(slices.Clone(chunks), k-1, k, ol.chunk(other, k-1))...)))
	}
	add("splice, ciphertext", "last chunk of the other", fixed(bl.withChunks(big, append(slices.Clone(chunks[:n-1]), ol.chunk(other, len(ol.chunks)-1))...)))
	add("splice, ciphertext", "one file after the other", fixed(append(bytes.Clone(big), other...)))
	// In plaintext, re-encrypted under the right passphrase (a tool that edits backups, or
	// two backups concatenated before encryption): the manifest catches every splice.
	bn, on := len(bLines), len(oLines)
	splices := map[string][]byte{
		"header of one, body and manifest of the other":    joinBackupLines(bLines[:1], oLines[1:]),
		"body of both, manifest of one":                    joinBackupLines(bLines[:bn-1], oLines[1:on-1], bLines[bn-1:]),
		"body of both, manifest of the other":              joinBackupLines(bLines[:bn-1], oLines[1:on-1], oLines[on-1:]),
		"one whole backup after the other":                 joinBackupLines(bLines, oLines),
		"first half of one, second half of the other":      joinBackupLines(bLines[:bn/2], oLines[on/2:]),
		"envelope line of the other replacing one":         joinBackupLines(bLines[:1], oLines[1:2], bLines[2:]),
		"two envelope lines swapped":                       joinBackupLines(bLines[:1], bLines[3:4], bLines[2:3], bLines[1:2], bLines[4:]),
		"manifest dropped":                                 joinBackupLines(bLines[:bn-1]),
		"envelope line dropped":                            joinBackupLines(bLines[:1], bLines[2:]),
		"envelope line duplicated":                         joinBackupLines(bLines[:2], bLines[1:]),
		"manifest of one after the other's first envelope": joinBackupLines(bLines[:2], bLines[bn-1:]),
	}
	for name, plain := range splices {
		add("splice or reorder, re-encrypted", name, fixed(ageSeal(t, plain)))
	}

	// A downgraded (or raised) scrypt work factor in the age header: the stanza's key
	// changes with it, so the file key does not unwrap (a wrong passphrase, as far as
	// anyone can tell); above age's limit of 22 it is refused before any work. (22 itself
	// would make this test derive a 4 GiB scrypt key.)
	for _, wf := range []int{1, 2, 9, 11, 23, 30} {
		dg := bytes.Replace(strong, []byte(" 10\n"), []byte(fmt.Sprintf(" %d\n", wf)), 1)
		if bytes.Equal(dg, strong) {
			t.Fatal("no work factor 10 in the age header")
		}
		want := ErrWrongPassphrase
		if wf > 22 {
			want = ErrBadBackup
		}
		cases = append(cases, refusalCase{class: "downgraded age work factor", name: fmt.Sprint("work factor 10 -> ", wf), data: fixed(dg), want: want})
	}

	// Wrong passphrases (the empty one is refused before any decryption).
	for _, p := range []string{"nope", "backup passphrasE", "backup passphrase ", string(testPass), "BACKUP PASSPHRASE"} {
		for name, f := range map[string][]byte{"small": small, "large": big} {
			cases = append(cases, refusalCase{class: "wrong passphrase", name: name + " with " + p, data: fixed(f), pass: []byte(p), want: ErrWrongPassphrase})
		}
	}
	cases = append(cases, refusalCase{class: "wrong passphrase", name: "empty passphrase", data: fixed(small), pass: []byte{}, anyErr: true})

	sub := target.Subscribe(1)
	defer sub.Close()
	set0 := envelopeSet(t, target)
	root0, err := target.Replication().Root()
	if err != nil {
		t.Fatal(err)
	}
	seq0, err := target.Replication().LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rt := runRefusals(t, target, seq0, cases)
	t.Logf("%d cases in %v", len(cases), time.Since(start).Round(time.Millisecond))
	rt.report(t)
	if envelopeSet(t, target) != set0 {
		t.Fatal("a refused backup changed the store's envelopes")
	}
	if root, _ := target.Replication().Root(); root != root0 {
		t.Fatal("a refused backup changed the Merkle root")
	}
	select {
	case c := <-sub.C:
		t.Fatalf("a refused backup published a change: %+v", c)
	default:
	}
	if sub.Missed() != 0 {
		t.Fatalf("a refused backup published %d changes", sub.Missed())
	}

	// Restore refuses the same damage and leaves no store behind.
	for name, f := range map[string][]byte{
		"cut at the last chunk boundary": big[:bl.chunks[n-1][0]],
		"chunks 1 and 2 swapped":         bl.withChunks(big, append([][]byte{chunks[0], chunks[2], chunks[1]}, chunks[3:]...)...),
		"body of both, manifest of one":  ageSeal(t, splices["body of both, manifest of one"]),
		"last chunk of the other":        bl.withChunks(big, append(slices.Clone(chunks[:n-1]), ol.chunk(other, len(ol.chunks)-1))...),
	} {
		dir := filepath.Join(t.TempDir(), "r")
		if _, _, err := Restore(dir, bytes.NewReader(f), backupPass, testPass, testOpts("r")); !errors.Is(err, ErrBadBackup) {
			t.Errorf("restore of %s: %v, want ErrBadBackup", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("restore of %s left a database file behind (%v)", name, err)
		}
	}

	// The genuine large backup still imports, and does change the store: the checks above
	// could see a change.
	st, err := target.Import(bytes.NewReader(big), backupPass, false)
	if err != nil || st.New == 0 {
		t.Fatalf("genuine import: %+v, %v", st, err)
	}
	if root, _ := target.Replication().Root(); root == root0 {
		t.Fatal("a genuine import left the Merkle root unchanged")
	}
}

// TestStoreHeaderDowngradeRefused: an attacker who edits the Argon2id parameters in the
// header of a stolen store file, to make each passphrase guess cheaper, gets nothing: below
// the floor Open refuses before deriving any key (ErrWeakKDF), and at or above the floor
// the parameters are authenticated, so the mesh key does not unwrap even with the right
// passphrase. The refused opens leave the file byte-identical. (TestKDFFloor covers a
// store created below the floor; TestHeaderTamper flips header bytes in memory.)
func TestStoreHeaderDowngradeRefused(t *testing.T) {
	old := kdfFloor
	defer func() { kdfFloor = old }()
	made := KDFParams{Time: 3, Memory: 4096, Threads: 2}
	dir := filepath.Join(t.TempDir(), "s")
	s, err := Init(dir, testPass, &Options{KDF: made, DeviceName: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("notes", "k", []byte(`"v"`)); err != nil {
		t.Fatal(err)
	}
	root0, _ := s.Replication().Root()
	s.Close()
	path := filepath.Join(dir, FileName)
	editHeader := func(fn func(h *header)) {
		t.Helper()
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			h, err := parseHeader(meta.Get(metaHeader))
			if err != nil {
				return err
			}
			fn(h)
			return meta.Put(metaHeader, h.marshal())
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	downgrades := map[string]func(h *header){
		"fewer passes":   func(h *header) { h.KDF.Time = 1 },
		"less memory":    func(h *header) { h.KDF.Memory = 1024 },
		"fewer lanes":    func(h *header) { h.KDF.Threads = 1 },
		"all minimal":    func(h *header) { h.KDF = testKDF },
		"memory halved":  func(h *header) { h.KDF.Memory /= 2 },
		"one pass fewer": func(h *header) { h.KDF.Time-- },
	}
	cases := 0
	for name, fn := range downgrades {
		for _, floor := range []KDFParams{made, testKDF} {
			editHeader(func(h *header) { h.KDF = made })
			editHeader(fn)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			kdfFloor = floor
			want := ErrWeakKDF // below the floor: refused before any Argon2id work
			if floor == testKDF {
				want = ErrWrongPassphrase // authenticated parameters: the unwrap fails
			}
			if _, err := Open(dir, testPass, nil); !errors.Is(err, want) {
				t.Errorf("%s with floor %+v: Open: %v, want %v", name, floor, err, want)
			}
			cases++
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Errorf("%s: a refused Open changed the file", name)
			}
		}
	}
	// The genuine header still opens with the floor at the parameters it was made with.
	kdfFloor = made
	editHeader(func(h *header) { h.KDF = made })
	s, err = Open(dir, testPass, nil)
	if err != nil {
		t.Fatalf("genuine header: %v", err)
	}
	defer mustVerifyClose(t, s)
	if root, _ := s.Replication().Root(); root != root0 {
		t.Error("the store changed")
	}
	t.Logf("downgraded store headers tried: %d (each refused unless an error above says otherwise)", cases)
}
