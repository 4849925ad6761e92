package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// ID names a record in the summary: a keyed hash of its collection and key, so ids are
// uniformly distributed over the id space.
type ID [32]byte

// String returns the id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Digest is the hash of a record's antichain of envelopes, computed by the store.
type Digest [32]byte

// Item is one member of a summarised set: a record id and the digest of what the store
// holds for it. A set holds at most one item per id.
type Item struct {
	ID     ID
	Digest Digest
}

// itemHash is SHA-256(id || digest). Its four little-endian 64-bit lanes feed the additive
// fingerprint of every subtree the item belongs to.
type itemHash [32]byte

func hashItem(it Item) itemHash {
	var buf [64]byte
	copy(buf[:32], it.ID[:])
	copy(buf[32:], it.Digest[:])
	return sha256.Sum256(buf[:])
}

func (h *itemHash) lane(i int) uint64 { return binary.LittleEndian.Uint64(h[8*i:]) }
