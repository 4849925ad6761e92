package main

import (
	"context"
	"fmt"
	"io"
)

type delCmd struct {
	Collection string `arg:"" help:"Collection name."`
	Key        string `arg:"" help:"Record key."`
}

func (c *delCmd) Run(ctx context.Context, g *globals) error {
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Delete(ctx, c.Collection, c.Key); err != nil {
		return err
	}
	out := struct {
		Collection string `json:"collection"`
		Key        string `json:"key"`
		Deleted    bool   `json:"deleted"`
	}{c.Collection, c.Key, true}
	return g.print(out, func(w io.Writer) { fmt.Fprintf(w, "%s/%s deleted\n", c.Collection, c.Key) })
}
