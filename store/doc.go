// Package store is meshsync's encrypted local record store: keys and sealing, record
// envelopes, the bbolt file, the persistent Merkle index, applying envelopes from other
// devices, the change feed, Verify, and encrypted backups.
//
// A record is (collection, key) → a JSON document or raw bytes, or a delete marker. On disk
// and on the wire it is an [Envelope]: a keyed-hash id, the version in clear (version
// vector, hybrid logical clock, writing device) and the payload sealed with
// XChaCha20-Poly1305 under a random nonce, with id and version as associated data, and a
// collection [Tag] (a keyed hash of the collection's name) outside it, checked when a
// device opens the envelope. For one id the store keeps the antichain of versions that
// nothing it holds dominates; reading a record resolves that antichain with the
// collection's policy (package resolve). The Merkle index is a forest, one tree per tag
// (summary.go): a device may hold only some collections ([Scope]), and two devices
// reconcile over the collections both hold. A store of layout 1 (before tags) takes them
// on when it is opened (layout.go).
//
// The passphrase is stretched with Argon2id into a key that unwraps a random mesh key and a
// random local secret of this device; the mesh's keys come from the mesh key by HKDF, and
// the key sealing local state (identity, key-agreement key, epoch keys, progress) from the
// local secret, so that another member with a copy of the file opens none of it. Nothing is
// written in clear but the header (KDF parameters, salt, wrapped secrets), the store epoch
// and the envelope versions. A store of header version 1 (local state under a key from the
// mesh key) migrates when it is opened; a meshsync older than header version 2 refuses a
// migrated store ("store header version 2 is not supported").
//
// # Usage
//
//	s, err := store.Init(dir, passphrase, nil) // or store.Open(dir, passphrase, nil)
//	if err != nil { … }
//	defer s.Close()
//	err = s.Put("notes", "groceries", []byte(`{"milk":2}`))
//	rec, err := s.Get("notes", "groceries") // rec.Value is canonical JSON
//	err = s.Update(func(tx *store.Tx) error { // many writes, one fsync
//		return tx.Put("notes", "todo", []byte(`"call mum"`))
//	})
//
// Another device's envelopes go through [Store.Apply]; a peer that synced before asks for
// [Store.Since] its last sequence number; a first meeting reconciles [Store.Summary] with
// package merkle and ships [Store.Envelopes] of the ids that differ.
//
// # Caveats
//
//   - One process at a time: bbolt locks the file; a second opener gets [ErrLocked] naming
//     the holder.
//   - Writes are durable when Put or Update returns (one fsync per transaction): group many
//     writes in one Update.
//   - Authority (authority.go): every record of a reserved collection is signed by its
//     writer's device key ([Store.SigningKey]) and checked by Apply against the membership
//     the signed records establish ([Store.Members]): admissions ([Store.Admit]), removal
//     records ([Store.Remove]) that never un-happen, and trust anchors ([Store.AddAnchors],
//     set at pairing; [Store.Upgrade] for a store made before signatures). Data records are
//     not signed: a removed device can still forge one whose clock it sets back before its
//     removal (it arrives as an old version).
//   - Key epochs: [Store.RotateKey] starts a new data key wrapped (age X25519) for the
//     devices that remain; every key a device can unwrap is kept, new writes use the
//     newest key that a remaining device started after the latest removal and that no
//     removed device holds, [Store.Reseal] re-seals old envelopes in batches. A removed
//     device's writes beyond its cut are refused, and so is a data write under a key a
//     removed device holds made after its removal (until re-sealed). A blind replica,
//     which cannot read the signed records, is told the cuts ([Store.RevokeDevice]).
//     Backups carry the rotated keys and the members.
//   - Tombstones older than TombstoneTTL (90 days) are collected, but never past the
//     store's last contact ([Store.NoteContact]); a store away longer than the horizon of
//     a peer must resync fully (the node does it). Every device must use the same TTL.
//   - A blind replica ([InitReplica]) holds a token, not the mesh key: it merges
//     envelopes by their clear header, cannot collect tombstones, and every record
//     operation returns [ErrBlind].
//   - A full disk makes writes fail with [ErrDiskFull] and leaves the store readable;
//     writes succeed again once space returns, without reopening.
//   - Record keys are compared in Unicode NFC; invisible characters are refused.
//   - A store put back from an old copy of its file cannot know it until it hears from a
//     peer: then [Store.RolledBack] reports it, the store starts a new epoch, and local
//     writes count above every counter of this device the mesh has shown it. A write made
//     on the restored copy before that may reuse a (device, counter) pair the mesh holds
//     and lose to the forgotten version. [Store.NoteRollback] lets the sync layer report a
//     stale incarnation it noticed itself.
//   - A transaction that deletes more than half of a collection of at least
//     [MassDeleteMin] records fails with [ErrMassDelete] unless it calls
//     [Tx.ConfirmMassDelete]; deletes spread over many transactions are not counted.
package store
