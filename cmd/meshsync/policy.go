package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/node/view"
	"github.com/meshsync/meshsync/resolve"
)

type policyCmd struct {
	Collection    string        `arg:"" optional:"" help:"Collection whose policy to show or set (default: show all)."`
	Strategy      string        `help:"timestamp, priority, merge or user." enum:",timestamp,priority,merge,user" default:""`
	Fallback      string        `help:"Strategy applied when a user-choice conflict passes its deadline." enum:",timestamp,priority,merge" default:""`
	Deadline      time.Duration `help:"How long a user-choice conflict waits (default 24h)."`
	PriorityField string        `name:"priority-field" help:"Numeric field whose higher value wins (priority)." placeholder:"FIELD"`
	DeviceRank    []string      `name:"device-rank" help:"DEVICE=N: rank of a device for priority (repeatable)." placeholder:"DEVICE=N"`
	Critical      []string      `help:"Field whose concurrent change always asks you (repeatable)." placeholder:"FIELD"`
}

type policyJSON struct {
	Collection string `json:"collection"`
	Explicit   bool   `json:"explicit"`
	resolve.Policy
}

func (c *policyCmd) setting() bool {
	return c.Strategy != "" || c.Fallback != "" || c.Deadline != 0 || c.PriorityField != "" || len(c.DeviceRank) > 0 || len(c.Critical) > 0
}

func (c *policyCmd) Run(ctx context.Context, g *globals) error {
	if c.setting() && c.Collection == "" {
		return usagef("name the collection whose policy to set")
	}
	s, err := g.client(ctx, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if c.setting() {
		p, _, err := policyOf(ctx, s, c.Collection)
		if err != nil {
			return err
		}
		if c.Strategy != "" {
			p.Strategy = resolve.Strategy(c.Strategy)
		}
		if c.Fallback != "" {
			p.Fallback = resolve.Strategy(c.Fallback)
		}
		if c.Deadline != 0 {
			p.Deadline = c.Deadline
		}
		if c.PriorityField != "" {
			p.PriorityField = c.PriorityField
		}
		if len(c.DeviceRank) > 0 {
			p.DeviceRank = map[resolve.DeviceID]int{}
			for _, dr := range c.DeviceRank {
				d, n, ok := strings.Cut(dr, "=")
				rank, err := strconv.Atoi(n)
				if !ok || d == "" || err != nil {
					return usagef("--device-rank %q: want DEVICE=N", dr)
				}
				p.DeviceRank[resolve.DeviceID(d)] = rank
			}
		}
		if len(c.Critical) > 0 {
			p.Critical = c.Critical
		}
		if err := s.SetPolicy(ctx, c.Collection, view.FromPolicy(p, false)); err != nil {
			return err
		}
	}
	var out []policyJSON
	if c.Collection != "" {
		p, explicit, err := policyOf(ctx, s, c.Collection)
		if err != nil {
			return err
		}
		out = append(out, policyJSON{c.Collection, explicit, p})
	} else {
		all, err := s.Policies(ctx)
		if err != nil {
			return err
		}
		for name, d := range all {
			p, err := d.Policy()
			if err != nil {
				return fmt.Errorf("policy of %s: %w", name, err)
			}
			out = append(out, policyJSON{name, true, p.WithDefaults()})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Collection < out[j].Collection })
	}
	wrap := struct {
		Policies []policyJSON `json:"policies"`
	}{Policies: out}
	if wrap.Policies == nil {
		wrap.Policies = []policyJSON{}
	}
	return g.print(wrap, func(w io.Writer) {
		if len(out) == 0 {
			fmt.Fprintln(w, "No collection has a policy of its own; every collection uses timestamp (latest write wins).")
		}
		for _, p := range out {
			fmt.Fprintf(w, "%s: %s", p.Collection, p.Strategy)
			if p.Strategy == resolve.StrategyUser {
				fmt.Fprintf(w, " (after %s: %s)", p.Deadline, p.Fallback)
			}
			if p.PriorityField != "" {
				fmt.Fprintf(w, ", priority field %s", p.PriorityField)
			}
			if len(p.DeviceRank) > 0 {
				fmt.Fprintf(w, ", device ranks %v", p.DeviceRank)
			}
			if len(p.Critical) > 0 {
				fmt.Fprintf(w, ", critical fields %s", strings.Join(p.Critical, ", "))
			}
			if !p.Explicit {
				fmt.Fprint(w, " (default)")
			}
			fmt.Fprintln(w)
		}
	})
}

// policyOf reads a collection's policy (defaults filled in) and whether it was set for it.
func policyOf(ctx context.Context, c *localapi.Client, collection string) (resolve.Policy, bool, error) {
	d, err := c.Policy(ctx, collection)
	if err != nil {
		return resolve.Policy{}, false, err
	}
	p, err := d.Policy()
	if err != nil {
		return resolve.Policy{}, false, fmt.Errorf("policy of %s: %w", collection, err)
	}
	return p, d.Explicit, nil
}
