package main

import (
	"context"
	"fmt"
	"io"

	"github.com/meshsync/meshsync/node/view"
	"github.com/meshsync/meshsync/store"
)

type verifyCmd struct{}

type verifyOutput struct {
	OK bool `json:"ok"`
	view.Report
}

func (c *verifyCmd) Run(ctx context.Context, g *globals) error {
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.Verify(ctx)
	if err != nil {
		return err
	}
	out := verifyOutput{OK: rep.OK(), Report: rep}
	if err := g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "%d records, %d envelopes checked\n", rep.Records, rep.Envelopes)
		for _, p := range rep.Problems {
			fmt.Fprintln(w, "problem:", p)
		}
		if rep.OK() {
			fmt.Fprintln(w, "store is consistent")
		}
	}); err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("verify found %d problems: %w", len(rep.Problems), store.ErrCorrupt)
	}
	return nil
}
