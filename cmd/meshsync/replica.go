package main

import "context"

// replicaCmd runs a blind replica: the daemon over a directory made by `meshsync join`
// with an invite from `meshsync pair --replica`.
type replicaCmd struct {
	daemonCmd
}

// Run runs the replica in the foreground until SIGINT or SIGTERM.
func (c *replicaCmd) Run(ctx context.Context, g *globals) error { return c.run(ctx, g, true) }
