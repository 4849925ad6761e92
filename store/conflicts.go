package store

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
	bolt "go.etcd.io/bbolt"
)

// ErrAmbiguous means a conflict id prefix matches more than one record.
var ErrAmbiguous = errors.New("ambiguous conflict id")

// ErrStale means a conflict changed (new versions arrived) between reading and resolving it.
var ErrStale = errors.New("the conflict changed since it was read")

// DefaultHistoryRetention is how long the losing values of a resolution stay readable.
const DefaultHistoryRetention = 30 * 24 * time.Hour

// VersionInfo is one concurrent version of a record.
type VersionInfo struct {
	Version resolve.Version
	Kind    resolve.Kind
	Value   []byte
}

// ConflictInfo is a record with concurrent versions.
type ConflictInfo struct {
	ID         merkle.ID
	Collection string
	Key        string
	Conflict   resolve.Conflict
	// Resolved is the value every device currently reads (Kind Deleted: reads as deleted).
	Resolved resolve.Value
	// Versions are the concurrent versions, oldest first (by hybrid clock, then device).
	Versions []VersionInfo
}

// ShortID is the id a person types: the first 8 bytes of the record id in hex.
func (c *ConflictInfo) ShortID() string { return hex.EncodeToString(c.ID[:8]) }

// Conflicts lists every record whose concurrent versions conflict (open user-choice
// conflicts, and those a strategy resolved automatically but no write has closed yet).
func (h Conflicts) List() ([]ConflictInfo, error) {
	s := h.s
	if err := s.needKey("conflicts"); err != nil {
		return nil, err
	}
	var out []ConflictInfo
	err := s.View(func(t *Tx) error {
		// A read transaction has nothing buffered: read the leaves as stored, and look up
		// only the records holding more than one version.
		return t.tx.Bucket(bucketItems).ForEach(func(k, v []byte) error {
			firsts, err := concurrentIn(v)
			if err != nil {
				return fmt.Errorf("leaf %x: %w", k, err)
			}
			for _, seq := range firsts {
				id, err := t.envID(seq)
				if err != nil {
					return err
				}
				ci, err := t.conflictInfo(id)
				if err != nil {
					return err
				}
				if ci != nil {
					out = append(out, *ci)
				}
			}
			return nil
		})
	})
	slices.SortFunc(out, func(a, b ConflictInfo) int {
		return strings.Compare(a.Collection+"\x00"+a.Key, b.Collection+"\x00"+b.Key)
	})
	return out, err
}

// Conflict returns the conflict whose id starts with prefix (hex), or the conflict of the
// record named "collection/key".
func (h Conflicts) Get(prefix string) (*ConflictInfo, error) {
	s := h.s
	all, err := s.Conflicts().List()
	if err != nil {
		return nil, err
	}
	var found *ConflictInfo
	for i := range all {
		name := all[i].Collection + "/" + all[i].Key
		if name == prefix || strings.HasPrefix(hex.EncodeToString(all[i].ID[:]), strings.ToLower(prefix)) {
			if found != nil {
				return nil, fmt.Errorf("conflict %s: %w: give more characters", prefix, ErrAmbiguous)
			}
			found = &all[i]
		}
	}
	if found == nil || prefix == "" {
		return nil, fmt.Errorf("conflict %s: %w", prefix, ErrNotFound)
	}
	return found, nil
}

func (t *Tx) conflictInfo(id merkle.ID) (*ConflictInfo, error) {
	set, err := t.antichain(id)
	if err != nil || len(set) < 2 {
		return nil, err
	}
	ci := &ConflictInfo{ID: id}
	for _, h := range set {
		p, err := t.s.keys.open(h.env)
		if err != nil {
			return nil, err
		}
		ci.Collection, ci.Key = p.Collection, p.Key
		ci.Versions = append(ci.Versions, VersionInfo{Version: h.env.Version, Kind: p.Value.Kind, Value: p.Value.Data})
	}
	res, err := t.resolveSet(ci.Collection, set)
	if err != nil || res.Conflict == nil {
		return nil, err
	}
	ci.Conflict, ci.Resolved = *res.Conflict, res.Value
	slices.SortFunc(ci.Versions, func(a, b VersionInfo) int {
		if a.Version.Clock != b.Version.Clock {
			return cmpU64(uint64(a.Version.Clock), uint64(b.Version.Clock))
		}
		return strings.Compare(string(a.Version.Device), string(b.Version.Device))
	})
	return ci, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ResolveConflict closes a conflict with a new version that dominates every concurrent
// version: the value of version pick (1-based, in ConflictInfo.Versions order) or, when pick
// is 0, value (JSON). expect is the number of versions the caller saw; if the record holds
// another number now, nothing is written and ErrStale says to look again.
func (h Conflicts) Resolve(id merkle.ID, pick int, value []byte, expect int) error {
	s := h.s
	return s.Update(func(t *Tx) error {
		ci, err := t.conflictInfo(id)
		if err != nil {
			return err
		}
		if ci == nil {
			return fmt.Errorf("resolve %x: %w (no open conflict)", id[:8], ErrNotFound)
		}
		if expect > 0 && len(ci.Versions) != expect {
			return fmt.Errorf("resolve %s/%s: %w", ci.Collection, ci.Key, ErrStale)
		}
		kind := resolve.KindJSON
		if pick > 0 {
			if pick > len(ci.Versions) {
				return fmt.Errorf("%w: --pick %d, but there are %d versions", ErrInvalid, pick, len(ci.Versions))
			}
			v := ci.Versions[pick-1]
			kind, value = v.Kind, v.Value
		}
		return t.write(ci.Collection, ci.Key, kind, value)
	})
}

// HistoryEntry is a losing value of a resolved conflict.
type HistoryEntry struct {
	Collection string          `json:"collection"`
	Key        string          `json:"key"`
	Device     string          `json:"device"`
	Time       time.Time       `json:"time"`
	Deleted    bool            `json:"deleted,omitempty"`
	Value      json.RawMessage `json:"value,omitempty"`
	Raw        []byte          `json:"raw,omitempty"`
	ResolvedAt time.Time       `json:"resolved_at"`
	ResolvedBy string          `json:"resolved_by"`
}

// recordHistory keeps the values that a conflict-closing write dropped.
func (t *Tx) recordHistory(old, next []hashed) error {
	if len(old) < 2 || t.s.keys.blind { // a blind replica cannot read what it would keep
		return nil
	}
	kept := map[[32]byte]bool{}
	var keptValues [][]byte
	var by resolve.DeviceID
	for _, h := range next {
		kept[h.hash] = true
		by = h.env.Version.Device
		if p, err := t.s.keys.open(h.env); err == nil {
			keptValues = append(keptValues, p.Value.Data)
		}
	}
	hist := t.tx.Bucket(bucketHist)
	for _, h := range old {
		if kept[h.hash] {
			continue
		}
		p, err := t.s.keys.open(h.env)
		if err != nil {
			return err
		}
		if p.Value.Kind != resolve.KindDeleted && slices.ContainsFunc(keptValues, func(v []byte) bool { return bytes.Equal(v, p.Value.Data) }) {
			continue // its value lives on
		}
		e := HistoryEntry{Collection: p.Collection, Key: p.Key, Device: string(h.env.Version.Device),
			Time: h.env.Version.Clock.Time(), ResolvedAt: t.now.UTC(), ResolvedBy: string(by)}
		switch p.Value.Kind {
		case resolve.KindDeleted:
			e.Deleted = true
		case resolve.KindJSON:
			e.Value = p.Value.Data
		default:
			e.Raw = p.Value.Data
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		key := append(u64be(uint64(t.now.UnixMilli())), h.hash[:12]...)
		sealed, err := t.s.sealLocal("hist/"+string(key), b)
		if err != nil {
			return err
		}
		if err := hist.Put(key, sealed); err != nil {
			return err
		}
	}
	return nil
}

// History returns the losing values of resolved conflicts still within the retention
// period, newest first; with a collection (and key) only those.
func (h Conflicts) History(collection, key string) ([]HistoryEntry, error) {
	s := h.s
	var out []HistoryEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHist).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			plain, err := s.openLocal("hist/"+string(k), v)
			if err != nil {
				return err
			}
			var e HistoryEntry
			if err := json.Unmarshal(plain, &e); err != nil {
				return fmt.Errorf("%w: history entry: %v", ErrCorrupt, err)
			}
			if (collection == "" || e.Collection == collection) && (key == "" || e.Key == key) {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}

// pruneHistory drops history entries older than the retention period.
func (s *Store) pruneHistory() error {
	cutoff := u64be(uint64(s.opts.Now().Add(-s.opts.HistoryRetention).UnixMilli()))
	due := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketHist).Cursor().First()
		due = k != nil && bytes.Compare(k[:8], cutoff) < 0
		return nil
	}); err != nil || !due {
		return err // a read-only open of a full disk must not need a commit
	}
	return s.update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHist).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], cutoff) < 0; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetPolicy sets the conflict policy of a collection. The policy is a synced record, so every
// device resolves the collection alike.
func (h Policies) Set(collection string, p resolve.Policy) error {
	s := h.s
	collection, _, err := canonicalNames(collection, "x", false)
	if err != nil {
		return err
	}
	if strings.HasPrefix(collection, "_") {
		return fmt.Errorf("%w: %q", ErrReserved, collection)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.Update(func(t *Tx) error { return t.PutReserved(PolicyCollection, collection, b) })
}

// Policies returns every collection's explicit policy.
func (h Policies) List() (map[string]resolve.Policy, error) {
	s := h.s
	recs, err := s.List(PolicyCollection, "")
	if err != nil {
		return nil, err
	}
	out := map[string]resolve.Policy{}
	for _, r := range recs {
		var p resolve.Policy
		if err := json.Unmarshal(r.Value, &p); err != nil {
			return nil, fmt.Errorf("policy of %s: %w", r.Key, err)
		}
		out[r.Key] = p
	}
	return out, nil
}

// Policy returns a collection's policy with defaults filled in, and whether it was set
// explicitly.
func (h Policies) Get(collection string) (resolve.Policy, bool, error) {
	s := h.s
	var p resolve.Policy
	var explicit bool
	err := s.View(func(t *Tx) error {
		var err error
		p, err = t.policy(collection)
		if err != nil {
			return err
		}
		_, gerr := t.Get(PolicyCollection, collection)
		explicit = gerr == nil
		return nil
	})
	return p, explicit, err
}
