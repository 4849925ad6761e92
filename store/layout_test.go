package store

import (
	"bytes"
	"maps"
	"path/filepath"
	"testing"

	"github.com/meshsync/meshsync/merkle"
	bolt "go.etcd.io/bbolt"
)

// rawEnvelopes reads the envelope bucket of a store file as it is on disk.
func rawEnvelopes(t *testing.T, s *Store) map[uint64][]byte {
	t.Helper()
	out := map[uint64][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEnv).ForEach(func(k, v []byte) error {
			out[be64(k)] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenMigratesV2FixtureToTags opens the committed store of layout 1 (testdata/v2, made
// before collection tags): the open tags every envelope, rebuilds the forest, and the
// store verifies and reads as before; a second open changes nothing.
func TestOpenMigratesV2FixtureToTags(t *testing.T) {
	e := loadFixtureExpectOf(t, "v2")
	dir := fixtureDirOf(t, "v2", "store")
	s, err := Open(dir, fixtureStorePass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	checkFixtureStore(t, s, e)
	envs := rawEnvelopes(t, s)
	for seq, raw := range envs {
		if raw[0] != envelopeFormatTagged {
			t.Errorf("envelope %d still of format %d after the migration", seq, raw[0])
		}
	}
	roots, err := s.Replication().Roots()
	if err != nil {
		t.Fatal(err)
	}
	var reserved, data int
	for _, r := range roots {
		if r.Tag == (Tag{}) {
			t.Errorf("a device store keeps an untagged tree (%d records)", r.Root.Count)
		} else if r.Tag.Reserved() {
			reserved++
		} else {
			data++
		}
	}
	if data != 2 || reserved == 0 {
		t.Errorf("%d data trees (want 2: notes, todo) and %d reserved ones", data, reserved)
	}
	s.Close()

	s, err = Open(dir, fixtureStorePass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkFixtureStore(t, s, e)
	if again := rawEnvelopes(t, s); !maps.EqualFunc(envs, again, bytes.Equal) {
		t.Error("a second open rewrote envelopes")
	}
}

// TestV2ReplicaTagsFromDevices: a blind replica cannot open envelopes, so its migration
// files them under the zero tag; when a device sends a record tagged, the replica tags
// what it held of it alike, and both hold the same bytes for every record again.
func TestV2ReplicaTagsFromDevices(t *testing.T) {
	e := loadFixtureExpectOf(t, "v2")
	laptop, err := Open(fixtureDirOf(t, "v2", "store"), fixtureStorePass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	defer laptop.Close()
	replica, err := Open(fixtureDirOf(t, "v2", "replica"), fixtureReplicaPass, fixtureOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, replica)
	roots, err := replica.Replication().Roots()
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].Tag != (Tag{}) || roots[0].Root.Count == 0 {
		t.Fatalf("replica after migration: roots %+v, want one untagged tree", roots)
	}
	var raw [][]byte
	var ids []merkle.ID
	if _, err := laptop.Replication().Since(0, 0, func(_ uint64, b []byte) error {
		raw = append(raw, bytes.Clone(b))
		id, _ := EnvelopeID(b)
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res, err := replica.Replication().Apply(raw)
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("apply the laptop's envelopes to the replica: %v %+v", err, res.Rejected)
	}
	held := func(s *Store) map[merkle.ID][][]byte {
		out := map[merkle.ID][][]byte{}
		for _, id := range ids {
			if err := s.Replication().Envelopes([]merkle.ID{id}, func(b []byte) error {
				out[id] = append(out[id], bytes.Clone(b))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	want, got := held(laptop), held(replica)
	for _, id := range ids {
		if len(want[id]) != len(got[id]) {
			t.Errorf("record %x: laptop holds %d envelopes, replica %d", id[:6], len(want[id]), len(got[id]))
			continue
		}
		for i := range want[id] {
			if !bytes.Equal(want[id][i], got[id][i]) {
				t.Errorf("record %x: envelope %d differs between laptop and replica", id[:6], i)
			}
		}
	}
	lroots, _ := laptop.Replication().Roots()
	rroots, _ := replica.Replication().Roots()
	for _, lr := range lroots {
		for _, rr := range rroots {
			if rr.Tag == lr.Tag && rr.Root.Count < lr.Root.Count {
				t.Errorf("tag %s: replica holds %d records, laptop %d", lr.Tag, rr.Root.Count, lr.Root.Count)
			}
		}
	}
}

// TestOpenMigratesV3FixtureToRecordIndex opens the committed stores of layout 2
// (testdata/v3: collection tags, an id index and a collection index): the open builds the
// record index, drops the old indexes, keeps every envelope's bytes and every collection's
// Merkle root, and the stores verify and read as before; a second open changes nothing.
func TestOpenMigratesV3FixtureToRecordIndex(t *testing.T) {
	e := loadFixtureExpectOf(t, "v3")
	for _, c := range []struct {
		name string
		pass []byte
	}{{"store", fixtureStorePass}, {"replica", fixtureReplicaPass}} {
		t.Run(c.name, func(t *testing.T) {
			dir := fixtureDirOf(t, "v3", c.name)
			before := layout2Roots(t, dir)
			if len(before) < 2 {
				t.Fatalf("fixture holds %d collection trees", len(before))
			}
			s, err := Open(dir, c.pass, fixtureOpts(e))
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "store" {
				checkFixtureStore(t, s, e)
			}
			roots, err := s.Replication().Roots()
			if err != nil {
				t.Fatal(err)
			}
			after := map[Tag]merkle.Node{}
			for _, r := range roots {
				after[r.Tag] = r.Root
			}
			if !maps.Equal(before, after) {
				t.Errorf("collection roots changed in the migration:\nbefore %v\nafter  %v", before, after)
			}
			err = s.db.View(func(tx *bolt.Tx) error {
				for _, b := range [][]byte{bucketIDs, bucketColl} {
					if tx.Bucket(b) != nil {
						t.Errorf("old index %q kept", b)
					}
				}
				if v := tx.Bucket(bucketMeta).Get(metaLayout); !bytes.Equal(v, []byte{layoutIndexed}) {
					t.Errorf("layout %v after the migration", v)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			envs := rawEnvelopes(t, s)
			mustVerifyClose(t, s)

			s, err = Open(dir, c.pass, fixtureOpts(e))
			if err != nil {
				t.Fatal(err)
			}
			defer mustVerifyClose(t, s)
			if c.name == "store" {
				checkFixtureStore(t, s, e)
			}
			if again := rawEnvelopes(t, s); !maps.EqualFunc(envs, again, bytes.Equal) {
				t.Error("a second open rewrote envelopes")
			}
		})
	}
}

// layout2Roots reads the collection roots of a layout-2 store file as they are on disk.
func layout2Roots(t *testing.T, dir string) map[Tag]merkle.Node {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[Tag]merkle.Node{}
	err = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaLayout); !bytes.Equal(v, []byte{layoutTagged}) {
			t.Fatalf("fixture of layout %v, want %d", v, layoutTagged)
		}
		return tx.Bucket(bucketTree).ForEach(func(k, v []byte) error {
			if len(k) == len(Tag{})+1 && k[len(Tag{})] == 0 { // a root: tag, then level 0
				var tag Tag
				copy(tag[:], k)
				var n merkle.Node
				if err := n.UnmarshalBinary(v); err != nil {
					return err
				}
				out[tag] = n
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
