package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/meshsync/meshsync/merkle"
)

// BenchmarkOrderedUpTo measures the sender's id-ordered walk of an initial sync: every
// record of a store whose ids are random relative to sequence order (as keyed hashes
// written in any order are), read as nextOrdered reads them (node/session/ordered.go):
// one OrderedUpTo per batch of about 1 MiB, each resumed after the last id sent, each
// envelope copied. ns/op is
// one whole walk; ns/record is what matters. "warm" walks again an open store whose
// mapping earlier walks touched; "cold" reopens the store before each walk, so that
// every page of the mapping is touched for the first time, as a sender's first initial
// sync after a restart does. Building the store takes about 20 µs per record (300k: about
// 6 s and 360 MB under the benchmark's temporary directory).
func BenchmarkOrderedUpTo(b *testing.B) {
	for _, n := range []int{30_000, 100_000, 300_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "store")
			s, err := Init(dir, testPass, &Options{KDF: testKDF, DeviceName: "src", NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			putKiBs(b, s, n)
			b.Cleanup(func() { s.Close() })
			// walk times whole walks; with reopen the store is opened anew before each,
			// so that the walk meets a mapping not yet touched.
			walk := func(b *testing.B, reopen bool) {
				upto, err := s.Replication().LastSeq()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				records := 0
				for b.Loop() {
					if reopen {
						b.StopTimer()
						if err := s.Close(); err != nil {
							b.Fatal(err)
						}
						if s, err = Open(dir, testPass, &Options{NoSync: true}); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					records += walkInBatches(b, s, upto)
				}
				if records != n*b.N {
					b.Fatalf("%d records walked in %d walks, want %d each", records, b.N, n)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
			}
			b.Run("warm", func(b *testing.B) {
				walkInBatches(b, s, 1<<62) // touch the mapping once
				walk(b, false)
			})
			b.Run("cold", func(b *testing.B) { walk(b, true) })
		})
	}
}

var copySink []byte

var errWalkBatchFull = errors.New("batch full")

// copied is where walkInBatches copies the envelopes.
var copied []byte

// walkInBatches walks every record of s up to upto as an id-ordered sender does: batches
// of at most 1 MiB or 4,096 envelopes, each one OrderedUpTo resumed after the last record
// it took, each envelope copied. It returns the records taken.
func walkInBatches(b *testing.B, s *Store, upto uint64) int {
	const batchBytes, maxEnvs = 1 << 20, 4096
	var after merkle.ID
	first := true
	records := 0
	for {
		size, envs := 0, 0
		for {
			last, any, err := s.Replication().OrderedUpTo(after, first, upto, maxEnvs, func(r *HeldRecord) error {
				n := 0
				for _, raw := range r.Raw {
					n += len(raw)
					copySink = append(copySink[:0], raw...)
				}
				if envs > 0 && (size+n > batchBytes || envs+len(r.Raw) > maxEnvs) {
					return errWalkBatchFull
				}
				size, envs = size+n, envs+len(r.Raw)
				after, first = r.ID, false
				records++
				return nil
			})
			full := errors.Is(err, errWalkBatchFull)
			if err != nil && !full {
				b.Fatal(err)
			}
			if !full && any {
				after, first = last, false
			}
			if full || !any {
				break
			}
		}
		if envs == 0 {
			return records
		}
	}
}
