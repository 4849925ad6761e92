package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/meshsync/meshsync/node/view"
)

type lsCmd struct {
	Collection string `arg:"" optional:"" help:"Collection to list (default: every collection)."`
	Prefix     string `help:"Only keys that start with this prefix." placeholder:"PREFIX"`
}

func (c *lsCmd) Run(ctx context.Context, g *globals) error {
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	recs, err := s.List(ctx, c.Collection, c.Prefix)
	if err != nil {
		return err
	}
	out := struct {
		Records []view.Record `json:"records"`
	}{Records: append(make([]view.Record, 0, len(recs)), recs...)}
	return g.print(out, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, r := range out.Records {
			v := string(r.Value)
			if r.Raw != nil {
				v = fmt.Sprintf("(%d raw bytes)", len(r.Raw))
			}
			if len(v) > 60 {
				v = v[:57] + "..."
			}
			mark := ""
			if r.Conflict != nil {
				mark = "  [conflict]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s%s\n", shown(r.Collection), shown(r.Key), shown(v), mark)
		}
		tw.Flush()
		if len(out.Records) == 0 {
			fmt.Fprintln(w, "(no records)")
		}
	})
}
