package store

import (
	"fmt"

	"github.com/meshsync/meshsync/resolve"
	bolt "go.etcd.io/bbolt"
)

// Forgery describes an envelope to seal by hand with SealForTest.
type Forgery struct {
	// Collection and Key name the record; they are used as given (not canonicalised), and
	// reserved collections ("_devices", "_keys" …) are allowed.
	Collection, Key string
	// Kind is what Value holds: resolve.KindJSON (the default when zero), resolve.KindRaw,
	// or resolve.KindDeleted for a tombstone (Value ignored).
	Kind resolve.Kind
	// Value is the JSON document or the raw bytes. A JSON value is stamped with Version as a
	// first write of the record would be.
	Value []byte
	// Version is the version in clear: any device, clock and vector, whether or not the
	// device exists or the counters make sense.
	Version resolve.Version
	// KeyEpoch is the key epoch the envelope names.
	KeyEpoch uint32
	// SealKey, when not nil, is the 32-byte key the payload is sealed with, whatever
	// KeyEpoch says (a key minted by a hostile device, say). When nil the store seals with
	// the key it holds for KeyEpoch and fails with ErrUnknownKeyEpoch when it holds none.
	SealKey []byte
}

// SealForTest seals an envelope exactly as f describes it and returns its encoding, ready
// for Apply or the wire. It exists for tests and for simulating a hostile device (a member
// that forges another device's writes, sends counters no device reached, or names key
// epochs that nobody started); meshsync itself never calls it. It writes nothing: the
// envelope lives only in what it returns. A blind replica fails with ErrBlind.
func (h Replication) SealForTest(f Forgery) ([]byte, error) {
	s := h.s
	if err := s.needKey("seal for test"); err != nil {
		return nil, err
	}
	val := resolve.Value{Kind: f.Kind, Data: f.Value}
	switch f.Kind {
	case 0, resolve.KindJSON:
		v, err := resolve.StampVersion(nil, f.Value, f.Version)
		if err != nil {
			return nil, fmt.Errorf("seal for test: %w", err)
		}
		val = v
	case resolve.KindDeleted:
		val.Data = nil
	}
	plain, err := (&payload{Collection: f.Collection, Key: f.Key, Value: val}).marshal()
	if err != nil {
		return nil, fmt.Errorf("seal for test: %w", err)
	}
	key := f.SealKey
	if key == nil {
		if err := s.db.View(func(tx *bolt.Tx) error { return s.loadEpochKeys(tx) }); err != nil {
			return nil, err
		}
		keys := s.keys.keysOf(f.KeyEpoch)
		if len(keys) == 0 {
			return nil, fmt.Errorf("seal for test: %w %d", ErrUnknownKeyEpoch, f.KeyEpoch)
		}
		key = keys[0]
	}
	env, err := s.keys.sealWith(s.keys.recordID(f.Collection, f.Key), s.keys.tag(f.Collection), f.Version, plain, f.KeyEpoch, key)
	if err != nil {
		return nil, fmt.Errorf("seal for test: %w", err)
	}
	return env.MarshalBinary()
}
