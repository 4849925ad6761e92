// Package bench measures meshsync on the machine it runs on: `meshsync bench` is a thin
// command over it.
//
// Run starts two real nodes on loopback with real bbolt stores and measures an initial
// sync, signed authority records, unlock, incremental syncs (Merkle and the fast path),
// push latency, and the nodes at rest (memory, disk, idle CPU and wake-ups). Each figure is
// set beside a limit measured in the same run, alone, in the same process: a raw libp2p
// stream between two bare hosts configured like a node's, the store's bulk layout written
// by package store's own code (internal/storehook) in the order an initial sync writes it
// (record-id order, in transactions of a session's apply group), XChaCha20-Poly1305
// opening, one round trip and one committed transaction. Reconcile measures the reconciliation algorithm on
// two in-memory sets.
//
// # Usage
//
//	rows, err := bench.Run(ctx, bench.Options{Records: 10000, Dir: dir, Progress: os.Stderr})
//	if err != nil { … }
//	bench.WriteTable(os.Stdout, rows, 1024) // or one JSON object per row
//
// # Caveats
//
// A shared machine is noisy: compare ratios, not absolute figures. Before the fill, the
// bbolt limit and the initial sync the bench writes and removes a scratch file as large
// as what each will write (warm.go), so that both sides of the ratio write into memory
// the machine has used lately: on a virtual machine that backs fresh guest memory lazily,
// page-cache writes into fresh memory cost several times more. The wire byte counts
// need Linux (TCP_INFO) and the idle and memory figures read /proc; elsewhere they are
// zero. In test mode (internal/testmode) the nodes use the cheap test KDF and the unlock
// row says so.
package bench
