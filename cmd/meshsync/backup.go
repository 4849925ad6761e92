package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/meshsync/meshsync/node/view"
	"github.com/meshsync/meshsync/store"
)

type exportCmd struct {
	File                 string `arg:"" help:"Backup file to write." type:"path"`
	BackupPassphraseFile string `name:"backup-passphrase-file" help:"Read the backup passphrase from this file (else MESHSYNC_BACKUP_PASSPHRASE, else a prompt, else the store passphrase)." placeholder:"FILE"`
}

type exportOutput struct {
	File string `json:"file"`
	view.BackupInfo
}

// backupSecret reads the backup passphrase; without any source it falls back to the
// store passphrase (and says so).
func (g *globals) backupSecret(file string, confirm bool) ([]byte, error) {
	p, err := g.secret("MESHSYNC_BACKUP_PASSPHRASE", file, "Backup passphrase", confirm)
	if errors.Is(err, errNoPassphrase) {
		if sp, serr := g.passphrase(false); serr == nil {
			fmt.Fprintln(g.stderr, "note: no backup passphrase given; using the store passphrase")
			return sp, nil
		}
	}
	return p, err
}

func (c *exportCmd) Run(ctx context.Context, g *globals) error {
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	bpass, err := g.backupSecret(c.BackupPassphraseFile, true)
	if err != nil {
		return err
	}
	info, err := withProgress(ctx, g, s, "export", func() (view.BackupInfo, error) { return s.ExportFile(ctx, c.File, bpass) })
	if err != nil {
		return err
	}
	out := exportOutput{File: c.File, BackupInfo: info}
	return g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "Wrote %s: %d envelopes (%d record versions), encrypted with age (scrypt).\n", c.File, info.Envelopes, info.Records)
		fmt.Fprintln(w, "Restore on a new device: meshsync import --dir NEWDIR", c.File)
	})
}

type importCmd struct {
	File                 string `arg:"" help:"Backup file to read." type:"existingfile"`
	DryRun               bool   `name:"dry-run" help:"Print what would change and change nothing."`
	BackupPassphraseFile string `name:"backup-passphrase-file" help:"Read the backup passphrase from this file (else MESHSYNC_BACKUP_PASSPHRASE, else a prompt, else the store passphrase)." placeholder:"FILE"`
}

type importOutput struct {
	File     string `json:"file"`
	DryRun   bool   `json:"dry_run"`
	Restored bool   `json:"restored"`
	view.ImportStats
}

func (c *importCmd) Run(ctx context.Context, g *globals) error {
	out := importOutput{File: c.File, DryRun: c.DryRun}
	if _, err := os.Stat(filepath.Join(g.dir(), store.FileName)); errors.Is(err, os.ErrNotExist) {
		// An empty directory: restore the mesh onto this device.
		if c.DryRun {
			return usagef("--dry-run needs an existing store in %s to compare with", g.dir())
		}
		f, err := os.Open(c.File)
		if err != nil {
			return usagef("open backup: %w", err)
		}
		defer f.Close()
		pass, err := g.passphrase(true)
		if err != nil {
			return err
		}
		bpass, err := g.backupSecret(c.BackupPassphraseFile, false)
		if err != nil {
			return err
		}
		var r io.Reader = f
		b := &bar{}
		if fi, err := f.Stat(); err == nil {
			b = g.newBar("restore", "bytes", fi.Size())
			r = &store.ProgressReader{R: f, Total: fi.Size(), Progress: b.set}
		}
		s, st, err := store.Restore(g.dir(), r, bpass, pass, nil)
		b.finish()
		if err != nil {
			return err
		}
		defer s.Close()
		out.Restored, out.ImportStats = true, view.FromImportStats(st)
		return g.print(out, func(w io.Writer) {
			fmt.Fprintf(w, "Restored %d envelopes into %s as new device %s (%s).\n", st.Envelopes, g.dir(), s.Device().Name, s.Device().ID)
		})
	}
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	bpass, err := g.backupSecret(c.BackupPassphraseFile, false)
	if err != nil {
		return err
	}
	st, err := withProgress(ctx, g, s, "import", func() (view.ImportStats, error) { return s.ImportFile(ctx, c.File, bpass, c.DryRun) })
	if err != nil {
		return err
	}
	out.ImportStats = st
	return g.print(out, func(w io.Writer) {
		verb := "Imported"
		if c.DryRun {
			verb = "Would import"
		}
		fmt.Fprintf(w, "%s %s: %d new, %d newer, %d conflicting, %d unchanged", verb, c.File, st.New, st.Newer, st.Conflicting, st.Unchanged)
		if st.Rejected > 0 {
			fmt.Fprintf(w, ", %d rejected", st.Rejected)
		}
		fmt.Fprintln(w)
	})
}
