package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/node/web"
	"github.com/meshsync/meshsync/store"
	"golang.org/x/term"
)

// globals are the flags every command takes, and the process's streams.
type globals struct {
	Dir            string `name:"dir" env:"MESHSYNC_DIR" help:"Data directory (default ${default_dir})." placeholder:"DIR"`
	JSON           bool   `name:"json" help:"Print machine-readable JSON."`
	PassphraseFile string `name:"passphrase-file" help:"Read the passphrase from this file (else MESHSYNC_PASSPHRASE, else a prompt)." placeholder:"FILE"`

	stdin          io.Reader
	stdout, stderr io.Writer
	pass           []byte // the passphrase, once read
}

// defaultDir is the per-user data directory.
func defaultDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && runtime.GOOS != "darwin" && runtime.GOOS != "windows" {
		return filepath.Join(d, "meshsync")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "meshsync-data"
	}
	switch runtime.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "Application Support", "meshsync")
	case "windows":
		if d := os.Getenv("LocalAppData"); d != "" {
			return filepath.Join(d, "meshsync")
		}
	}
	return filepath.Join(home, ".local", "share", "meshsync")
}

func (g *globals) dir() string {
	if g.Dir != "" {
		return g.Dir
	}
	return defaultDir()
}

// errNoPassphrase says that no passphrase source was available.
var errNoPassphrase = errors.New("no passphrase given")

// secret reads a passphrase from env, then file, then a no-echo prompt on a terminal.
func (g *globals) secret(envName, file, prompt string, confirm bool) ([]byte, error) {
	if v, ok := os.LookupEnv(envName); ok && v != "" {
		return []byte(v), nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usagef("read passphrase file: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return nil, usagef("passphrase file %s is empty", file)
		}
		return []byte(p), nil
	}
	f, ok := g.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, usageError{fmt.Errorf("%w: set %s, use --passphrase-file, or run in a terminal to be asked", errNoPassphrase, envName)}
	}
	fmt.Fprint(g.stderr, prompt+": ")
	p, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(g.stderr)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, usagef("empty passphrase")
	}
	if confirm {
		fmt.Fprint(g.stderr, "Again: ")
		q, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.stderr)
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		if string(p) != string(q) {
			return nil, usagef("the passphrases do not match")
		}
	}
	return p, nil
}

// passphrase reads the store's passphrase (asking once per command, unless confirm asks
// for a new one to be typed twice).
func (g *globals) passphrase(confirm bool) ([]byte, error) {
	if g.pass != nil && !confirm {
		return g.pass, nil
	}
	p, err := g.secret("MESHSYNC_PASSPHRASE", g.PassphraseFile, "Passphrase", confirm)
	if err == nil {
		g.pass = p
	}
	return p, err
}

// print writes v as JSON with --json, else calls human to write text.
func (g *globals) print(v any, human func(w io.Writer)) error {
	if g.JSON {
		enc := json.NewEncoder(g.stdout)
		return enc.Encode(v)
	}
	w := bufio.NewWriter(g.stdout)
	human(w)
	return w.Flush()
}

// hints name the fix for the errors a person meets, and pick the exit code: the one table
// every error of every command goes through (see describe). Errors keep their sentinels
// through the local API, so a daemon's errors get the same hints. DIR is replaced by the
// data directory.
var hints = []struct {
	err   error
	usage bool
	fix   string
}{
	{store.ErrNoStore, false, "run `meshsync init` to create one in DIR, or point --dir / MESHSYNC_DIR at your store"},
	{store.ErrExists, false, "DIR already holds a store; use it, or choose another --dir"},
	{store.ErrWrongPassphrase, false, "check MESHSYNC_PASSPHRASE or --passphrase-file and try again"},
	{store.ErrLocked, false, "another meshsync process holds the store; stop it or wait for it to finish"},
	{store.ErrWeakKDF, false, "the store's key-derivation settings were lowered; restore the file from a backup"},
	{store.ErrCorrupt, false, "run `meshsync verify`, and restore from a backup with `meshsync import` if it fails"},
	{store.ErrBadBackup, false, "nothing was imported; use an intact copy of the backup"},
	{store.ErrOtherMesh, false, "nothing was imported; import it into an empty --dir to restore that mesh instead"},
	{store.ErrStale, false, "new versions arrived; run `meshsync conflicts show` again"},
	{store.ErrAmbiguous, true, ""},
	{store.ErrNotFound, false, ""},
	{store.ErrBlind, false, "this directory is a blind replica: read and write records on a device of the mesh"},
	{store.ErrInvalid, true, ""},
	{store.ErrReserved, true, ""},
	{store.ErrOutOfScope, true, ""},
	{store.ErrUnsent, false, ""},
	{store.ErrTooLarge, true, ""},
	{errNoPassphrase, true, ""},
	{node.ErrBadInvite, true, "check the code (copy it whole, as printed by `meshsync pair`; a short code from `pair --short` is a number and three words)"},
	{node.ErrInviteExpired, false, "ask for a new one with `meshsync pair` on a device of the mesh"},
	{node.ErrInviteRefused, false, "ask for a new one with `meshsync pair`: an invite works once, and closes after 3 wrong codes"},
	{node.ErrInviterUnreachable, false, "the invite was not used: check that the inviting device is on and its daemon runs; from another network, give its relay with --relay ADDR or its address with --peer ADDR (`meshsync --json pair` lists them)"},
	{node.ErrPairTimeout, false, "try again: the invite may still be open (`meshsync pair` makes a new one)"},
	{node.ErrUnknownDevice, true, "see `meshsync devices`"},
	{node.ErrSelf, true, "remove a device from another device of the mesh"},
	{consent.ErrNotFound, false, "see `meshsync consent ls` and `meshsync consent pending`"},
	{consent.ErrBadRule, true, ""},
	{consent.ErrBadGrant, true, ""},
	{consent.ErrAmbiguous, true, ""},
	{consent.ErrMeshDevice, true, ""},
	{consent.ErrTooLarge, true, ""},
	{localapi.ErrNoDaemon, false, "start it with `meshsync daemon`"},
	{web.ErrNotLoopback, true, "the page can do everything this device may: keep it on 127.0.0.1"},
	{localapi.ErrBadRequest, true, ""},
	{errSyncTimeout, false, "see `meshsync status` for which device and why"},
}
