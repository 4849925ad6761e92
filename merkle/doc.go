// Package merkle summarises a set of (id, digest) items as a fixed-fanout prefix tree of
// additive fingerprints, and finds the difference between two such sets with a
// reconciliation protocol whose cost grows with the number of differences d and only
// logarithmically with the set size n.
//
// The package is pure: no I/O, no goroutines, no clock. A Source (the in-memory Mem here,
// the bbolt store elsewhere) supplies nodes and items; a Session consumes the peer's
// messages and produces its own, the way a raft node does, and the caller carries the
// bytes.
//
// # The tree
//
// Ids are uniform (keyed hashes), so a prefix tree over their hex digits is balanced.
// Fanout is 16; a Source serves Depth = 6 levels (root to level 5), and each level-5 node
// holds about n/16^5 items (1 at a million, 10 at ten million). Deeper subtrees are
// summarised on the fly from Source.Items. (The store keeps levels 0 to 4 and computes
// level 5 from its record index: store/items.go.) A Node is a
// count and a Fingerprint: four 64-bit lanes, each the sum modulo 2^64 of the matching
// lane of SHA-256(id || digest). Being a sum it changes by one Add or Remove, without
// reading siblings.
//
// # The protocol
//
// The initiator sends its root (count and full fingerprint) and the 16 level-1
// fingerprints truncated to 2 bytes. Equal roots end the session in one round trip (79
// bytes). Otherwise each side answers every subtree whose fingerprints differ, many per
// message: a subtree holding at most ListThreshold (40) items is listed as 3-byte tags of
// its item hashes; a larger one is split into its 16 children, or into its 256
// grandchildren when it holds more than 256 × ListThreshold items (two narrow splits
// could not reach a listable size; this is what keeps n = 10^6 at three round trips). A
// list is answered with a bitmap of the tags the replier lacks and the full ids of the
// replier's items the list lacks; the lister then sends the full ids asked for. A subtree
// the peer reports empty gets all our ids at once.
//
// Truncated fingerprints and tags can collide and hide a difference. Both sides
// therefore check at the end that the differences found account exactly for the
// difference of the roots, in count and in lane 0 of the fingerprint (which nothing
// truncated uses; every message that carries full ids carries the lane-0 sum of their
// item hashes). If the check fails the side about to end opens a new pass with twice the
// widths and another lane; after three passes the session ends with ErrMismatch.
//
// Measured with Simulate (n shared items, d differences; bytes in both directions):
// n = 10^6, d = 10: 3 round trips, about 5.7 KB; d = 0: 1 round trip, 79 bytes;
// n = 10^5, d = 10: 3 round trips, about 2.1 KB. Run the table with
// MESHSYNC_TABLE=1 go test -run TestPrintTable ./merkle/.
//
// # Usage
//
//	a := merkle.NewInitiator(localSource, merkle.Config{})
//	msg, err := a.Start()
//	for err == nil && msg != nil {
//		reply := sendAndReceive(msg) // the caller's transport; the peer calls Handle
//		msg, err = a.Handle(reply)
//	}
//	need, have := a.Result() // once a.Done()
//
// The peer runs NewResponder(itsSource, cfg) and answers each message with Handle until
// Handle returns nil. A Session reads its Source between messages, so the Source must
// not change during a session (read from a snapshot, or restart on change).
//
// # Caveats
//
//   - The wire format (version 1, documented in wire.go) is internal; peers must use the
//     same MaxMessageBytes, since each side refuses messages above its own cap.
//   - A peer can always claim to hold a different set than it does; the protocol only
//     guarantees that an honest pair finds exactly the symmetric difference, and that a
//     lying peer ends the session with an error after bounded work (Config.MaxRounds,
//     MaxWork, message caps, at most 3 passes) or with a result that is consistent with
//     the lie.
//   - The tags and fingerprints reveal nothing beyond ids and digests, which both peers
//     exchange anyway.
//   - Ids below the stored levels that share a long prefix are fine, but a single level-5
//     subtree with more than 65,536 items ends a session with ErrTooLarge.
//   - Mem.Insert and Mem.Remove cost O(n/4096); NewMemFrom builds a set in one pass.
package merkle
