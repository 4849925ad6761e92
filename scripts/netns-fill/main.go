// Command netns-fill writes many records into a meshsync store in a few transactions: the
// bulk data of the multi-host tests (scripts/netns-reach.sh badlink), where 10,000
// `meshsync put` commands would take minutes.
//
// # Usage
//
//	MESHSYNC_PASSPHRASE=… netns-fill -dir DIR -collection bulk -n 10000 [-prefix a-] [-size 200]
//
// Keys are PREFIX00000 … PREFIX<n-1>, each value a JSON object of about -size bytes.
//
// # Caveats
//
// It opens the store itself, so no daemon may run over DIR.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/meshsync/meshsync/store"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "netns-fill:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("netns-fill", flag.ContinueOnError)
	dir := fs.String("dir", "", "data directory (no daemon may run over it)")
	coll := fs.String("collection", "bulk", "collection to write")
	n := fs.Int("n", 10000, "records to write")
	prefix := fs.String("prefix", "", "key prefix")
	size := fs.Int("size", 200, "approximate value size in bytes")
	batch := fs.Int("batch", 1000, "records per transaction")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pass := os.Getenv("MESHSYNC_PASSPHRASE")
	if *dir == "" || pass == "" || *n < 0 || *batch < 1 || *size < 0 || *size > 1<<20 {
		return errors.New("need -dir, MESHSYNC_PASSPHRASE, -n ≥ 0, -batch ≥ 1, 0 ≤ -size ≤ 1 MiB")
	}
	s, err := store.Open(*dir, []byte(pass), nil)
	if err != nil {
		return err
	}
	err = fill(s, *coll, *prefix, *n, *batch, strings.Repeat("x", *size))
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// fill writes n records in transactions of batch.
func fill(s *store.Store, coll, prefix string, n, batch int, pad string) error {
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		err := s.Update(func(tx *store.Tx) error {
			for i := lo; i < hi; i++ {
				v := fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad)
				if err := tx.Put(coll, fmt.Sprintf("%s%05d", prefix, i), []byte(v)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("write records %d-%d: %w", lo, hi-1, err)
		}
	}
	return nil
}
