// Package resolve is meshsync's conflict engine: pure, deterministic
// functions from a record's concurrent versions and its collection's policy
// to the value every device reads.
//
// A record is stored as an antichain of versions (Sibling: a Version with
// its device, hybrid clock and version vector, plus the decrypted Value).
// Resolve reduces the siblings to the ones no other dominates, detects the
// conflict type (update/delete, type-mismatch, create/create,
// update/update) and applies the policy's strategy:
//
//   - timestamp: the highest Timestamp wins, ties by device id;
//   - priority: the highest Policy.PriorityField number or
//     Policy.DeviceRank wins, ties by timestamp;
//   - merge: JSON objects merge field by field (see below), anything else
//     by timestamp;
//   - user: the conflict stays Open until Conflict.Deadline (the latest
//     version's wall time plus Policy.Deadline) with the fallback's value
//     as a provisional value, then the fallback decides.
//
// Policy.Critical names fields whose concurrent change opens a user-choice
// conflict under any strategy.
//
// # Merge
//
// Every JSON object value carries FieldClocks, a last-writer-wins map per
// JSON path: for each field, the (clock, device, counter) of the write that
// last set it, removed it (a removal marker) or made it an object (whose
// fields carry their own clocks). Stamp computes them on each local write:
// unchanged fields keep their clocks. Merging is the per-path join of these
// maps (the higher clock wins; two objects created by the same write merge
// field by field), a join-semilattice, so the merged value is a function of
// the antichain alone: the same on every device, whatever history it holds,
// and commutative, associative and idempotent. A field changed on one side
// only has a newer clock on that side and wins; a removal is a newer marker
// and wins; a field changed on both sides goes to the later clock.
//
// # Usage
//
//	var clk resolve.Clock // persist clk.Last
//	v := resolve.Version{Device: me, Clock: clk.Now(time.Now()), VV: merged.Clone()}
//	v.VV[me]++
//	val, err := resolve.StampVersion(&prevResolved, doc, v)
//	...
//	res, err := resolve.Resolve(policy, siblings, time.Now())
//	// res.Value is what the application reads; res.Conflict.Losers go to
//	// the conflict history; a decision is written as a new version whose
//	// VV dominates every sibling.
//
// The sub-package sim is a randomized convergence simulator built on this
// package.
//
// # Caveats
//
//   - A field replaced by a value of another type (object to number, or the
//     reverse) is compared by the clock of that replacement: a concurrent
//     edit inside the old object loses even if it is later. Arrays are
//     leaves: concurrent edits of one array go to the later clock whole.
//   - Removal markers are never collected; a document that churns through
//     many distinct keys grows its field clocks.
//   - A remote clock clamped by Clock.Observe (more than MaxSkew ahead) can
//     make a later local change carry a smaller clock than the change it
//     overwrote; that clock then wins concurrent merges until real time
//     catches up. The skew is reported so the device can be flagged.
//   - Critical-field detection is exact only with clocks written by
//     StampVersion (which records version-vector counters); with Stamp it
//     may report a conflict where only one side changed the field.
//   - Field paths are dotted: a key that contains "." cannot be named in
//     PriorityField or Critical. Numbers are compared as float64 and kept as
//     written by CanonicalJSON ("1.0" and "1" differ byte-wise).
//   - Nothing here is safe for concurrent use of one Clock; everything else
//     is stateless.
package resolve
