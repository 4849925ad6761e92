package session

import (
	"bytes"
	"testing"

	"github.com/meshsync/meshsync/node/internal/wire"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// envOf is a minimal envelope of record id {b} written by counter c.
func envOf(t testing.TB, b byte, c uint64) []byte {
	dev := resolve.DeviceID("d")
	e := store.Envelope{ID: [32]byte{b}, Version: resolve.Version{Device: dev, VV: resolve.VersionVector{dev: c}}, Ciphertext: []byte("sixteen bytes..!")}
	raw, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// FuzzOrderedBatch feeds arbitrary Batch bodies to the check of an id-ordered stream: it
// never panics, and what it accepts has growing record ids past the cursor, no envelope
// twice, and no more records than the claim.
func FuzzOrderedBatch(f *testing.F) {
	seed := func(envs ...[]byte) []byte { return (&wire.Batch{Envelopes: envs}).Marshal() }
	f.Add(seed(envOf(f, 1, 1), envOf(f, 2, 1), envOf(f, 2, 2)), seed(envOf(f, 3, 1)))
	f.Add(seed(envOf(f, 2, 1), envOf(f, 1, 1)), seed())
	f.Add(seed(envOf(f, 1, 1), envOf(f, 1, 1)), seed(envOf(f, 1, 2)))
	f.Add((&wire.Batch{From: 1, To: 2, Envelopes: [][]byte{envOf(f, 1, 1)}}).Marshal(), []byte{0xff})
	f.Fuzz(func(t *testing.T, b1, b2 []byte) {
		c := orderCheck{claim: 3}
		var seen [][]byte
		var last []byte
		for _, body := range [][]byte{b1, b2} {
			b, err := wire.UnmarshalBatch(body)
			if err != nil {
				return
			}
			if _, err := c.batch(b); err != nil {
				return
			}
			for i, e := range b.Envelopes {
				id, err := store.EnvelopeID(e)
				if err != nil {
					t.Fatalf("accepted a malformed envelope: %v", err)
				}
				switch cmp := bytes.Compare(id[:], last); {
				case last != nil && cmp < 0, last != nil && cmp == 0 && i == 0:
					t.Fatalf("accepted record %x after %x", id[:2], last[:2])
				}
				for _, s := range seen {
					if bytes.Equal(s, e) {
						t.Fatal("accepted an envelope twice")
					}
				}
				seen, last = append(seen, e), bytes.Clone(id[:])
			}
		}
		if c.records > c.claim {
			t.Fatalf("accepted %d records, claim %d", c.records, c.claim)
		}
	})
}
