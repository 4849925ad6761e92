// Package sim is a pure, deterministic convergence simulator for the
// resolve package: N in-memory replicas write, delete, change policies and
// exchange versions over a lossy network, then must agree.
//
// Each replica holds, per record, the antichain of versions no other version
// it holds dominates, and resolves it with resolve.Resolve under the
// collection's policy (itself a record, resolved by timestamp). Puts stamp
// the replica's resolved value with resolve.StampVersion under a version
// vector that increments the replica's own entry over the merged vector of
// the antichain it replaces. The network delivers at random, duplicates,
// drops, reorders and partitions (which heal); a final full exchange ends
// every run. Run then checks that every replica holds the same antichains
// and resolves them alike, and that every write is the resolved value, a
// loser recorded in that replica's history, or superseded by a write whose
// author had really seen it (the simulator tracks causality apart from the
// version vectors).
//
// # Usage
//
//	rep, err := sim.Run(sim.Config{Seed: 42})
//	if err != nil { ... } // err names the seed and the broken invariant
//
// # Caveats
//
// There is no crash/restart, no tombstone collection and no store: it
// exercises the resolve rules, not bbolt or the wire format. Time is
// virtual; everything is a function of the seed.
package sim
