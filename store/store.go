package store

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshsync/meshsync/resolve"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the database file inside a store directory.
const FileName = "meshsync.db"

const lockFileName = "meshsync.pid"

// Bucket names. The bulk of the bytes (envelopes) sits under the local sequence number so
// that bulk writes go in key order; a small record index points at them (items.go).
var (
	bucketMeta  = []byte("meta")  // header, store epoch, last sequence, clock
	bucketEnv   = []byte("env")   // seq (8 bytes, big endian) -> envelope
	bucketTree  = []byte("tree")  // collection tag || merkle prefix (levels 0-4) -> node summary
	bucketLocal = []byte("local") // device-local state, sealed under the local key
	bucketHist  = []byte("hist")  // time || hash -> a losing value of a resolved conflict, sealed
	allBuckets  = [][]byte{bucketMeta, bucketEnv, bucketItems, bucketTree, bucketLocal, bucketHist}
	// baseBuckets are those of every layout (the record index came with layout 3).
	baseBuckets = [][]byte{bucketMeta, bucketEnv, bucketTree, bucketLocal, bucketHist}
)

var (
	metaHeader = []byte("header")
	metaEpoch  = []byte("epoch")
	metaSeq    = []byte("seq")
	metaClock  = []byte("clock")
	// metaOwnFloor is the highest counter of this device seen from elsewhere (guard.go).
	metaOwnFloor = []byte("ownfloor")
	// metaAuthority is set once the store's reserved records are signed (authority.go):
	// at Init, or when Upgrade moved a store made before signatures existed.
	metaAuthority = []byte("authority")
)

const authorityVersion = 2

// Options configure Open and Init. A nil *Options, and every zero field, means the default.
type Options struct {
	// Now is the wall clock; tests inject their own. Default time.Now.
	Now func() time.Time
	// MaxSkew bounds how far ahead of local time a remote clock may drag the local hybrid
	// clock. Default 10 minutes.
	MaxSkew time.Duration
	// LockTimeout is how long Open waits for another process to release the file. Default
	// 200 ms.
	LockTimeout time.Duration
	// HistoryRetention is how long the losing values of resolved conflicts stay readable.
	// Default DefaultHistoryRetention (30 days).
	HistoryRetention time.Duration
	// TombstoneTTL is how long a tombstone is kept before CollectTombstones may remove it.
	// Default DefaultTombstoneTTL (90 days); every device of a mesh should use the same.
	TombstoneTTL time.Duration
	// NoSync skips fsync on commit: faster, and unsafe on power loss. Benchmarks only.
	NoSync bool

	// KDF sets the Argon2id parameters of a new store (Init). Default DefaultKDF; values
	// below the floor are refused.
	KDF KDFParams
	// DeviceName names this device in the mesh (Init). Default the host name.
	DeviceName string
	// MeshKey makes Init join an existing mesh (restore or pairing) instead of creating a
	// new one. It must be 32 bytes.
	MeshKey []byte

	// SigningKey is the new device's Ed25519 signing key (Init): the identity a joiner
	// already proved at pairing. Default a new random key.
	SigningKey ed25519.PrivateKey

	replica *ReplicaToken // InitReplica: a blind replica holding this token
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.MaxSkew == 0 {
		out.MaxSkew = 10 * time.Minute
	}
	if out.LockTimeout == 0 {
		out.LockTimeout = 200 * time.Millisecond
	}
	if out.HistoryRetention == 0 {
		out.HistoryRetention = DefaultHistoryRetention
	}
	if out.TombstoneTTL <= 0 {
		out.TombstoneTTL = DefaultTombstoneTTL
	}
	if out.KDF == (KDFParams{}) {
		out.KDF = defaultKDF
	}
	if out.DeviceName == "" {
		out.DeviceName, _ = os.Hostname()
		if out.DeviceName == "" {
			out.DeviceName = "device"
		}
	}
	return out
}

// Store is an open, unlocked meshsync store. It is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	dir    string
	opts   Options
	keys   *keyring
	epoch  [16]byte
	device DeviceInfo
	token  ReplicaToken // a blind replica's token (zero on a device)

	mu    sync.Mutex // guards clock, skew, epoch (after Open) and newEpochDone
	clock resolve.Clock
	skew  time.Duration
	// newEpochDone is set once a rollback started a new epoch in this session.
	newEpochDone bool

	feed    feed
	closed  atomic.Bool
	commits atomic.Uint64 // write transactions committed since Open (Replication.Commits)

	noIndex bool // benchmarks only: skip the Merkle index to measure its cost

	signer ed25519.PrivateKey         // this device's signing key (authority.go); nil until it has one
	auth   atomic.Pointer[authCache]  // the membership as last computed from committed records
	scope  atomic.Pointer[scopeState] // the collections held (scope.go), loaded on first use
}

// DeviceInfo names this device.
type DeviceInfo struct {
	ID   resolve.DeviceID `json:"id"`
	Name string           `json:"name"`
}

// Init creates a new store in dir, protected by pass. With opts.MeshKey it joins that mesh;
// otherwise it creates a new mesh with a random mesh key.
func Init(dir string, pass []byte, opts *Options) (*Store, error) {
	o := opts.withDefaults()
	if len(pass) == 0 {
		return nil, fmt.Errorf("init store: empty passphrase")
	}
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("init store in %s: %w", dir, ErrExists)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init store: %w", err)
	}
	meshKey := o.MeshKey
	if o.replica != nil {
		var err error
		if meshKey, err = replicaSecret(); err != nil {
			return nil, err
		}
	} else if meshKey == nil {
		meshKey = make([]byte, meshKeySize)
		if _, err := rand.Read(meshKey); err != nil {
			return nil, err
		}
	} else if len(meshKey) != meshKeySize {
		return nil, fmt.Errorf("init store: mesh key must be %d bytes", meshKeySize)
	}
	sec := secrets{root: meshKey, local: make([]byte, localSecretSize)}
	if _, err := rand.Read(sec.local); err != nil {
		return nil, err
	}
	hdr, err := newHeader(sec, pass, o.KDF)
	if err != nil {
		return nil, fmt.Errorf("init store: %w", err)
	}
	db, err := openDB(path, o)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, dir: dir, opts: o}
	if o.replica != nil {
		s.keys = newBlindKeyring(meshKey)
	} else {
		s.keys = newKeyring(meshKey)
	}
	s.keys.setLocal(sec)
	var devID [8]byte
	if _, err := rand.Read(devID[:]); err != nil {
		db.Close()
		return nil, err
	}
	s.device = DeviceInfo{ID: resolve.DeviceID(hex.EncodeToString(devID[:])), Name: o.DeviceName}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(metaHeader) != nil {
			return ErrExists
		}
		if _, err := rand.Read(s.epoch[:]); err != nil {
			return err
		}
		if err := meta.Put(metaHeader, hdr.marshal()); err != nil {
			return err
		}
		if err := meta.Put(metaEpoch, s.epoch[:]); err != nil {
			return err
		}
		if err := meta.Put(metaLayout, []byte{layoutCurrent}); err != nil {
			return err
		}
		if o.replica != nil {
			if err := s.initReplicaMeta(tx, o.replica); err != nil {
				return err
			}
		}
		if err := s.newSigningKey(tx, o.SigningKey); err != nil {
			return err
		}
		if err := meta.Put(metaAuthority, []byte{authorityVersion}); err != nil {
			return err
		}
		if o.MeshKey == nil && o.replica == nil {
			// A new mesh: this device is its first member and the root of its trust.
			pub := s.signer.Public().(ed25519.PublicKey)
			if err := s.putLocalJSON(tx, localAnchors, map[resolve.DeviceID][]byte{s.device.ID: pub}); err != nil {
				return err
			}
		}
		return s.putLocalJSON(tx, "device", s.device)
	})
	if err != nil {
		db.Close()
		os.Remove(path)
		return nil, fmt.Errorf("init store in %s: %w", dir, err)
	}
	s.clock = resolve.Clock{MaxSkew: o.MaxSkew}
	if testInitHook != nil {
		testInitHook(s)
	}
	return s, nil
}

// testInitHook, when set (by this package's tests only), sees every store Init makes.
var testInitHook func(*Store)

// Open unlocks the existing store in dir with pass.
func Open(dir string, pass []byte, opts *Options) (*Store, error) {
	o := opts.withDefaults()
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open store %s: %w", dir, ErrNoStore)
	}
	db, err := openDB(path, o)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, dir: dir, opts: o}
	var hdr *header
	var kek []byte
	err = db.View(func(tx *bolt.Tx) error {
		for _, b := range baseBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, b)
			}
		}
		meta := tx.Bucket(bucketMeta)
		hb := meta.Get(metaHeader)
		if hb == nil {
			return fmt.Errorf("%w: no header", ErrCorrupt)
		}
		var err error
		if hdr, err = parseHeader(hb); err != nil {
			return err
		}
		if kek, err = hdr.kek(pass); err != nil {
			return err
		}
		sec, err := hdr.open(kek)
		if err != nil {
			return err
		}
		if string(meta.Get(metaKind)) == kindReplica {
			s.keys = newBlindKeyring(sec.root)
			s.keys.setLocal(sec)
			if err := s.openReplicaMeta(tx); err != nil {
				return err
			}
		} else {
			s.keys = newKeyring(sec.root)
			s.keys.setLocal(sec)
			if err := s.loadEpochKeys(tx); err != nil { // keys of rotated epochs
				return err
			}
		}
		if e := meta.Get(metaEpoch); len(e) == len(s.epoch) {
			copy(s.epoch[:], e)
		} else {
			return fmt.Errorf("%w: store epoch missing", ErrCorrupt)
		}
		if c := meta.Get(metaClock); len(c) == 8 {
			s.clock.Last = resolve.Timestamp(be64(c))
		}
		if err := s.loadSigningKey(tx); err != nil {
			return err
		}
		return s.getLocalJSON(tx, "device", &s.device)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s.clock.MaxSkew = o.MaxSkew
	if hdr.Version == headerV1 {
		// A store of an older meshsync: its local state moves under a key of its own, in
		// one transaction. On a full disk the store opens as it is (its local key then
		// still comes from the mesh key) and the next open tries again.
		if err := s.migrateV1(kek); err != nil && !errors.Is(err, ErrDiskFull) {
			db.Close()
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
	}
	// A store of an older layout (before collection tags, or before the record index) is
	// rebuilt in one transaction (layout.go); on a full disk the store does not open: its
	// summary would be wrong.
	if err := s.migrateLayout(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	// Pruning old conflict history is housekeeping: a store on a full disk still opens
	// (read-only work goes on) and prunes at a later open.
	_ = s.pruneHistory()
	return s, nil
}

func openDB(path string, o Options) (*bolt.DB, error) {
	var held *os.File
	bo := boltOptions(o) // bulk.go
	bo.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		held = f
		return f, err
	}
	db, err := bolt.Open(path, 0o600, bo)
	if err == nil && !lockedPath(held, path) {
		// Compact renamed a new file over the one this open waited for: take the new one.
		db.Close()
		db, err = bolt.Open(path, 0o600, boltOptions(o))
	}
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: %w%s; waited %s", filepath.Dir(path), ErrLocked, lockHolder(filepath.Dir(path)), o.LockTimeout)
		}
		if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
			return nil, fmt.Errorf("open store %s: %w: %v", filepath.Dir(path), ErrCorrupt, err)
		}
		if isDiskFull(err) {
			return nil, fmt.Errorf("open store %s: %w: free space on its disk: %v", filepath.Dir(path), ErrDiskFull, err)
		}
		return nil, fmt.Errorf("open store %s: %w", filepath.Dir(path), err)
	}
	db.AllocSize = storeAllocSize // bulk.go
	// Record who holds the store, so that a second opener can name the process.
	_ = os.WriteFile(filepath.Join(filepath.Dir(path), lockFileName), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	return db, nil
}

// lockedPath reports whether the file bbolt opened and locked is still the one path names.
func lockedPath(f *os.File, path string) bool {
	if f == nil {
		return true
	}
	held, err := f.Stat()
	if err != nil {
		return true // nothing better to do than go on with the file held
	}
	named, err := os.Stat(path)
	return err != nil || os.SameFile(held, named)
}

// lockHolder names the process that holds the store, as " (process N)", with its command
// name where the system tells it (` (process N, "meshsync")`), or "" when unknown.
func lockHolder(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, lockFileName))
	if err != nil {
		return ""
	}
	pid := strings.TrimSpace(string(b))
	if _, err := strconv.Atoi(pid); err != nil {
		return ""
	}
	if comm, err := os.ReadFile(filepath.Join("/proc", pid, "comm")); err == nil { // Linux
		if name := strings.TrimSpace(string(comm)); name != "" {
			return fmt.Sprintf(" (process %s, %q)", pid, name)
		}
	}
	return " (process " + pid + ")"
}

// Close releases the store. Subscriptions are closed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.feed.closeAll()
	err := s.db.Close()
	return err
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Device is this device's identity in the mesh.
func (s *Store) Device() DeviceInfo { return s.device }

// Epoch is the store's random epoch: it changes when a store is created anew or restored,
// so that peers know their remembered sequence numbers no longer apply.
// A store that finds it was restored from an older copy of its file starts a new one (see
// RolledBack).
func (h Replication) Epoch() [16]byte {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// MeshID is a public identifier of the mesh, derived from the mesh key.
func (h Keys) MeshID() [16]byte {
	s := h.s
	return s.keys.meshID
}

// ClockSkew reports the largest amount by which a remote clock was seen ahead of local
// time beyond MaxSkew since the store was opened (0 when none).
func (h Replication) ClockSkew() time.Duration {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skew
}

// ChangePassphrase rewraps the mesh key (or a replica's secret) and the local secret under
// newPass. Nothing else is re-encrypted.
func (h Keys) ChangePassphrase(oldPass, newPass []byte, kdf *KDFParams) error {
	s := h.s
	if len(newPass) == 0 {
		return fmt.Errorf("change passphrase: the new passphrase is empty")
	}
	hdr, err := s.readHeader()
	if err != nil {
		return fmt.Errorf("change passphrase: %w", err)
	}
	kek, err := hdr.kek(oldPass)
	if err != nil {
		return fmt.Errorf("change passphrase: %w", err)
	}
	if _, err := hdr.open(kek); err != nil {
		return fmt.Errorf("change passphrase: %w", err)
	}
	if hdr.Version == headerV1 { // an open that could not migrate (a full disk)
		if err := s.migrateV1(kek); err != nil {
			return fmt.Errorf("change passphrase: %w", err)
		}
	}
	p := hdr.KDF
	if kdf != nil {
		p = *kdf
	}
	nh, err := newHeader(secrets{root: s.keys.root, local: s.keys.localSecret}, newPass, p)
	if err != nil {
		return fmt.Errorf("change passphrase: %w", err)
	}
	checked, err := s.readHeader() // after a migration, the version-2 header
	if err != nil {
		return fmt.Errorf("change passphrase: %w", err)
	}
	return s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		// Two changes at once: the one that commits second would rewrap under a
		// passphrase it did not check.
		if !bytes.Equal(meta.Get(metaHeader), checked.marshal()) {
			return fmt.Errorf("change passphrase: the store header changed meanwhile; try again")
		}
		return meta.Put(metaHeader, nh.marshal())
	})
}

// CheckPassphrase reports whether pass unlocks this store, as Open would: it derives the
// key-encryption key from the store's header (Argon2id, as slow as an Open by design) and
// unwraps the key with it. It fails with ErrWrongPassphrase otherwise. A process that holds
// the store open keeps the key, not the passphrase: it calls CheckPassphrase to confirm
// that the person is the owner before a grave action, such as removing a device.
func (h Keys) CheckPassphrase(pass []byte) error {
	s := h.s
	if len(pass) == 0 {
		return fmt.Errorf("check passphrase: %w: it is empty", ErrWrongPassphrase)
	}
	hdr, err := s.readHeader()
	if err != nil {
		return fmt.Errorf("check passphrase: %w", err)
	}
	sec, err := hdr.unwrap(pass)
	if err != nil {
		return fmt.Errorf("check passphrase: %w", err)
	}
	if subtle.ConstantTimeCompare(sec.root, s.keys.root) != 1 {
		return fmt.Errorf("check passphrase: %w", ErrWrongPassphrase)
	}
	return nil
}

// readHeader reads and parses the store header.
func (s *Store) readHeader() (*header, error) {
	var hdr *header
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		hdr, err = parseHeader(tx.Bucket(bucketMeta).Get(metaHeader))
		return err
	})
	return hdr, err
}

// MeshKeyForPairing returns the mesh key so that the pairing protocol can hand it to a new
// device over an authenticated, encrypted channel. Nothing else may call it.
// It is nil on a blind replica.
func (h Keys) MeshKeyForPairing() []byte {
	s := h.s
	if s.keys.blind {
		return nil
	}
	return append([]byte(nil), s.keys.mesh...)
}

func be64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func u64be(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}
