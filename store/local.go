package store

import (
	"encoding/json"
	"fmt"

	"crypto/rand"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"
)

// Device-local state (device name, peer progress, identity key, key-agreement key, epoch
// keys, the history of resolved conflicts) is sealed under the local key with its name as
// associated data, so that nothing in the file reads in clear and a value cannot be moved
// to another name. The local key comes from a random local secret that the store header
// wraps under the passphrase (keys.go), never from the mesh key: another member of the mesh
// holding a copy of this file opens none of it.

func (s *Store) sealLocal(name string, plain []byte) ([]byte, error) {
	return sealLocalWith(s.keys.local, name, plain)
}

func (s *Store) openLocal(name string, sealed []byte) ([]byte, error) {
	return openLocalWith(s.keys.local, name, sealed)
}

func sealLocalWith(key []byte, name string, plain []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, []byte(name)), nil
}

func openLocalWith(key []byte, name string, sealed []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: local value %q too short", ErrCorrupt, name)
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("%w: local value %q fails authentication", ErrCorrupt, name)
	}
	return plain, nil
}

func (s *Store) putLocalJSON(tx *bolt.Tx, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sealed, err := s.sealLocal(name, b)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketLocal).Put([]byte(name), sealed)
}

// getLocalJSON reads a sealed local value; a missing value leaves v untouched.
func (s *Store) getLocalJSON(tx *bolt.Tx, name string, v any) error {
	sealed := tx.Bucket(bucketLocal).Get([]byte(name))
	if sealed == nil {
		return nil
	}
	plain, err := s.openLocal(name, sealed)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("%w: local value %q: %v", ErrCorrupt, name, err)
	}
	return nil
}

// PutLocal stores a device-local value (never synced) sealed under the local key. Node uses
// it for peer progress, sync states and the identity key.
func (h Local) Put(name string, v any) error {
	s := h.s
	return s.update(func(tx *bolt.Tx) error { return s.putLocalJSON(tx, "x/"+name, v) })
}

// PutAll stores several device-local values (Put) in one transaction.
func (h Local) PutAll(values map[string]any) error {
	s := h.s
	return s.update(func(tx *bolt.Tx) error {
		for name, v := range values {
			if err := s.putLocalJSON(tx, "x/"+name, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetLocal reads a value stored with PutLocal into v. It reports whether the value existed.
func (h Local) Get(name string, v any) (bool, error) {
	s := h.s
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketLocal).Get([]byte("x/"+name)) == nil {
			return nil
		}
		found = true
		return s.getLocalJSON(tx, "x/"+name, v)
	})
	return found, err
}

// PutLocal is Store.PutLocal inside a transaction.
func (t *Tx) PutLocal(name string, v any) error {
	return t.s.putLocalJSON(t.tx, "x/"+name, v)
}

// verifyLocal opens every sealed value of the local and history buckets (Verify).
func (s *Store) verifyLocal(tx *bolt.Tx, r *Report) {
	check := func(bucket []byte, prefix string) {
		_ = tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			if _, err := s.openLocal(prefix+string(k), v); err != nil {
				r.addf("local state: %v", err)
			}
			return nil
		})
	}
	check(bucketLocal, "")
	check(bucketHist, "hist/")
}
