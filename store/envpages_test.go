package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// checkEnvPages compares, in a read transaction of db, envGetMany and the page reader
// alone with the cursor for every key of the envelope bucket and a few more, in windows
// of several sizes, in order and shuffled.
func checkEnvPages(t *testing.T, db *bolt.DB, wantRaw bool) {
	t.Helper()
	err := db.View(func(btx *bolt.Tx) error {
		tx := &Tx{tx: btx}
		var last uint64
		if b := btx.Bucket(bucketEnv); b != nil {
			if k, _ := b.Cursor().Last(); k != nil {
				last = binary.BigEndian.Uint64(k)
			}
		}
		r := tx.envReader()
		if (r != nil) != wantRaw {
			t.Fatalf("envReader %v, want one: %v", r != nil, wantRaw)
		}
		var seqs []uint64
		for seq := uint64(0); seq <= last+3; seq++ {
			seqs = append(seqs, seq)
		}
		seqs = append(seqs, 1<<63, ^uint64(0))
		shuffled := slices.Clone(seqs)
		rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, w := range []int{1, 7, 64, len(seqs), -64} {
			seqs := seqs
			if w < 0 {
				seqs, w = shuffled, -w
			}
			for i := 0; i < len(seqs); i += w {
				part := seqs[i:min(i+w, len(seqs))]
				out := make([][]byte, len(part))
				if r != nil {
					r.getMany(part, out)
					for j, seq := range part {
						want := tx.envGet(seq)
						if out[j] != nil && !bytes.Equal(out[j], want) {
							t.Fatalf("window %d: envelope %d read from the pages differs from the cursor's", w, seq)
						}
						if out[j] == nil && want != nil {
							t.Fatalf("window %d: envelope %d not found in the pages", w, seq)
						}
					}
				}
				for j := range out {
					out[j] = []byte("stale") // envGetMany sets every one
				}
				tx.envGetMany(part, out)
				for j, seq := range part {
					if want := tx.envGet(seq); !bytes.Equal(out[j], want) || (out[j] == nil) != (want == nil) {
						t.Fatalf("window %d: envGetMany(%d) = %d bytes, the cursor %d", w, seq, len(out[j]), len(want))
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEnvPagesMatchCursor: reading envelope pages directly gives what the cursor gives,
// for every key and for keys the bucket lacks, in stores of two page sizes, with holes
// (replaced envelopes), values on overflow pages, and trees of one to three levels; a
// write transaction, an empty or inline bucket reads through the cursor alone.
func TestEnvPagesMatchCursor(t *testing.T) {
	s := mustInit(t, testOpts("dev"))
	checkEnvPages(t, s.db, false) // the bucket is inline: the cursor reads it
	for j := 0; j < 3000; j++ {
		if err := s.Put("bench", fmt.Sprint(j), kib); err != nil {
			t.Fatal(err)
		}
	}
	checkEnvPages(t, s.db, true)
	if err := s.Update(func(tx *Tx) error {
		if tx.envReader() != nil {
			t.Error("a write transaction reads envelope pages itself")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		pageSize, n, depth int
		value              func(seq int) int
	}{
		{4096, 3000, 3, func(int) int { return 1000 }},                        // three levels
		{4096, 20000, 3, func(int) int { return 20 }},                         // many keys a leaf
		{16384, 6000, 2, func(int) int { return 1200 }},                       // as a store
		{16384, 800, 2, func(seq int) int { return 200 + 30000*(seq%40/39) }}, // overflow pages
		{4096, 1, 1, func(int) int { return 5000 }},                           // one leaf root on overflow pages
		{4096, 2, 0, func(int) int { return 10 }},                             // inline in its parent's page
	} {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, &bolt.Options{PageSize: c.pageSize})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket(bucketEnv)
			if err != nil {
				return err
			}
			b.FillPercent = 0.9
			for seq := 1; seq <= c.n; seq++ {
				v := make([]byte, c.value(seq))
				for i := range v {
					v[i] = byte(rng.Uint32())
				}
				if err := b.Put(u64be(uint64(seq)), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Holes: every third key and a run.
		err = db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEnv)
			for seq := 3; seq <= c.n; seq += 3 {
				if err := b.Delete(u64be(uint64(seq))); err != nil {
					return err
				}
			}
			for seq := c.n / 2; seq < c.n/2+c.n/10; seq++ {
				if err := b.Delete(u64be(uint64(seq))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("%d-%d", c.pageSize, c.n), func(t *testing.T) {
			if err := db.View(func(tx *bolt.Tx) error {
				if st := tx.Bucket(bucketEnv).Stats(); st.Depth != c.depth && c.depth > 0 || c.depth == 0 && st.InlineBucketN != 1 {
					t.Errorf("a tree of %d levels (inline: %d), want %d", st.Depth, st.InlineBucketN, c.depth)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			checkEnvPages(t, db, c.depth > 0)
		})
		db.Close()
	}
}
