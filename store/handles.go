package store

// The store's surface beyond records, in handles by concern, so that Store itself keeps
// what bbolt keeps: open, close, transactions, records, subscriptions, verification and
// backups. Each handle is a small value that refers to its store; get one when needed.

// Replication is what the sync layer uses: applying envelopes from elsewhere, the
// sequence feed, the Merkle summary, store epochs, tombstone horizons and rollback notes.
type Replication struct{ s *Store }

// Replication returns the store's replication handle.
func (s *Store) Replication() Replication { return Replication{s} }

// Keys manages the keys: subkeys by purpose, the key epochs and their rotation, the
// device's signing and key-agreement keys, the passphrase and discovery secrets.
type Keys struct{ s *Store }

// Keys returns the store's key handle.
func (s *Store) Keys() Keys { return Keys{s} }

// Authority is who may change the mesh (authority.go): members, admissions, removals,
// trust anchors, and the cuts of removed devices.
type Authority struct{ s *Store }

// Authority returns the store's authority handle.
func (s *Store) Authority() Authority { return Authority{s} }

// Conflicts lists and resolves open conflicts and reads the conflict history.
type Conflicts struct{ s *Store }

// Conflicts returns the store's conflict handle.
func (s *Store) Conflicts() Conflicts { return Conflicts{s} }

// Policies reads and sets the conflict policy of each collection (synced records).
type Policies struct{ s *Store }

// Policies returns the store's policy handle.
func (s *Store) Policies() Policies { return Policies{s} }

// Local is device-local state: values sealed under the local key and never synced (the
// sync layer's progress and states, the node's own settings).
type Local struct{ s *Store }

// Local returns the store's device-local state handle.
func (s *Store) Local() Local { return Local{s} }

// Commits is how many write transactions this store committed since it was opened. bbolt
// syncs the file twice per commit (the data pages, then the meta page), so this counts
// the fsyncs a workload costs (`meshsync bench`).
func (h Replication) Commits() uint64 { return h.s.commits.Load() }
