// Package node is a meshsync device: an encrypted record store, a libp2p host that talks
// only to the person's own devices, and the sync engine that keeps them converged.
//
// A node speaks these protocols, each on its own stream, all framed by package
// node/internal/wire (4-byte length, type byte, body; 4 MiB cap):
//
//   - PairProtocol (/meshsync/pair/1.0.0): a new device proves an invite's one-time secret,
//     bound to both peer ids, and receives the mesh key and the device list.
//   - PairShortProtocol (/meshsync/pair-short/1.0.0): the same from a short code read
//     aloud (InviteShort): CPace with the code as its password, both peer ids bound in;
//     the key it yields seals the proof, the mesh key and the device list
//     (pairing_short.go). A joiner finds the inviter by --peer, its relays, mDNS or the
//     DHT (pairing_find.go).
//   - SyncProtocol (/meshsync/sync/1.0.0): hello (mesh proof, epoch, progress, Merkle
//     root), then the fast path ("everything after sequence S of epoch E") or a Merkle
//     reconciliation, then the missing envelopes both ways, applied in batches. The
//     decisions live in package node/session, a pure state machine; sync.go drives it.
//   - PushProtocol (/meshsync/push/1.0.0): a long-lived stream per connected device that
//     carries new envelopes as they commit.
//
// A connection gater refuses, once the secure handshake has authenticated the peer, every
// peer that is not a current device of the mesh, except while an invite is open; every
// handler checks again. The device list is what the signed records establish
// (store.Members: admissions in DevicesCollection, removals in store.RemovalsCollection);
// a device's peer id is the one its signing key names, so its identity key is its store's
// signing key.
//
// # Usage
//
//	n, err := node.Init(ctx, node.Config{Dir: dir, Passphrase: pass}, "laptop")
//	// or node.Open(ctx, cfg), or node.Join(ctx, cfg, code, "phone")
//	defer n.Close()
//	if err := n.Start(ctx); err != nil { … }
//	code, expires, err := n.Invite(10 * time.Minute) // show it on the other device
//	short, err := n.InviteShort(0)                    // or read short.Code aloud
//	n.Put("notes", "today", []byte(`{"text":"hello"}`))
//	sub := n.SubscribeStates(16) // Offline, Syncing, Conflict, UpToDate, Error per device
//	st := n.States()              // the status snapshot: devices, pending, warnings
//	err = n.WaitSynced(ctx)
//	n.Stop()                      // network down, store open (Put, Get … still work)
//	n.Start(ctx)                  // network up again, on a new host
//
// Protocols layered on the node register their handlers on Host().
//
// # Caveats
//
//   - A blind replica (Join with an InviteReplica code) runs the same node over a store
//     without the mesh key: devices prove themselves to it with the replica key and tell
//     it the device list (no names) over MembersProtocol after each session; it refuses
//     every record operation. A device learns of a replica only through the synced device
//     list.
//   - Removing a device asks for the passphrase again where a person asks for it
//     (RemoveDeviceConfirmed; the CLI, the local API): a stolen, unlocked device must not
//     evict the owner's others. RemoveDevice itself does not check: an app that calls it
//     must confirm first.
//   - Removing a device writes a signed removal record; every device that learns of it
//     writes how far it had seen the removed device, rotates the data key (a new key epoch
//     for the remaining devices) and re-seals old envelopes in the background; the removed
//     device's writes beyond the cut are refused everywhere. A peer of an older release
//     (sync version below 4) is refused with ErrOldPeer. Envelopes under a key this device
//     does not hold yet do not end a session: they are fetched again later.
//   - A device may hold only some collections (SetScope, store.Scope). Its hello says which
//     (by collection tag) and gives the root of each collection it holds; two devices
//     reconcile only over the collections both hold, and the fast path and pushes send a
//     peer only what it holds. Widening forgets the sync progress with every peer, so the
//     next sessions reconcile by summary and bring the collections added.
//   - Tombstones are collected daily once older than Config's TTL (90 days); a device away
//     longer than a peer's horizon resyncs fully (takes everything, sends only what it
//     wrote while away) and reports it (States.FullResync).
//   - A node has one open invite at a time, long or short; InviteState says what became
//     of it (used, closed after MaxInviteFailures wrong codes, expired, replaced).
//   - Beyond the LAN (unless Config.LANOnly) a node announces itself in the DHT under a
//     key only the mesh can compute, which changes every UTC day, and looks its devices
//     up there; what the DHT returns is a hint (only current devices are dialled, and
//     they must pass the gater and the hello's mesh proof). Devices behind NATs keep a
//     reservation on the configured relays (Config.Relays, `meshsync relay`), or on
//     relays found through the DHT once AutoNAT finds them behind a NAT, and hole-punch
//     (DCUtR, over TCP or QUIC: libp2p punches over whichever transports the two hosts
//     have observed public addresses for). libp2p tries once, when a relayed connection
//     comes in, and only if both hosts know a public address by then; two daemons started
//     together miss that moment. So while a device is reached only through relays, a
//     second goroutine of its device loop (direct.go) retries on a capped, jittered
//     backoff (directplan.go: 2 s, then 5 s doubling to 5 min), on the side that received
//     the relayed connection (the smaller peer id when both did), once both announce hole
//     punching; DeviceState.Direct shows the state, the failed attempts and the last
//     error. A device's public addresses other than relayed ones are dropped from the
//     peerstore once it is reached only through a relay, and a punched address is not
//     remembered: an old NAT mapping dialled at start leaves state in the routers that
//     makes the next punch fail for two minutes. Sync and push never run over a relayed
//     connection whose relay grants less than 10 minutes and 64 MiB (a public relay): such
//     a device shows as relayed, its sessions wait up to 20 s for a direct path, then fail
//     saying so (the relay's limits in the reason) and retry. In test mode
//     (internal/testmode) the default bootstrap list is empty.
//   - Envelopes received from a device are not sent back to it (echo suppression): the
//     ranges of sequence numbers they were given are kept per device in the store's local
//     state, written in the transaction that applies them, so they hold across restarts.
//     Only the newest 256 ranges per device are kept: after much interleaved traffic an
//     old envelope may travel back once.
//   - Progress per device is written in the same store transaction as the envelopes it
//     covers: one fsync per applied batch. A push therefore costs one commit on each
//     side; on this project's test machines a commit takes about 1 ms, which is most of
//     the push latency.
//   - Pending counts are estimates in sequence numbers, not record counts, and unknown
//     (-1) until a session with the device since the node started.
//   - The state of each device and the open conflicts survive a restart (the conflicts
//     are read back from the store); a device that was Syncing when the process ended
//     comes back Offline.
//   - Dials try TCP first and QUIC 250 ms later: an idle TCP connection wakes the node
//     less often than QUIC's 15-second keep-alive. libp2p itself still wakes an idle node
//     every 5 s (its address manager) and every 30 s (QUIC port reuse); nothing of the
//     node's own runs more often than once a minute when nothing changes.
//
// # Who owns what
//
// Each piece of a node's state has one owner; the package has no mutable package-level
// state (tests lower timing knobs through unexported Config fields).
//
//   - Set at Open and never changed: the config, the store, the identity, the proof keys.
//   - Node.life serializes Start, Stop and Close. Node.mu guards closed and the writes of
//     Node.net, the running network (a netRun: the host, its context and WaitGroup, the
//     DHT, mDNS and the device loops). Readers load Node.net without a lock (hostNow,
//     dhtNow): the tracker goroutine reads the host that way while holders of Node.mu
//     wait for the tracker. A netRun's host and context never change; its mdns and
//     device-loop table are guarded by Node.mu; its DHT is set once by Start.
//   - Stop cancels the run's context, closes discovery and the host and waits for the
//     run's WaitGroup: the device loops, the change-feed watcher, the address watcher,
//     the tombstone collection, the rendezvous loop and every running protocol handler
//     (each enters the run it serves). Close does that, then waits for the node's own
//     goroutines (the state tracker, a re-seal pass) and closes the store.
//   - A device loop (peer.go) is the one goroutine that dials its device, runs sessions as
//     the initiator, owns the push stream towards it, its backoff and anti-entropy timer;
//     others reach it over its channels (kick, push, gone). Beside it, the device's direct
//     loop (direct.go) owns the hole-punch schedule (a directPlan) and the attempt it
//     runs; it is woken over the direct channel and kicks the device loop once direct.
//   - The state tracker (states.go) is one goroutine that owns the per-device states, the
//     open conflicts and the pending estimates; others send it closures (do, call).
//   - The device list is an immutable snapshot (Node.devices), replaced only by
//     reloadDevices under Node.devMu and read without a lock.
//   - Scoped locks of their own: the progress and echo table (progress.go), the open
//     invite (pairing.go), the streams per device (limits.go), the key rotation and
//     re-seal state (rotation.go: its lock also serializes keysChanged), the state
//     subscriptions. Counters (limits.go violations, mDNS finds, gater refusals) are
//     atomics that only ever grow.
//   - A sync session's own state lives in its session.Session and session.Sender, each
//     owned by one goroutine of the handler or device loop that runs it.
package node
