package store

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"filippo.io/age"
	"github.com/meshsync/meshsync/resolve"
	bolt "go.etcd.io/bbolt"
)

// A backup is an age file (scrypt passphrase recipient), so the stock age tool can open it in
// an emergency. Inside is a gzip stream (format version 2; `age -d FILE | gunzip` shows it)
// of JSON lines; a backup of format version 1 holds the JSON lines uncompressed, and still
// imports:
//
//	{"format":"meshsync-backup","version":2,"mesh_key":…,"created":…,…}   header
//	{"e":"<base64 envelope>"}                                                 every envelope
//	{"r":{"collection":…,"key":…,"value":…}}                                  readable copy
//	{"end":{"lines":N,"envelopes":M,"sha256":"<hex of every byte before this line>"}}
//
// Import applies only the envelopes, like a sync, in one transaction that commits only after
// the age stream ended cleanly and the manifest matched: a truncated or altered file is
// refused whole.

const (
	backupFormat = "meshsync-backup"
	// backupVersion is the format Export writes: JSON lines compressed with gzip, then
	// encrypted. backupVersionPlain (the lines encrypted as they are) still imports.
	backupVersion      = 2
	backupVersionPlain = 1
	maxBackupLine      = 4 << 20
)

// gzipMagic starts every gzip stream (RFC 1952); a JSON line starts with '{'.
var gzipMagic = []byte{0x1f, 0x8b}

type backupHeader struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	MeshKey    []byte    `json:"mesh_key"`
	MeshID     string    `json:"mesh_id"`
	Device     string    `json:"device"`
	DeviceName string    `json:"device_name"`
	Created    time.Time `json:"created"`
	// EpochKeys are the data keys of rotated key epochs (after a device removal): a store
	// restored on a new device has no grant addressed to it, and opens the re-sealed
	// envelopes with these.
	EpochKeys []epochKey `json:"epoch_keys,omitempty"`
	// Members are the devices the exporting device counted as members (id → signing
	// key): a store restored from the backup trusts them as anchors (authority.go).
	Members map[resolve.DeviceID][]byte `json:"members,omitempty"`
}

type backupLine struct {
	E   []byte         `json:"e,omitempty"`
	R   *backupRecord  `json:"r,omitempty"`
	End *backupTrailer `json:"end,omitempty"`
}

type backupRecord struct {
	Collection string          `json:"collection"`
	Key        string          `json:"key"`
	Device     string          `json:"device"`
	Deleted    bool            `json:"deleted,omitempty"`
	Value      json.RawMessage `json:"value,omitempty"`
	Raw        []byte          `json:"raw,omitempty"`
}

type backupTrailer struct {
	Lines     int    `json:"lines"`
	Envelopes int    `json:"envelopes"`
	SHA256    string `json:"sha256"`
}

// defaultBackupWorkFactor is age's own default: about a second to open a backup.
var defaultBackupWorkFactor = 18

// ExportOptions tune Export. A nil *ExportOptions means the defaults.
type ExportOptions struct {
	// WorkFactor is age's scrypt work factor (log2 N), at most MaxBackupWorkFactor. Default
	// 18, about a second.
	WorkFactor int
	// Progress, when not nil, is called as envelopes are written: done so far of about
	// total (the store's record count; a record with open conflicts holds several
	// envelopes, so done may pass it, and total then follows done).
	Progress func(done, total int64)
}

// MaxBackupWorkFactor is the largest scrypt work factor a backup may ask for: 2^20 costs
// 1 GiB of memory to open. A file that asks for more is refused before any work, so that
// a hostile backup cannot exhaust a phone's memory.
const MaxBackupWorkFactor = 20

// BackupInfo describes a written backup.
type BackupInfo struct {
	Envelopes int       `json:"envelopes"`
	Records   int       `json:"records"`
	Created   time.Time `json:"created"`
}

// Export writes every envelope (records, device list, policies, grants) and the mesh key
// into one age file encrypted under pass. It reads a consistent snapshot; the live
// database file is never copied.
func (s *Store) Export(w io.Writer, pass []byte, opts *ExportOptions) (BackupInfo, error) {
	if err := s.needKey("export"); err != nil {
		return BackupInfo{}, err
	}
	if len(pass) == 0 {
		return BackupInfo{}, fmt.Errorf("export: empty backup passphrase")
	}
	rcpt, err := age.NewScryptRecipient(string(pass))
	if err != nil {
		return BackupInfo{}, fmt.Errorf("export: %w", err)
	}
	wf := defaultBackupWorkFactor
	if opts != nil && opts.WorkFactor > 0 {
		wf = opts.WorkFactor
	}
	if wf > MaxBackupWorkFactor {
		return BackupInfo{}, fmt.Errorf("export: %w: work factor %d, want at most %d", ErrInvalid, wf, MaxBackupWorkFactor)
	}
	rcpt.SetWorkFactor(wf)
	aw, err := age.Encrypt(w, rcpt)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("export: %w", err)
	}
	// Compressed before it is encrypted: ciphertext does not compress. The fastest level
	// keeps an export bound by reading the store, not by deflate.
	zw, err := gzip.NewWriterLevel(aw, gzip.BestSpeed)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("export: %w", err)
	}
	bw := bufio.NewWriterSize(zw, 1<<16)
	h := sha256.New()
	out := io.MultiWriter(bw, h)
	info := BackupInfo{Created: s.opts.Now().UTC().Truncate(time.Second)}
	lines := 0
	writeLine := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		lines++
		_, err = out.Write(append(b, '\n'))
		return err
	}
	meshID := s.Keys().MeshID()
	if err := s.Keys().LoadKeyEpochs(); err != nil {
		return info, fmt.Errorf("export: %w", err)
	}
	var epochKeys []epochKey
	if es := s.keys.epochs.Load(); es != nil {
		epochKeys = es.all()
	}
	members, err := s.currentMembers()
	if err != nil {
		return info, fmt.Errorf("export: %w", err)
	}
	err = writeLine(backupHeader{Format: backupFormat, Version: backupVersion, MeshKey: s.keys.mesh,
		MeshID: hex.EncodeToString(meshID[:]), Device: string(s.device.ID), DeviceName: s.device.Name, Created: info.Created,
		EpochKeys: epochKeys, Members: members})
	if err != nil {
		return info, fmt.Errorf("export: %w", err)
	}
	progress := func(int64) {}
	if opts != nil && opts.Progress != nil {
		root, err := s.Replication().Root()
		if err != nil {
			return info, fmt.Errorf("export: %w", err)
		}
		total := int64(root.Count)
		progress = func(done int64) {
			total = max(total, done)
			if done%1024 == 0 || done == total {
				opts.Progress(done, total)
			}
		}
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEnv).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := writeLine(backupLine{E: v}); err != nil {
				return err
			}
			info.Envelopes++
			progress(int64(info.Envelopes))
			env, err := UnmarshalEnvelope(v)
			if err != nil {
				return fmt.Errorf("envelope %d: %w", be64(k), err)
			}
			p, err := s.keys.open(env)
			if err != nil {
				return fmt.Errorf("envelope %d: %w", be64(k), err)
			}
			rec := &backupRecord{Collection: p.Collection, Key: p.Key, Device: string(env.Version.Device)}
			switch p.Value.Kind {
			case resolve.KindDeleted:
				rec.Deleted = true
			case resolve.KindJSON:
				rec.Value = p.Value.Data
			default:
				rec.Raw = p.Value.Data
			}
			if err := writeLine(backupLine{R: rec}); err != nil {
				return err
			}
			info.Records++
		}
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("export: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := writeLine(backupLine{End: &backupTrailer{Lines: lines, Envelopes: info.Envelopes, SHA256: sum}}); err != nil {
		return info, fmt.Errorf("export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return info, fmt.Errorf("export: %w", err)
	}
	if err := zw.Close(); err != nil {
		return info, fmt.Errorf("export: %w", err)
	}
	if err := aw.Close(); err != nil {
		return info, fmt.Errorf("export: %w", err)
	}
	return info, nil
}

// ExportFile writes a backup to path atomically (a temporary file renamed into place).
func ExportFile(s *Store, path string, pass []byte, opts *ExportOptions) (BackupInfo, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".meshsync-export-*")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("export: %w", err)
	}
	defer os.Remove(tmp.Name())
	info, err := s.Export(tmp, pass, opts)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return info, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return info, fmt.Errorf("export: %w", err)
	}
	return info, nil
}

// ImportStats says what an import did, or with a dry run what it would do, envelope by
// envelope.
type ImportStats struct {
	Envelopes   int `json:"envelopes"`   // envelopes in the backup
	New         int `json:"new"`         // records this store did not have
	Newer       int `json:"newer"`       // versions that supersede what the store holds
	Conflicting int `json:"conflicting"` // versions concurrent with what the store holds
	Unchanged   int `json:"unchanged"`   // versions already held or superseded here
	Rejected    int `json:"rejected"`    // envelopes that failed authentication
}

// backupReader decrypts a backup and checks its framing line by line.
type backupReader struct {
	br      *bufio.Reader // the JSON lines
	outer   *bufio.Reader // the age payload, when br reads it through gzip (version 2)
	h       hashWriter
	hdr     backupHeader
	lines   int
	envs    int
	done    bool
	trailer backupTrailer
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func openBackup(r io.Reader, pass []byte) (*backupReader, error) {
	if len(pass) == 0 {
		return nil, fmt.Errorf("read backup: %w: the backup passphrase is empty", ErrWrongPassphrase)
	}
	id, err := age.NewScryptIdentity(string(pass))
	if err != nil {
		return nil, fmt.Errorf("read backup: %w", err)
	}
	id.SetMaxWorkFactor(MaxBackupWorkFactor)
	ar, err := age.Decrypt(r, id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("read backup: %w (for this backup file)", ErrWrongPassphrase)
		}
		return nil, fmt.Errorf("read backup: %w: %v", ErrBadBackup, err)
	}
	b := &backupReader{br: bufio.NewReaderSize(ar, 1<<16), h: sha256.New()}
	want := backupVersionPlain
	if magic, _ := b.br.Peek(len(gzipMagic)); bytes.Equal(magic, gzipMagic) {
		zr, err := gzip.NewReader(b.br)
		if err != nil {
			return nil, fmt.Errorf("read backup: %w: bad compressed stream: %v", ErrBadBackup, err)
		}
		zr.Multistream(false) // one gzip member, then the age payload must end
		b.outer, b.br, want = b.br, bufio.NewReaderSize(zr, 1<<16), backupVersion
	}
	line, err := b.line()
	if err != nil {
		return nil, err
	}
	b.h.Write(line)
	if err := json.Unmarshal(line, &b.hdr); err != nil || b.hdr.Format != backupFormat {
		return nil, fmt.Errorf("read backup: %w: no meshsync header", ErrBadBackup)
	}
	switch v := b.hdr.Version; {
	case v != backupVersion && v != backupVersionPlain:
		return nil, fmt.Errorf("read backup: %w: format version %d is not supported by this meshsync", ErrBadBackup, v)
	case v != want:
		return nil, fmt.Errorf("read backup: %w: format version %d in a %s file", ErrBadBackup, v,
			map[bool]string{true: "compressed", false: "uncompressed"}[b.outer != nil])
	}
	if len(b.hdr.MeshKey) != meshKeySize {
		return nil, fmt.Errorf("read backup: %w: bad mesh key", ErrBadBackup)
	}
	return b, nil
}

func (b *backupReader) line() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := b.br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxBackupLine {
			return nil, fmt.Errorf("read backup: %w: line too long", ErrBadBackup)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read backup: %w: file ends early (truncated)", ErrBadBackup)
		}
		return nil, fmt.Errorf("read backup: %w: %v", ErrBadBackup, err)
	}
	b.lines++
	return buf, nil
}

// next returns the next envelope, or nil at the verified end of the backup.
func (b *backupReader) next() ([]byte, error) {
	for {
		line, err := b.line()
		if err != nil {
			return nil, err
		}
		var l backupLine
		if err := json.Unmarshal(line, &l); err != nil {
			return nil, fmt.Errorf("read backup: %w: line %d: %v", ErrBadBackup, b.lines, err)
		}
		if l.End != nil {
			want := hex.EncodeToString(b.h.Sum(nil))
			if l.End.SHA256 != want || l.End.Envelopes != b.envs || l.End.Lines != b.lines-1 {
				return nil, fmt.Errorf("read backup: %w: manifest does not match the contents", ErrBadBackup)
			}
			// The lines end right here, cleanly (for version 2 the gzip stream ends and
			// its checksum holds), and so does the age stream.
			if _, err := b.br.ReadByte(); !errors.Is(err, io.EOF) {
				if err != nil { // a compressed stream that fails its checksum or ends early
					return nil, fmt.Errorf("read backup: %w: %v", ErrBadBackup, err)
				}
				return nil, fmt.Errorf("read backup: %w: data after the manifest", ErrBadBackup)
			}
			if b.outer != nil {
				if _, err := b.outer.ReadByte(); !errors.Is(err, io.EOF) {
					return nil, fmt.Errorf("read backup: %w: data after the compressed stream", ErrBadBackup)
				}
			}
			b.done = true
			return nil, nil
		}
		b.h.Write(line)
		if l.E != nil {
			b.envs++
			return l.E, nil
		}
		if l.R == nil {
			return nil, fmt.Errorf("read backup: %w: line %d has no known field", ErrBadBackup, b.lines)
		}
	}
}

// classify says how an envelope relates to what the store holds for its record.
func classify(set []hashed, in hashed) (kind string) {
	if len(set) == 0 {
		return "new"
	}
	if _, changed := mergeAntichain(set, in); !changed {
		return "unchanged"
	}
	for _, e := range set {
		if in.env.Version.VV.Compare(e.env.Version.VV) != resolve.After {
			return "conflicting"
		}
	}
	return "newer"
}

func (st *ImportStats) count(kind string) {
	switch kind {
	case "new":
		st.New++
	case "newer":
		st.Newer++
	case "conflicting":
		st.Conflicting++
	default:
		st.Unchanged++
	}
}

// Import applies a backup like a sync: it merges, and never overwrites newer data. With
// dryRun nothing is written and the stats say what would change. A damaged file, a wrong
// passphrase or a backup of another mesh changes nothing.
func (s *Store) Import(r io.Reader, pass []byte, dryRun bool) (ImportStats, error) {
	if err := s.needKey("import"); err != nil {
		return ImportStats{}, err
	}
	b, err := openBackup(r, pass)
	if err != nil {
		return ImportStats{}, err
	}
	if !bytes.Equal(b.hdr.MeshKey, s.keys.mesh) {
		return ImportStats{}, fmt.Errorf("import: %w: it was made on mesh %s", ErrOtherMesh, b.hdr.MeshID)
	}
	return s.importBody(b, dryRun)
}

// importBody applies a backup's envelopes to this store in one transaction (Restore has
// its own, restoreBody).
func (s *Store) importBody(b *backupReader, dryRun bool) (ImportStats, error) {
	if dryRun {
		return s.importDryRun(b)
	}
	var st ImportStats
	var changes []Change
	var prev, mine *epochSet // the keyring's rotated keys before and after the import's
	err := s.update(func(btx *bolt.Tx) error {
		t := s.newTx(btx)
		// The keys of rotated epochs open the envelopes re-sealed under them; they come from
		// a backup of this very mesh (the mesh key matched). They are installed for this
		// transaction and kept only if it commits: a file that fails its manifest leaves the
		// keyring as it was (see below).
		if len(b.hdr.EpochKeys) > 0 {
			if err := s.loadEpochKeys(btx); err != nil { // this device's own keys first
				return err
			}
			prev = s.keys.epochs.Load()
			s.keys.install(b.hdr.EpochKeys...)
			mine = s.keys.epochs.Load()
			if err := s.saveEpochKeys(btx, b.hdr.EpochKeys...); err != nil {
				return err
			}
		}
		err := b.each(t, &st, func(raw []byte, _ *Envelope) error { return t.applyBackup(raw, &st) })
		if err != nil {
			return err
		}
		changes = t.changes
		t.changes = nil
		return t.flush()
	})
	if err != nil {
		if mine != nil {
			// Unless another writer installed keys since (then its set holds ours too).
			s.keys.epochs.CompareAndSwap(mine, prev)
		}
		return ImportStats{}, err
	}
	s.feed.publish(changes)
	if slices.ContainsFunc(changes, func(c Change) bool { return c.Collection == RemovalsCollection }) {
		if err := s.writeViews(); err != nil { // as after a sync (apply.go)
			return st, fmt.Errorf("import: write this device's view of a removal: %w", err)
		}
	}
	return st, nil
}

// applyBackup applies one envelope of a backup, counting a refusal in st.
func (t *Tx) applyBackup(raw []byte, st *ImportStats) error {
	var res ApplyResult
	if err := t.apply([][]byte{raw}, &res); err != nil {
		return err
	}
	st.Rejected += len(res.Rejected)
	return nil
}

// importDryRun reads a whole backup in a read-only transaction and counts what an import
// would do. It installs no key and writes nothing: the envelopes of rotated epochs are
// opened with a scratch keyring that holds the backup's keys beside this device's.
func (s *Store) importDryRun(b *backupReader) (ImportStats, error) {
	var st ImportStats
	err := s.db.View(func(btx *bolt.Tx) error {
		if err := s.loadEpochKeys(btx); err != nil {
			return err
		}
		keys := s.keys.withEpochKeys(b.hdr.EpochKeys)
		return b.each(s.newTx(btx), &st, func(_ []byte, env *Envelope) error {
			if _, err := keys.open(env); err != nil {
				st.Rejected++
			}
			return nil
		})
	})
	if err != nil {
		return ImportStats{}, err
	}
	return st, nil
}

// each calls fn for every envelope of the backup, after counting in st how it relates to
// what the store holds, until the manifest checked out.
func (b *backupReader) each(t *Tx, st *ImportStats, fn func(raw []byte, env *Envelope) error) error {
	for {
		more, err := b.step(t, st, fn)
		if err != nil || !more {
			return err
		}
	}
}

// step is one envelope of each: it reports false at the verified end of the backup.
func (b *backupReader) step(t *Tx, st *ImportStats, fn func(raw []byte, env *Envelope) error) (bool, error) {
	raw, err := b.next()
	if err != nil {
		return false, err
	}
	if raw == nil {
		return false, nil
	}
	st.Envelopes++
	env, err := UnmarshalEnvelope(raw)
	if err != nil {
		return false, fmt.Errorf("import: %w: envelope %d: %v", ErrBadBackup, st.Envelopes, err)
	}
	set, err := t.antichain(env.ID)
	if err != nil {
		return false, err
	}
	if env.Tag == (Tag{}) {
		env.Tag = tagOf(set) // a backup from before tags: compare as the store tagged it
	}
	h, err := newHashed(env)
	if err != nil {
		return false, err
	}
	st.count(classify(set, h))
	return true, fn(raw, env)
}

// withEpochKeys returns a keyring that opens envelopes (it has the id key and the data
// keys, nothing else) with extra rotated keys beside k's own; k is left as it is.
func (k *keyring) withEpochKeys(extra []epochKey) *keyring {
	c := &keyring{id: k.id, data: k.data}
	var cur []epochKey
	if es := k.epochs.Load(); es != nil {
		cur = es.all()
	}
	c.epochs.Store(newEpochSet(append(cur, extra...)))
	return c
}

// Restore creates a new store in dir from a backup: the same mesh key under a new device
// identity, protected by storePass, holding every envelope of the backup. A damaged backup
// leaves no store behind. The new store is written beside its final place, in
// transactions of RestoreBatchBytes of envelopes (memory stays bounded whatever the size
// of the backup), and moved into place only once the whole backup checked out.
func Restore(dir string, r io.Reader, backupPass, storePass []byte, opts *Options) (*Store, ImportStats, error) {
	b, err := openBackup(r, backupPass)
	if err != nil {
		return nil, ImportStats{}, err
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err == nil {
		return nil, ImportStats{}, fmt.Errorf("restore into %s: %w", dir, ErrExists)
	}
	tmp := filepath.Join(dir, restoreDir)
	if err := os.RemoveAll(tmp); err != nil { // what an interrupted restore left
		return nil, ImportStats{}, fmt.Errorf("restore: remove the remains of an earlier restore: %w", err)
	}
	o := opts.withDefaults()
	o.MeshKey = b.hdr.MeshKey
	s, err := Init(tmp, storePass, &o)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, ImportStats{}, fmt.Errorf("restore: %w", err)
	}
	st, err := s.restoreBody(b)
	if err == nil {
		err = s.update(func(tx *bolt.Tx) error {
			return s.newTx(tx).addAnchors(restoredAnchors(b.hdr.Members, s), false)
		})
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(filepath.Join(tmp, FileName), filepath.Join(dir, FileName))
	}
	os.RemoveAll(tmp)
	if err != nil {
		return nil, ImportStats{}, fmt.Errorf("restore: %w", err)
	}
	if s, err = Open(dir, storePass, opts); err != nil {
		return nil, ImportStats{}, fmt.Errorf("restore: open the restored store: %w", err)
	}
	return s, st, nil
}

// restoreDir is where Restore writes the new store before it moves it into place.
const restoreDir = ".restoring"

// RestoreBatchBytes is how many bytes of envelopes Restore writes per transaction.
var RestoreBatchBytes = 64 << 20

// restoreBody applies a backup's envelopes to a new store (Restore) in transactions of
// RestoreBatchBytes. The reserved records are taken without checking signatures, as in
// importBody: the backup is the user's own, opened with their passphrase, and the new
// store knows no member yet to check them against (node upgrades it on open).
func (s *Store) restoreBody(b *backupReader) (ImportStats, error) {
	var st ImportStats
	for first, more := true, true; more; first = false {
		err := s.update(func(btx *bolt.Tx) error {
			t := s.newTx(btx)
			t.trusted = true
			if first && len(b.hdr.EpochKeys) > 0 { // the keys that open re-sealed envelopes
				s.keys.install(b.hdr.EpochKeys...)
				if err := s.saveEpochKeys(btx, b.hdr.EpochKeys...); err != nil {
					return err
				}
			}
			for size := 0; more && size < RestoreBatchBytes; {
				var err error
				more, err = b.step(t, &st, func(raw []byte, _ *Envelope) error {
					size += len(raw)
					return t.applyBackup(raw, &st)
				})
				if err != nil {
					return err
				}
			}
			return t.flush()
		})
		if err != nil {
			return ImportStats{}, err
		}
	}
	return st, nil
}

// ImportFile imports the backup at path into s (see Store.Import).
func ImportFile(s *Store, path string, pass []byte, dryRun bool) (ImportStats, error) {
	return ImportFileProgress(s, path, pass, dryRun, nil)
}

// ImportFileProgress is ImportFile that calls progress (when not nil) with the bytes of
// the file read so far and its size.
func ImportFileProgress(s *Store, path string, pass []byte, dryRun bool, progress func(done, total int64)) (ImportStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return ImportStats{}, fmt.Errorf("import: %w: %v", ErrInvalid, err)
	}
	defer f.Close()
	var r io.Reader = f
	if progress != nil {
		fi, err := f.Stat()
		if err != nil {
			return ImportStats{}, fmt.Errorf("import: %w", err)
		}
		r = &ProgressReader{R: f, Total: fi.Size(), Progress: progress}
	}
	return s.Import(r, pass, dryRun)
}

// ProgressReader is an io.Reader that reports the bytes read through it: Progress(done,
// Total) after each read.
type ProgressReader struct {
	R        io.Reader
	Total    int64
	Progress func(done, total int64)
	done     int64
}

// Read reads from R and reports the bytes so far.
func (p *ProgressReader) Read(b []byte) (int, error) {
	n, err := p.R.Read(b)
	p.done += int64(n)
	p.Progress(p.done, max(p.Total, p.done))
	return n, err
}
