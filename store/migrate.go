package store

import (
	"bytes"
	"crypto/rand"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Migration of a version-1 store (keys.go): its local state is sealed under a key derived
// from the mesh key. migrateV1 gives the store a random local secret, re-seals every local
// value and every history entry under the key that comes from it, and writes a version-2
// header wrapping the mesh key (or a replica's secret) and the local secret under the same
// key-encryption key, all in one transaction: a crash before the commit leaves the
// version-1 store as it was, and the next open migrates again.

// migrateHook, when set by a test, runs at the end of the migration's transaction; an
// error it returns aborts the migration as a crash before the commit would.
var migrateHook func() error

// migrateV1 migrates the open version-1 store; kek is the key-encryption key of its header.
func (s *Store) migrateV1(kek []byte) error {
	sec := secrets{root: s.keys.root, local: make([]byte, localSecretSize)}
	if _, err := rand.Read(sec.local); err != nil {
		return err
	}
	oldKey, newKey := s.keys.local, localKey(sec)
	err := s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		hb := meta.Get(metaHeader)
		hdr, err := parseHeader(hb)
		if err != nil {
			return err
		}
		if hdr.Version != headerV1 {
			return fmt.Errorf("the store header is at version %d already", hdr.Version)
		}
		// Check kek against the header in this transaction (it opens the same root).
		if old, err := hdr.open(kek); err != nil || !bytes.Equal(old.root, sec.root) {
			return fmt.Errorf("%w: the store header changed during the migration", ErrCorrupt)
		}
		if err := resealBucket(tx.Bucket(bucketLocal), "", oldKey, newKey); err != nil {
			return err
		}
		if err := resealBucket(tx.Bucket(bucketHist), "hist/", oldKey, newKey); err != nil {
			return err
		}
		if err := hdr.seal(kek, sec); err != nil {
			return err
		}
		if err := meta.Put(metaHeader, hdr.marshal()); err != nil {
			return err
		}
		if migrateHook != nil {
			return migrateHook()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate store to header version %d: %w", headerV2, err)
	}
	s.keys.setLocal(sec)
	return nil
}

// resealBucket opens every value of b under oldKey (its name is prefix + its key) and seals
// it again under newKey. A value that does not open stops the migration: the store is
// damaged, and stays as it was.
func resealBucket(b *bolt.Bucket, prefix string, oldKey, newKey []byte) error {
	type kv struct{ k, v []byte }
	var out []kv
	err := b.ForEach(func(k, v []byte) error {
		plain, err := openLocalWith(oldKey, prefix+string(k), v)
		if err != nil {
			return err
		}
		sealed, err := sealLocalWith(newKey, prefix+string(k), plain)
		clear(plain)
		if err != nil {
			return err
		}
		out = append(out, kv{bytes.Clone(k), sealed})
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range out { // bbolt: no writes while a cursor walks the bucket
		if err := b.Put(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}
