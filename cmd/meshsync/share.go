package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node/share"
)

type shareCmd struct {
	Collection string        `arg:"" help:"Collection to share, as a grant allows it."`
	To         string        `required:"" help:"Destination peer id, or its address ending in /p2p/PEER." placeholder:"PEER"`
	Purpose    string        `required:"" help:"Purpose named by the grant." placeholder:"P"`
	Addr       []string      `sep:"none" help:"Where to reach the destination (repeatable), when --to is a bare peer id." placeholder:"MULTIADDR"`
	Timeout    time.Duration `default:"2m" help:"Give up after this long."`
}

type shareJSON struct {
	Grant        string   `json:"grant"`
	Collection   string   `json:"collection"`
	Purpose      string   `json:"purpose"`
	Destination  string   `json:"destination"`
	Count        int      `json:"count"`
	Skipped      int      `json:"skipped"`
	Fields       []string `json:"fields"`
	Verified     bool     `json:"verified"`
	ReceiptError string   `json:"receipt_error,omitempty"`
	Audit        string   `json:"audit_id"`
}

// Run checks the grant first, so that a refused share touches no network: the node then
// only writes the refusal to the audit log.
func (c *shareCmd) Run(ctx context.Context, g *globals) error {
	dest, err := parsePeer(c.To)
	if err != nil {
		return err
	}
	for _, s := range c.Addr {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return usagef("--addr %q: %v", s, err)
		}
		if id, err := peer.IDFromP2PAddr(a); err == nil && id != dest.ID {
			return usagef("--addr %q names another peer than --to", s)
		}
		dest.Addrs = append(dest.Addrs, a)
	}
	// Without a daemon, a node in this process starts its network only if a grant allows
	// the share, on random ports: a share never takes the daemon's port.
	cl, err := g.client(ctx, &netFlags{Listen: shareListen, NoMDNS: true})
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := cl.Share(ctx, c.Collection, c.Purpose, dest, c.Timeout)
	if res.Audit.ID == "" {
		return err // refused (audited), or nothing left
	}
	out := shareJSON{Grant: res.Grant.ID, Collection: c.Collection, Purpose: c.Purpose, Destination: dest.ID.String(),
		Count: res.Audit.Count, Skipped: res.Skipped, Fields: res.Audit.Fields, Verified: res.Audit.Verified,
		ReceiptError: res.Audit.ReceiptError, Audit: res.Audit.ID}
	if out.Fields == nil {
		out.Fields = []string{}
	}
	if perr := g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "Shared %d documents of %s with %s for %q under grant %s.\n", out.Count, out.Collection, out.Destination, out.Purpose, idPrefix(out.Grant))
		if out.Skipped > 0 {
			fmt.Fprintf(w, "%d records were not sent: they are not JSON objects.\n", out.Skipped)
		}
		if out.Verified {
			fmt.Fprintln(w, "The destination's signed receipt verifies; see `meshsync audit`.")
		} else {
			fmt.Fprintf(w, "The destination's receipt does not verify: %s\n", shown(out.ReceiptError))
		}
	}); perr != nil {
		return perr
	}
	if errors.Is(err, share.ErrRefused) {
		return fmt.Errorf("the destination refused the share (recorded in `meshsync audit`): %w", err)
	}
	if errors.Is(err, consent.ErrBadReceipt) {
		return fmt.Errorf("the documents were sent but the receipt does not verify (recorded in `meshsync audit`): %w", err)
	}
	return err
}

// shareListen are the addresses of a node started for one share: random ports.
var shareListen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/tcp/0", "/ip6/::/udp/0/quic-v1"}
