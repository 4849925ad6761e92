package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var kib = []byte(`{"data":"` + string(bytes.Repeat([]byte("x"), 1000)) + `"}`)

// BenchmarkPut: one 1 KiB record per fsync'd transaction.
func BenchmarkPut(b *testing.B) {
	s := mustInit(b, nil)
	b.SetBytes(int64(len(kib)))
	for i := 0; b.Loop(); i++ {
		if err := s.Put("bench", fmt.Sprint(i), kib); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutBatched: 1 KiB records, 1,000 per transaction (ns/op is per record).
func BenchmarkPutBatched(b *testing.B) {
	s := mustInit(b, nil)
	b.SetBytes(int64(len(kib)))
	for i := 0; i < b.N; i += 1000 {
		err := s.Update(func(t *Tx) error {
			for j := i; j < min(i+1000, b.N); j++ {
				if err := t.Put("bench", fmt.Sprint(j), kib); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func filled(b *testing.B, n int) (*Store, [][]byte) {
	b.Helper()
	src := mustInit(b, testOpts("src"))
	putKiBs(b, src, n)
	return src, allEnvelopes(b, src)
}

// putKiBs writes n records of 1 KiB to collection "bench", 5,000 per transaction.
func putKiBs(b *testing.B, s *Store, n int) {
	b.Helper()
	for i := 0; i < n; i += 5000 {
		err := s.Update(func(t *Tx) error {
			for j := i; j < min(i+5000, n); j++ {
				if err := t.Put("bench", fmt.Sprint(j), kib); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApply10k: a fresh device applies 10,000 remote 1 KiB envelopes (one batch per
// op, in transactions of 5,000).
func BenchmarkApply10k(b *testing.B) {
	src, envs := filled(b, 10000)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		dst := peer(b, src, fmt.Sprint("dst", b.N), nil)
		b.StartTimer()
		for i := 0; i < len(envs); i += 5000 {
			mustApply(b, dst, envs[i:min(i+5000, len(envs))])
		}
	}
	b.ReportMetric(float64(len(envs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkUnlock: Open with the default Argon2id parameters.
func BenchmarkUnlock(b *testing.B) {
	old := kdfFloor
	kdfFloor = DefaultKDF
	defer func() { kdfFloor = old }()
	dir := filepath.Join(b.TempDir(), "s")
	s, err := Init(dir, testPass, &Options{KDF: DefaultKDF})
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	for b.Loop() {
		s, err := Open(dir, testPass, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkExportImport100k: export 100,000 1 KiB records, then restore them on a new
// device; reports the bytes on disk per record too.
func BenchmarkExportImport100k(b *testing.B) {
	n := 100000
	if testing.Short() {
		n = 5000
	}
	src, _ := filled(b, n)
	path := filepath.Join(b.TempDir(), "backup.age")
	for b.Loop() {
		if _, err := ExportFile(src, path, backupPass, nil); err != nil {
			b.Fatal(err)
		}
		f, _ := os.Open(path)
		r, _, err := Restore(filepath.Join(b.TempDir(), fmt.Sprint("r", b.N)), f, backupPass, testPass, testOpts("r"))
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
	st, _ := os.Stat(filepath.Join(src.Dir(), FileName))
	b.ReportMetric(float64(st.Size())/float64(n), "disk-bytes/record")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkIndexCost compares 1 KiB writes with and without the Merkle index (ns/op per
// record; the bar: with the index at most twice without).
func BenchmarkIndexCost(b *testing.B) {
	for _, batch := range []int{1, 1000} {
		for _, index := range []bool{true, false} {
			b.Run(fmt.Sprintf("batch=%d/index=%v", batch, index), func(b *testing.B) {
				s, err := Init(filepath.Join(b.TempDir(), "s"), testPass, testOpts("x"))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				s.noIndex = !index
				for i := 0; i < b.N; i += batch {
					err := s.Update(func(t *Tx) error {
						for j := i; j < min(i+batch, b.N); j++ {
							if err := t.Put("bench", fmt.Sprint(j), kib); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
