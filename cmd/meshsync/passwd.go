package main

import (
	"context"
	"fmt"
	"io"
)

type passwdCmd struct {
	NewPassphraseFile string `name:"new-passphrase-file" help:"Read the new passphrase from this file (else MESHSYNC_NEW_PASSPHRASE, else a prompt)." placeholder:"FILE"`
}

func (c *passwdCmd) Run(ctx context.Context, g *globals) error {
	old, err := g.passphrase(false)
	if err != nil {
		return err
	}
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	next, err := g.secret("MESHSYNC_NEW_PASSPHRASE", c.NewPassphraseFile, "New passphrase", true)
	if err != nil {
		return err
	}
	if err := s.ChangePassphrase(ctx, old, next); err != nil {
		return err
	}
	return g.print(map[string]bool{"changed": true}, func(w io.Writer) {
		fmt.Fprintln(w, "Passphrase changed. Other devices keep their own passphrases.")
	})
}
