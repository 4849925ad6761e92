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

// defaultKDF is what Init uses when Options.KDF is zero (UseTestKDF lowers it in tests).
var defaultKDF = DefaultKDF

func (p KDFParams) belowFloor() bool {
	return p.Time < kdfFloor.Time || p.Memory < kdfFloor.Memory || p.Threads < kdfFloor.Threads
}

// Maximums guard against a header that asks for absurd work (a denial of service by file edit).
const (
	maxKDFMemory  = 4 << 20 // KiB (4 GiB)
	maxKDFTime    = 64
	meshKeySize   = 32
	saltSize      = 16
	headerVersion = 1
)

// header is the clear, authenticated part of a store: KDF parameters, salt and the wrapped
// mesh key. The wrap's associated data covers every other field, so changing the
// parameters makes the unwrap fail.
type header struct {
	KDF     KDFParams
	Salt    [saltSize]byte
	Nonce   [chacha20poly1305.NonceSizeX]byte
	Wrapped []byte // mesh key sealed under the key-encryption key
}

const headerPrefix = "meshsync-store"

func (h *header) ad() []byte {
	b := make([]byte, 0, 64)
	b = append(b, headerPrefix...)
	b = append(b, headerVersion)
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

func parseHeader(b []byte) (*header, error) {
	fixed := len(headerPrefix) + 1 + 4 + 4 + 1 + saltSize + chacha20poly1305.NonceSizeX
	want := fixed + meshKeySize + chacha20poly1305.Overhead
	if len(b) != want || string(b[:len(headerPrefix)]) != headerPrefix {
		return nil, fmt.Errorf("%w: store header has the wrong size or magic", ErrCorrupt)
	}
	p := b[len(headerPrefix):]
	if p[0] != headerVersion {
		return nil, fmt.Errorf("%w: store header version %d is not supported by this meshsync", ErrCorrupt, p[0])
	}
	h := &header{}
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

// wrapMeshKey builds a fresh header wrapping meshKey under pass with params p.
func wrapMeshKey(meshKey, pass []byte, p KDFParams) (*header, error) {
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
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		return nil, err
	}
	kek := deriveKEK(pass, h.Salt[:], p)
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, err
	}
	h.Wrapped = aead.Seal(nil, h.Nonce[:], meshKey, h.ad())
	return h, nil
}

// unwrap derives the KEK from pass and opens the mesh key. A failed open is a wrong
// passphrase (or an edited header, which cannot be told apart).
func (h *header) unwrap(pass []byte) ([]byte, error) {
	if h.KDF.belowFloor() {
		return nil, fmt.Errorf("%w: header asks for t=%d m=%d KiB p=%d; refusing to open (the file may have been tampered with)", ErrWeakKDF, h.KDF.Time, h.KDF.Memory, h.KDF.Threads)
	}
	if h.KDF.Memory > maxKDFMemory || h.KDF.Time > maxKDFTime || h.KDF.Threads == 0 {
		return nil, fmt.Errorf("%w: key-derivation parameters out of range", ErrCorrupt)
	}
	kek := deriveKEK(pass, h.Salt[:], h.KDF)
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, err
	}
	key, err := aead.Open(nil, h.Nonce[:], h.Wrapped, h.ad())
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return key, nil
}

// Subkey labels. Every key the mesh uses comes from the mesh key by HKDF-SHA256 under one of
// these labels, so no two uses ever share a key.
const (
	labelData       = "meshsync/v1/data/epoch/"
	labelID         = "meshsync/v1/id"
	labelIndex      = "meshsync/v1/index"
	labelLocal      = "meshsync/v1/local"
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
	root   []byte // the secret the header wraps: the mesh key, or a replica's own secret
	blind  bool   // a blind replica: no mesh key, no data, id or index key
	mesh   []byte
	id     []byte // HMAC key for record ids; never rotates
	index  []byte // HMAC key for the collection index
	local  []byte // seals device-local state
	meshID [16]byte
	data   map[uint32][]byte // the data key of epoch 0, derived from the mesh key

	// Keys of later epochs, received after a device removal (rotate.go): nil until the
	// store loads them, then replaced whole (copy on write) under epochMu.
	epochs  atomic.Pointer[epochSet]
	epochMu sync.Mutex
	// excluded are the key ids the membership forbids sealing under (authority.go).
	excluded atomic.Pointer[map[string]bool]
}

func newKeyring(meshKey []byte) *keyring {
	k := &keyring{
		root:  meshKey,
		mesh:  meshKey,
		id:    subkey(meshKey, labelID),
		index: subkey(meshKey, labelIndex),
		local: subkey(meshKey, labelLocal),
		data:  map[uint32][]byte{},
	}
	copy(k.meshID[:], subkey(meshKey, labelMesh))
	k.data[0] = subkey(meshKey, fmt.Sprintf("%s%d", labelData, 0))
	return k
}

// Subkey returns the key for a named purpose ("rendezvous", "pairing", "consent" or
// "replica": the proof key between devices and blind replicas), derived from the mesh key.
// Other layers (discovery, pairing) use it; the data keys never leave the store. A blind
// replica has only "rendezvous" and "replica" (from its token).
func (s *Store) Subkey(purpose string) ([]byte, error) {
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
