package store

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/meshsync/meshsync/internal/testmode"
)

// KDFParams are the Argon2id parameters that turn a passphrase into the key-encryption key.
// They are kept, authenticated, in the store header so that they can be raised later.
type KDFParams struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8  // lanes
}

// DefaultKDF is used by Init when no parameters are given: RFC 9106's second recommended
// option (64 MiB, t=3, p=4), about 140 ms on a 2-core server.
var DefaultKDF = KDFParams{Time: 3, Memory: 64 * 1024, Threads: 4}

// kdfFloor is the weakest parameter set a store may carry; a header below it is refused so
// that an attacker who edits the file cannot make offline guessing cheap. Tests inside this
// package may lower it.
var kdfFloor = DefaultKDF

// defaultKDF is what Init uses when Options.KDF is zero.
var defaultKDF = DefaultKDF

// testKDF is the cheap setting of test mode (internal/testmode): turning it on lowers the
// floor and the default to it, and makes backups use a cheap scrypt work factor, so that
// tests of every package can open many stores quickly.
var testKDF = KDFParams(testmode.KDF)

func init() {
	testmode.OnEnable(func() {
		kdfFloor, defaultKDF = testKDF, testKDF
		defaultBackupWorkFactor = testmode.BackupWorkFactor
	})
}

func (p KDFParams) belowFloor() bool {
	return p.Time < kdfFloor.Time || p.Memory < kdfFloor.Memory || p.Threads < kdfFloor.Threads
}

// Maximums guard against a header that asks for absurd work (a denial of service by file edit).
const (
	maxKDFMemory = 4 << 20 // KiB (4 GiB)
	maxKDFTime   = 64
	meshKeySize  = 32
	saltSize     = 16
	// localSecretSize is the size of a device's local secret (header version 2).
	localSecretSize = 32
)

// Store header versions. Version 1 wraps the mesh key alone, and the key that seals local
// state is derived from the mesh key, which every member holds: a member with a copy of
// another device's file opens its local state without its passphrase. Version 2 wraps the
// mesh key and a random local secret of this device, from which the local key comes, so
// the passphrase protects local state. Open migrates version 1 to version 2.
const (
	headerV1      = 1
	headerV2      = 2
	headerVersion = headerV2 // what Init and ChangePassphrase write
)

// header is the clear, authenticated part of a store: KDF parameters, salt and the wrapped
// secrets. The wrap's associated data covers every other field, so changing the version or
// the parameters makes the unwrap fail.
//
// Layout (version 2; version 1 differs only in the version byte and a 32-byte plaintext):
//
//	"meshsync-store"  14 bytes
//	version            1 byte (2)
//	argon2 time        4 bytes, big endian
//	argon2 memory      4 bytes, big endian (KiB)
//	argon2 threads     1 byte
//	salt              16 bytes
//	nonce             24 bytes (XChaCha20-Poly1305)
//	wrapped           80 bytes: seal(KEK, nonce, root(32) || local secret(32), AD)
//
// AD is every byte before the nonce; KEK = Argon2id(passphrase, salt, time, memory,
// threads, 32). root is the mesh key, or a blind replica's own random secret.
type header struct {
	Version byte
	KDF     KDFParams
	Salt    [saltSize]byte
	Nonce   [chacha20poly1305.NonceSizeX]byte
	Wrapped []byte // the secrets sealed under the key-encryption key
}

// secrets is what a header wraps.
type secrets struct {
	root  []byte // the mesh key, or a blind replica's own secret
	local []byte // this device's local secret; nil in a version-1 header
}

const headerPrefix = "meshsync-store"

func (h *header) ad() []byte {
	b := make([]byte, 0, 64)
	b = append(b, headerPrefix...)
	b = append(b, h.Version)
	b = binary.BigEndian.AppendUint32(b, h.KDF.Time)
	b = binary.BigEndian.AppendUint32(b, h.KDF.Memory)
	b = append(b, h.KDF.Threads)
	b = append(b, h.Salt[:]...)
	return b
}

func (h *header) marshal() []byte {
	b := h.ad()
	b = append(b, h.Nonce[:]...)
	return append(b, h.Wrapped...)
}

// wrappedSize is the size of the sealed secrets in a header of version v.
func wrappedSize(v byte) int {
	if v == headerV1 {
		return meshKeySize + chacha20poly1305.Overhead
	}
	return meshKeySize + localSecretSize + chacha20poly1305.Overhead
}

func parseHeader(b []byte) (*header, error) {
	fixed := len(headerPrefix) + 1 + 4 + 4 + 1 + saltSize + chacha20poly1305.NonceSizeX
	if len(b) <= len(headerPrefix) || string(b[:len(headerPrefix)]) != headerPrefix {
		return nil, fmt.Errorf("%w: store header has the wrong size or magic", ErrCorrupt)
	}
	p := b[len(headerPrefix):]
	if p[0] != headerV1 && p[0] != headerV2 {
		return nil, fmt.Errorf("%w: store header version %d is not supported by this meshsync (upgrade meshsync)", ErrCorrupt, p[0])
	}
	if len(b) != fixed+wrappedSize(p[0]) {
		return nil, fmt.Errorf("%w: store header has the wrong size or magic", ErrCorrupt)
	}
	h := &header{Version: p[0]}
	h.KDF.Time = binary.BigEndian.Uint32(p[1:])
	h.KDF.Memory = binary.BigEndian.Uint32(p[5:])
	h.KDF.Threads = p[9]
	copy(h.Salt[:], p[10:])
	copy(h.Nonce[:], p[10+saltSize:])
	h.Wrapped = append([]byte(nil), p[10+saltSize+len(h.Nonce):]...)
	return h, nil
}

func deriveKEK(pass []byte, salt []byte, p KDFParams) []byte {
	return argon2.IDKey(pass, salt, p.Time, p.Memory, p.Threads, 32)
}

// newHeader builds a fresh version-2 header wrapping sec under pass with params p.
func newHeader(sec secrets, pass []byte, p KDFParams) (*header, error) {
	if p.belowFloor() {
		return nil, fmt.Errorf("%w: need at least t=%d m=%d KiB p=%d", ErrWeakKDF, kdfFloor.Time, kdfFloor.Memory, kdfFloor.Threads)
	}
	if p.Memory > maxKDFMemory || p.Time > maxKDFTime {
		return nil, fmt.Errorf("key-derivation parameters too large (t=%d m=%d KiB)", p.Time, p.Memory)
	}
	h := &header{KDF: p}
	if _, err := rand.Read(h.Salt[:]); err != nil {
		return nil, err
	}
	if err := h.seal(deriveKEK(pass, h.Salt[:], p), sec); err != nil {
		return nil, err
	}
	return h, nil
}

// seal makes h a version-2 header wrapping sec under kek (derived from h's salt and
// parameters), with a fresh nonce.
func (h *header) seal(kek []byte, sec secrets) error {
	if len(sec.root) != meshKeySize || len(sec.local) != localSecretSize {
		return fmt.Errorf("store header: secrets of the wrong size")
	}
	h.Version = headerV2
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		return err
	}
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return err
	}
	plain := append(append(make([]byte, 0, meshKeySize+localSecretSize), sec.root...), sec.local...)
	h.Wrapped = aead.Seal(nil, h.Nonce[:], plain, h.ad())
	clear(plain)
	return nil
}

// kek checks the header's parameters and derives the key-encryption key from pass.
func (h *header) kek(pass []byte) ([]byte, error) {
	if h.KDF.belowFloor() {
		return nil, fmt.Errorf("%w: header asks for t=%d m=%d KiB p=%d; refusing to open (the file may have been tampered with)", ErrWeakKDF, h.KDF.Time, h.KDF.Memory, h.KDF.Threads)
	}
	if h.KDF.Memory > maxKDFMemory || h.KDF.Time > maxKDFTime || h.KDF.Threads == 0 {
		return nil, fmt.Errorf("%w: key-derivation parameters out of range", ErrCorrupt)
	}
	return deriveKEK(pass, h.Salt[:], h.KDF), nil
}

// open unwraps the secrets with kek. A failed open is a wrong passphrase (or an edited
// header, which cannot be told apart).
func (h *header) open(kek []byte) (secrets, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return secrets{}, err
	}
	plain, err := aead.Open(nil, h.Nonce[:], h.Wrapped, h.ad())
	if err != nil {
		return secrets{}, ErrWrongPassphrase
	}
	if h.Version == headerV1 {
		return secrets{root: plain}, nil
	}
	return secrets{root: plain[:meshKeySize], local: plain[meshKeySize:]}, nil
}

// unwrap derives the KEK from pass and opens the secrets.
func (h *header) unwrap(pass []byte) (secrets, error) {
	kek, err := h.kek(pass)
	if err != nil {
		return secrets{}, err
	}
	return h.open(kek)
}

// Subkey labels. Every key the mesh uses comes from the mesh key by HKDF-SHA256 under one of
// these labels, so no two uses ever share a key.
const (
	labelData       = "meshsync/v1/data/epoch/"
	labelID         = "meshsync/v1/id"
	labelIndex      = "meshsync/v1/index"
	labelLocal      = "meshsync/v1/local" // version-1 stores only: from the mesh key (or a replica's secret)
	labelLocalV2    = "meshsync/v2/local" // from the local secret the header wraps
	labelRendezvous = "meshsync/v1/rendezvous"
	labelPairing    = "meshsync/v1/pairing"
	labelMesh       = "meshsync/v1/mesh-id"
	labelConsent    = "meshsync/v1/consent"
)

func subkey(meshKey []byte, label string) []byte {
	k, err := hkdf.Key(sha256.New, meshKey, nil, label, 32)
	if err != nil {
		panic("hkdf: " + err.Error()) // only fails for absurd lengths
	}
	return k
}

// keyring holds the keys derived from the mesh key for one open store.
type keyring struct {
	root  []byte // the secret the header wraps: the mesh key, or a replica's own secret
	blind bool   // a blind replica: no mesh key, no data, id or index key
	mesh  []byte
	id    []byte // HMAC key for record ids; never rotates
	index []byte // HMAC key for the collection index
	local []byte // seals device-local state (setLocal); nil until then, and nothing seals
	// localSecret is the secret the local key comes from (header version 2), rewrapped
	// when the passphrase changes; nil while a version-1 store is being migrated.
	localSecret []byte
	meshID      [16]byte
	data        map[uint32][]byte // the data key of epoch 0, derived from the mesh key

	// Keys of later epochs, received after a device removal (rotate.go): nil until the
	// store loads them, then replaced whole (copy on write) under epochMu.
	epochs  atomic.Pointer[epochSet]
	epochMu sync.Mutex
	// excluded are the key ids the membership forbids sealing under (authority.go).
	excluded atomic.Pointer[map[string]bool]

	// idMACs holds HMAC states under id for reuse (recordID); tags remembers collection
	// tags (tag), tagged counts those computed, and at most maxTagCache are kept.
	idMACs sync.Pool
	tags   sync.Map
	tagged atomic.Int64
	// aeads holds an AEAD per data key (aeadOf): a handful, one per key epoch held.
	aeads sync.Map
}

func newKeyring(meshKey []byte) *keyring {
	k := &keyring{
		root:  meshKey,
		mesh:  meshKey,
		id:    subkey(meshKey, labelID),
		index: subkey(meshKey, labelIndex),
		data:  map[uint32][]byte{},
	}
	copy(k.meshID[:], subkey(meshKey, labelMesh))
	k.data[0] = subkey(meshKey, fmt.Sprintf("%s%d", labelData, 0))
	return k
}

// localKey is the key that seals local state: from the local secret (header version 2), or
// in a version-1 store from the root secret, which on a device is the mesh key.
func localKey(sec secrets) []byte {
	if sec.local == nil {
		return subkey(sec.root, labelLocal)
	}
	return subkey(sec.local, labelLocalV2)
}

// setLocal keys the local state with sec (the secrets the header wrapped).
func (k *keyring) setLocal(sec secrets) {
	k.localSecret = sec.local
	k.local = localKey(sec)
}

// Purpose names what a subkey is for (Keys.Subkey).
type Purpose string

// The purposes of subkeys other layers use; the data keys never leave the store.
const (
	// PurposeRendezvous is epoch 0's discovery key (discovery uses DiscoveryKeys, which
	// follow the key epochs).
	PurposeRendezvous Purpose = "rendezvous"
	// PurposePairing proves the mesh key in a sync hello and at pairing.
	PurposePairing Purpose = "pairing"
	// PurposeConsent keys the pseudonyms of consent shares.
	PurposeConsent Purpose = "consent"
	// PurposeReplica is the proof key between devices and blind replicas.
	PurposeReplica Purpose = "replica"
)

// Subkey returns the key for a purpose, derived from the mesh key. A blind replica has
// only PurposeRendezvous and PurposeReplica (from its token).
func (h Keys) Subkey(purpose Purpose) ([]byte, error) {
	s := h.s
	if s.keys.blind {
		switch purpose {
		case "rendezvous":
			return append([]byte(nil), s.token.Rendezvous...), nil
		case "replica":
			return append([]byte(nil), s.token.Proof...), nil
		}
		return nil, fmt.Errorf("subkey %q: %w", purpose, ErrBlind)
	}
	switch purpose {
	case "replica":
		return subkey(s.keys.mesh, labelReplica), nil
	case "rendezvous":
		return subkey(s.keys.mesh, labelRendezvous), nil
	case "pairing":
		return subkey(s.keys.mesh, labelPairing), nil
	case "consent":
		return subkey(s.keys.mesh, labelConsent), nil
	}
	return nil, fmt.Errorf("unknown subkey purpose %q", purpose)
}
