package store

import (
	"crypto/ed25519"
	"time"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
)

// Forwarding methods kept while callers move to the handles (handles.go).

// AddAnchors is Authority().AddAnchors.
//
// Deprecated: use Authority().AddAnchors.
func (s *Store) AddAnchors(devs map[resolve.DeviceID]ed25519.PublicKey) error {
	return s.Authority().AddAnchors(devs)
}

// Admit is Authority().Admit.
//
// Deprecated: use Authority().Admit.
func (s *Store) Admit(dev resolve.DeviceID, key ed25519.PublicKey) (Admission, error) {
	return s.Authority().Admit(dev, key)
}

// AdoptDiscoveryKeys is Keys().AdoptDiscoveryKeys.
//
// Deprecated: use Keys().AdoptDiscoveryKeys.
func (s *Store) AdoptDiscoveryKeys(keys []DiscoveryKey) (bool, error) {
	return s.Keys().AdoptDiscoveryKeys(keys)
}

// AdoptHorizon is Replication().AdoptHorizon.
//
// Deprecated: use Replication().AdoptHorizon.
func (s *Store) AdoptHorizon(h time.Time) error {
	return s.Replication().AdoptHorizon(h)
}

// AdoptKeys is Keys().AdoptKeys.
//
// Deprecated: use Keys().AdoptKeys.
func (s *Store) AdoptKeys() (int, error) {
	return s.Keys().AdoptKeys()
}

// AdoptSigningKey is Keys().AdoptSigningKey.
//
// Deprecated: use Keys().AdoptSigningKey.
func (s *Store) AdoptSigningKey(key ed25519.PrivateKey) error {
	return s.Keys().AdoptSigningKey(key)
}

// Anchored is Authority().Anchored.
//
// Deprecated: use Authority().Anchored.
func (s *Store) Anchored() (bool, error) {
	return s.Authority().Anchored()
}

// Apply is Replication().Apply.
//
// Deprecated: use Replication().Apply.
func (s *Store) Apply(raw [][]byte) (ApplyResult, error) {
	return s.Replication().Apply(raw)
}

// ApplyWith is Replication().ApplyWith.
//
// Deprecated: use Replication().ApplyWith.
func (s *Store) ApplyWith(raw [][]byte, fn func(*Tx, ApplyResult) error) (ApplyResult, error) {
	return s.Replication().ApplyWith(raw, fn)
}

// ChangePassphrase is Keys().ChangePassphrase.
//
// Deprecated: use Keys().ChangePassphrase.
func (s *Store) ChangePassphrase(oldPass, newPass []byte, kdf *KDFParams) error {
	return s.Keys().ChangePassphrase(oldPass, newPass, kdf)
}

// CheckPassphrase is Keys().CheckPassphrase.
//
// Deprecated: use Keys().CheckPassphrase.
func (s *Store) CheckPassphrase(pass []byte) error {
	return s.Keys().CheckPassphrase(pass)
}

// ClockSkew is Replication().ClockSkew.
//
// Deprecated: use Replication().ClockSkew.
func (s *Store) ClockSkew() time.Duration {
	return s.Replication().ClockSkew()
}

// CollectTombstones is Replication().CollectTombstones.
//
// Deprecated: use Replication().CollectTombstones.
func (s *Store) CollectTombstones() (int, error) {
	return s.Replication().CollectTombstones()
}

// Conflict is Conflicts().Get.
//
// Deprecated: use Conflicts().Get.
func (s *Store) Conflict(prefix string) (*ConflictInfo, error) {
	return s.Conflicts().Get(prefix)
}

// DiscoveryKeys is Keys().DiscoveryKeys.
//
// Deprecated: use Keys().DiscoveryKeys.
func (s *Store) DiscoveryKeys() ([]DiscoveryKey, error) {
	return s.Keys().DiscoveryKeys()
}

// Envelopes is Replication().Envelopes.
//
// Deprecated: use Replication().Envelopes.
func (s *Store) Envelopes(ids []merkle.ID, fn func(raw []byte) error) error {
	return s.Replication().Envelopes(ids, fn)
}

// Epoch is Replication().Epoch.
//
// Deprecated: use Replication().Epoch.
func (s *Store) Epoch() [16]byte {
	return s.Replication().Epoch()
}

// ForgetBefore is Replication().ForgetBefore.
//
// Deprecated: use Replication().ForgetBefore.
func (s *Store) ForgetBefore(ids []merkle.ID, before time.Time) (int, error) {
	return s.Replication().ForgetBefore(ids, before)
}

// GetLocal is Local().Get.
//
// Deprecated: use Local().Get.
func (s *Store) GetLocal(name string, v any) (bool, error) {
	return s.Local().Get(name, v)
}

// GrantKeys is Keys().GrantKeys.
//
// Deprecated: use Keys().GrantKeys.
func (s *Store) GrantKeys(dev resolve.DeviceID, pub string) (int, error) {
	return s.Keys().GrantKeys(dev, pub)
}

// History is Conflicts().History.
//
// Deprecated: use Conflicts().History.
func (s *Store) History(collection, key string) ([]HistoryEntry, error) {
	return s.Conflicts().History(collection, key)
}

// Horizon is Replication().Horizon.
//
// Deprecated: use Replication().Horizon.
func (s *Store) Horizon() time.Time {
	return s.Replication().Horizon()
}

// KeyAgreementKey is Keys().KeyAgreementKey.
//
// Deprecated: use Keys().KeyAgreementKey.
func (s *Store) KeyAgreementKey() (string, error) {
	return s.Keys().KeyAgreementKey()
}

// KeyEpochs is Keys().KeyEpochs.
//
// Deprecated: use Keys().KeyEpochs.
func (s *Store) KeyEpochs() ([]KeyEpoch, error) {
	return s.Keys().KeyEpochs()
}

// LastContact is Replication().LastContact.
//
// Deprecated: use Replication().LastContact.
func (s *Store) LastContact() time.Time {
	return s.Replication().LastContact()
}

// LastSeq is Replication().LastSeq.
//
// Deprecated: use Replication().LastSeq.
func (s *Store) LastSeq() (uint64, error) {
	return s.Replication().LastSeq()
}

// LoadKeyEpochs is Keys().LoadKeyEpochs.
//
// Deprecated: use Keys().LoadKeyEpochs.
func (s *Store) LoadKeyEpochs() error {
	return s.Keys().LoadKeyEpochs()
}

// Members is Authority().Members.
//
// Deprecated: use Authority().Members.
func (s *Store) Members() ([]Member, error) {
	return s.Authority().Members()
}

// MeshID is Keys().MeshID.
//
// Deprecated: use Keys().MeshID.
func (s *Store) MeshID() [16]byte {
	return s.Keys().MeshID()
}

// MeshKeyForPairing is Keys().MeshKeyForPairing.
//
// Deprecated: use Keys().MeshKeyForPairing.
func (s *Store) MeshKeyForPairing() []byte {
	return s.Keys().MeshKeyForPairing()
}

// NeedsRotation is Keys().NeedsRotation.
//
// Deprecated: use Keys().NeedsRotation.
func (s *Store) NeedsRotation() (bool, error) {
	return s.Keys().NeedsRotation()
}

// NoteContact is Replication().NoteContact.
//
// Deprecated: use Replication().NoteContact.
func (s *Store) NoteContact(t time.Time) error {
	return s.Replication().NoteContact(t)
}

// NoteRollback is Replication().NoteRollback.
//
// Deprecated: use Replication().NoteRollback.
func (s *Store) NoteRollback() error {
	return s.Replication().NoteRollback()
}

// Policy is Policies().Get.
//
// Deprecated: use Policies().Get.
func (s *Store) Policy(collection string) (resolve.Policy, bool, error) {
	return s.Policies().Get(collection)
}

// PutLocal is Local().Put.
//
// Deprecated: use Local().Put.
func (s *Store) PutLocal(name string, v any) error {
	return s.Local().Put(name, v)
}

// RemovalPoint is Authority().RemovalPoint.
//
// Deprecated: use Authority().RemovalPoint.
func (s *Store) RemovalPoint(dev resolve.DeviceID) (RemovalPoint, error) {
	return s.Authority().RemovalPoint(dev)
}

// Remove is Authority().Remove.
//
// Deprecated: use Authority().Remove.
func (s *Store) Remove(dev resolve.DeviceID) error {
	return s.Authority().Remove(dev)
}

// ReplicaToken is Keys().ReplicaToken.
//
// Deprecated: use Keys().ReplicaToken.
func (s *Store) ReplicaToken() (ReplicaToken, error) {
	return s.Keys().ReplicaToken()
}

// Reseal is Keys().Reseal.
//
// Deprecated: use Keys().Reseal.
func (s *Store) Reseal(limit int) (ResealStats, error) {
	return s.Keys().Reseal(limit)
}

// ResolveConflict is Conflicts().Resolve.
//
// Deprecated: use Conflicts().Resolve.
func (s *Store) ResolveConflict(id merkle.ID, pick int, value []byte, expect int) error {
	return s.Conflicts().Resolve(id, pick, value, expect)
}

// RevokeDevice is Authority().RevokeDevice.
//
// Deprecated: use Authority().RevokeDevice.
func (s *Store) RevokeDevice(dev resolve.DeviceID, at RemovalPoint) error {
	return s.Authority().RevokeDevice(dev, at)
}

// Revoked is Authority().Revoked.
//
// Deprecated: use Authority().Revoked.
func (s *Store) Revoked() (map[resolve.DeviceID]RemovalPoint, error) {
	return s.Authority().Revoked()
}

// RolledBack is Replication().RolledBack.
//
// Deprecated: use Replication().RolledBack.
func (s *Store) RolledBack() (Rollback, bool) {
	return s.Replication().RolledBack()
}

// Root is Replication().Root.
//
// Deprecated: use Replication().Root.
func (s *Store) Root() (merkle.Node, error) {
	return s.Replication().Root()
}

// RotateKey is Keys().RotateKey.
//
// Deprecated: use Keys().RotateKey.
func (s *Store) RotateKey(recipients map[resolve.DeviceID]string) (KeyEpoch, error) {
	return s.Keys().RotateKey(recipients)
}

// SealForTest is Replication().SealForTest.
//
// Deprecated: use Replication().SealForTest.
func (s *Store) SealForTest(f Forgery) ([]byte, error) {
	return s.Replication().SealForTest(f)
}

// SetPolicy is Policies().Set.
//
// Deprecated: use Policies().Set.
func (s *Store) SetPolicy(collection string, p resolve.Policy) error {
	return s.Policies().Set(collection, p)
}

// SigningKey is Keys().SigningKey.
//
// Deprecated: use Keys().SigningKey.
func (s *Store) SigningKey() ed25519.PrivateKey {
	return s.Keys().SigningKey()
}

// Since is Replication().Since.
//
// Deprecated: use Replication().Since.
func (s *Store) Since(after uint64, limit int, fn func(seq uint64, raw []byte) error) (uint64, error) {
	return s.Replication().Since(after, limit, fn)
}

// SinceUpTo is Replication().SinceUpTo.
//
// Deprecated: use Replication().SinceUpTo.
func (s *Store) SinceUpTo(after, upto uint64, limit int, fn func(seq uint64, raw []byte) error) (uint64, error) {
	return s.Replication().SinceUpTo(after, upto, limit, fn)
}

// Subkey is Keys().Subkey.
//
// Deprecated: use Keys().Subkey.
func (s *Store) Subkey(purpose Purpose) ([]byte, error) {
	return s.Keys().Subkey(purpose)
}

// Summary is Replication().Summary.
//
// Deprecated: use Replication().Summary.
func (s *Store) Summary() merkle.Source {
	return s.Replication().Summary()
}

// Upgrade is Authority().Upgrade.
//
// Deprecated: use Authority().Upgrade.
func (s *Store) Upgrade(devs map[resolve.DeviceID]LegacyDevice) error {
	return s.Authority().Upgrade(devs)
}

// Upgraded is Authority().Upgraded.
//
// Deprecated: use Authority().Upgraded.
func (s *Store) Upgraded() (bool, error) {
	return s.Authority().Upgraded()
}
