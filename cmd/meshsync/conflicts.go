package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/meshsync/meshsync/node/view"
)

type conflictsCmd struct {
	Ls      conflictsLsCmd      `cmd:"" default:"1" help:"List records with concurrent versions (the default)."`
	Show    conflictsShowCmd    `cmd:"" help:"Show every version of one conflict."`
	Resolve conflictsResolveCmd `cmd:"" help:"Close a conflict: keep one version, or write a new value."`
	History conflictsHistoryCmd `cmd:"" help:"Show the losing values of resolved conflicts (kept 30 days)."`
}

type conflictsLsCmd struct{}

func (c *conflictsLsCmd) Run(ctx context.Context, g *globals) error {
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	cs, err := s.Conflicts(ctx)
	if err != nil {
		return err
	}
	out := struct {
		Conflicts []view.Conflict `json:"conflicts"`
	}{Conflicts: append([]view.Conflict{}, cs...)}
	return g.print(out, func(w io.Writer) {
		if len(cs) == 0 {
			fmt.Fprintln(w, "No conflicts.")
			return
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECORD\tTYPE\tVERSIONS\tSTATE")
		for _, c := range out.Conflicts {
			state := "resolved by " + c.Strategy
			if c.Open {
				state = "waiting for you (until " + c.Deadline.Local().Format("2006-01-02 15:04") + ", then " + c.Strategy + ")"
			}
			fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%d\t%s\n", c.ID, shown(c.Collection), shown(c.Key), c.Type, len(c.Versions), state)
		}
		tw.Flush()
		fmt.Fprintln(w, "\nInspect one with `meshsync conflicts show ID`; close it with `meshsync conflicts resolve ID --pick N`.")
	})
}

type conflictsShowCmd struct {
	ID string `arg:"" help:"Conflict id (a unique prefix will do), or COLLECTION/KEY."`
}

func (c *conflictsShowCmd) Run(ctx context.Context, g *globals) error {
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	out, err := s.Conflict(ctx, c.ID)
	if err != nil {
		return err
	}
	return g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "%s/%s: %s conflict, %d versions\n", shown(out.Collection), shown(out.Key), out.Type, len(out.Versions))
		for _, v := range out.Versions {
			fmt.Fprintf(w, "  [%d] device %s at %s: %s\n", v.N, shown(string(v.Version.Device)), v.Version.Time.Local().Format(time.RFC3339), shown(v.Text()))
		}
		value := shown(string(out.Value))
		if out.Deleted {
			value = "(deleted)"
		}
		if out.Open {
			fmt.Fprintf(w, "Waiting for your choice until %s; meanwhile, and after that, %s gives %s\n", out.Deadline.Local().Format(time.RFC3339), out.Strategy, value)
		} else {
			fmt.Fprintf(w, "Resolved by %s: every device reads %s\n", out.Strategy, value)
		}
		fmt.Fprintf(w, "Keep one: meshsync conflicts resolve %s --pick N\n", out.ID)
	})
}

type conflictsResolveCmd struct {
	ID    string `arg:"" help:"Conflict id (a unique prefix will do), or COLLECTION/KEY."`
	Pick  int    `help:"Keep version N (as numbered by show)." xor:"choice" required:""`
	Value string `help:"Write this JSON value instead." xor:"choice" required:""`
}

func (c *conflictsResolveCmd) Run(ctx context.Context, g *globals) error {
	if c.Pick < 0 {
		return usagef("--pick must be 1 or more")
	}
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	ci, err := s.Conflict(ctx, c.ID)
	if err != nil {
		return err
	}
	var value []byte
	if c.Pick == 0 {
		value = []byte(c.Value)
	}
	if err := s.ResolveConflict(ctx, c.ID, c.Pick, value, len(ci.Versions)); err != nil {
		return err
	}
	out, err := s.Get(ctx, ci.Collection, ci.Key)
	if err != nil {
		out = view.Record{Collection: ci.Collection, Key: ci.Key}
	}
	return g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "%s/%s resolved; the other versions are in `meshsync conflicts history`.\n", shown(ci.Collection), shown(ci.Key))
	})
}

type conflictsHistoryCmd struct {
	Collection string `arg:"" optional:"" help:"Only this collection."`
	Key        string `arg:"" optional:"" help:"Only this key."`
}

func (c *conflictsHistoryCmd) Run(ctx context.Context, g *globals) error {
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	h, err := s.History(ctx, c.Collection, c.Key)
	if err != nil {
		return err
	}
	out := struct {
		History []view.HistoryEntry `json:"history"`
	}{History: h}
	if out.History == nil {
		out.History = []view.HistoryEntry{}
	}
	return g.print(out, func(w io.Writer) {
		if len(h) == 0 {
			fmt.Fprintln(w, "No resolved conflicts in the history.")
			return
		}
		for _, e := range h {
			v := string(e.Value)
			if e.Deleted {
				v = "(deleted)"
			} else if e.Raw != nil {
				v = fmt.Sprintf("(%d raw bytes)", len(e.Raw))
			}
			fmt.Fprintf(w, "%s  %s/%s lost %s (written by %s at %s)\n", e.ResolvedAt.Local().Format("2006-01-02 15:04"), shown(e.Collection), shown(e.Key), shown(v), shown(string(e.Device)), e.Time.Local().Format(time.RFC3339))
		}
	})
}
