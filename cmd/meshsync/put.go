package main

import (
	"context"
	"fmt"
	"io"

	"github.com/meshsync/meshsync/store"
)

type putCmd struct {
	Collection string `arg:"" help:"Collection name."`
	Key        string `arg:"" help:"Record key."`
	Value      string `arg:"" help:"JSON value, or - to read it from standard input."`
	Raw        bool   `help:"Store VALUE as raw bytes instead of JSON."`
}

func (c *putCmd) Run(ctx context.Context, g *globals) error {
	value := []byte(c.Value)
	if c.Value == "-" {
		b, err := io.ReadAll(io.LimitReader(g.stdin, store.MaxValueSize+1))
		if err != nil {
			return fmt.Errorf("read standard input: %w", err)
		}
		value = b
	}
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if c.Raw {
		err = s.PutRaw(ctx, c.Collection, c.Key, value)
	} else {
		err = s.Put(ctx, c.Collection, c.Key, value)
	}
	if err != nil {
		return err
	}
	out, err := s.Get(ctx, c.Collection, c.Key)
	if err != nil {
		return err
	}
	return g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "%s/%s written (version %s)\n", c.Collection, c.Key, out.Version.Short())
	})
}
