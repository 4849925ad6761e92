package main

import (
	"context"
	"fmt"
	"io"
)

type getCmd struct {
	Collection string `arg:"" help:"Collection name."`
	Key        string `arg:"" help:"Record key."`
}

func (c *getCmd) Run(ctx context.Context, g *globals) error {
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	out, err := s.Get(ctx, c.Collection, c.Key)
	if err != nil {
		return err
	}
	return g.print(out, func(w io.Writer) {
		if out.Raw != nil {
			w.Write(out.Raw)
			return
		}
		fmt.Fprintf(w, "%s\n", out.Value)
		if out.Conflict != nil {
			fmt.Fprintf(g.stderr, "note: %s/%s has a %s conflict between %d versions (strategy %s)\n",
				c.Collection, c.Key, out.Conflict.Type, out.Versions, out.Conflict.Strategy)
		}
	})
}
