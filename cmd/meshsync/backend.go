package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// backend is what the record commands need. The store itself satisfies it when no daemon
// runs; the daemon's client satisfies it when one does (the store file is locked then).
type backend interface {
	Put(collection, key string, value []byte) error
	PutRaw(collection, key string, value []byte) error
	Get(collection, key string) (*store.Record, error)
	Delete(collection, key string) error
	List(collection, prefix string) ([]store.Record, error)
	Conflicts() ([]store.ConflictInfo, error)
	Conflict(id string) (*store.ConflictInfo, error)
	ResolveConflict(id merkle.ID, pick int, value []byte, expect int) error
	History(collection, key string) ([]store.HistoryEntry, error)
	SetPolicy(collection string, p resolve.Policy) error
	Policy(collection string) (resolve.Policy, bool, error)
	Policies() (map[string]resolve.Policy, error)
	Verify() (*store.Report, error)
	ExportFile(path string, pass []byte, opts *store.ExportOptions) (store.BackupInfo, error)
	ImportFile(path string, pass []byte, dryRun bool) (store.ImportStats, error)
	ChangePassphrase(oldPass, newPass []byte, kdf *store.KDFParams) error
	Close() error
}

var (
	_ backend = storeBackend{}
	_ backend = (*localapi.Client)(nil)
)

// storeBackend is the store itself as a backend, when no daemon runs.
type storeBackend struct{ *store.Store }

func (b storeBackend) Conflicts() ([]store.ConflictInfo, error) { return b.Store.Conflicts().List() }
func (b storeBackend) Policies() (map[string]resolve.Policy, error) {
	return b.Store.Policies().List()
}

// daemon returns a client of the daemon serving the data directory, or nil when none runs.
func (g *globals) daemon(ctx context.Context) *localapi.Client {
	if _, err := os.Stat(localapi.SocketPath(g.dir())); err != nil {
		return nil
	}
	c, err := localapi.Dial(ctx, g.dir())
	if err != nil {
		return nil
	}
	return c
}

// open returns the running daemon's client, or else unlocks the store itself.
func (g *globals) open() (backend, error) {
	if c := g.daemon(context.Background()); c != nil {
		return c, nil
	}
	if _, err := os.Stat(filepath.Join(g.dir(), store.FileName)); err != nil {
		return nil, fmt.Errorf("open store %s: %w", g.dir(), store.ErrNoStore)
	}
	pass, err := g.passphrase(false)
	if err != nil {
		return nil, err
	}
	s, err := store.Open(g.dir(), pass, nil)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w (and no daemon answers on %s)", err, localapi.SocketPath(g.dir()))
	}
	if err != nil {
		return nil, err
	}
	return storeBackend{s}, nil
}
