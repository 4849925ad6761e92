package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/share"
)

// Files `meshsync receive` writes in its --out directory.
const (
	receivedFile = "received.jsonl" // one line per document received
	receiptsFile = "receipts.jsonl" // one line per share: the signed receipt sent back
	receiveKey   = "receive.key"    // the destination's identity (libp2p private key)
)

type receiveCmd struct {
	Out      string   `default:"received" help:"Directory for what arrives (received.jsonl, receipts.jsonl) and the destination's key." placeholder:"DIR"`
	Key      string   `help:"The destination's identity key file (default DIR/receive.key, created when missing)." placeholder:"FILE"`
	Listen   []string `sep:"," default:"/ip4/0.0.0.0/tcp/0,/ip4/0.0.0.0/udp/0/quic-v1" help:"Multiaddrs to listen on." placeholder:"MULTIADDR"`
	Once     bool     `help:"Exit after the first share."`
	PeerFile string   `name:"peer-file" help:"Once listening, write {\"peer_id\",\"addr\",\"addrs\"} as JSON to this file (for scripts)." placeholder:"FILE"`

	Allow         []string `sep:"none" help:"Peer id of a device that may deliver shares (repeatable; \"meshsync --json status\" on it shows its peer_id). Without it every share is refused." placeholder:"PEER"`
	MaxShareBytes byteSize `name:"max-share-bytes" default:"16MiB" help:"Refuse a share larger than this (B, KiB, MiB, GiB)." placeholder:"SIZE"`
	MaxTotalBytes byteSize `name:"max-total-bytes" default:"1GiB" help:"Refuse shares once this much has been kept in this run." placeholder:"SIZE"`
}

// peerFile is what --peer-file holds: the peer id, and the addresses to give
// `meshsync share --to` (addr is the first one).
type peerFile struct {
	PeerID string   `json:"peer_id"`
	Addr   string   `json:"addr"`
	Addrs  []string `json:"addrs"`
}

// receivedLine is one line of received.jsonl: a document exactly as it arrived, and what
// it came under.
type receivedLine struct {
	Received time.Time       `json:"received"`
	Sender   string          `json:"sender"`
	Grant    string          `json:"grant"`
	Purpose  string          `json:"purpose"`
	Doc      json.RawMessage `json:"doc"`
}

// receiveEvent is what --json prints: the listening line, then one line per share.
type receiveEvent struct {
	Event    string   `json:"event"`
	PeerID   string   `json:"peer_id"`
	Addrs    []string `json:"addrs,omitempty"`
	Sender   string   `json:"sender,omitempty"`
	Grant    string   `json:"grant,omitempty"`
	Purpose  string   `json:"purpose,omitempty"`
	Count    int      `json:"count,omitempty"`
	Fields   []string `json:"fields,omitempty"`
	Received string   `json:"received_file,omitempty"`
	Allowed  []string `json:"allowed,omitempty"` // listening: the senders that may deliver
	Reason   string   `json:"reason,omitempty"`  // refused: why
}

// allowed parses --allow. Without it no sender is allowed: a destination outside the mesh
// cannot see the mesh's grants, so it cannot tell a sender holding one from a stranger
// who claims a grant id, and accepting anyone would let any peer fill its disk.
func (c *receiveCmd) allowed() (map[peer.ID]bool, error) {
	ok := map[peer.ID]bool{}
	for _, a := range c.Allow {
		p, err := peer.Decode(strings.TrimSpace(a))
		if err != nil {
			return nil, usagef("--allow %q: not a peer id (give the sending device's peer_id from `meshsync --json status`)", a)
		}
		ok[p] = true
	}
	if c.MaxShareBytes <= 0 || c.MaxTotalBytes <= 0 {
		return nil, usagef("--max-share-bytes and --max-total-bytes must be positive")
	}
	return ok, nil
}

func (c *receiveCmd) Run(ctx context.Context, g *globals) error {
	allowed, err := c.allowed()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Out, 0o700); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	keyFile := c.Key
	if keyFile == "" {
		keyFile = filepath.Join(c.Out, receiveKey)
	}
	key, err := loadOrCreateKey(keyFile)
	if err != nil {
		return err
	}
	h, err := node.NewReceiveHost(key, c.Listen)
	if err != nil {
		return usageError{err}
	}
	defer h.Close()

	var (
		mu      sync.Mutex
		outErr  error
		senders []peer.ID
	)
	got := make(chan struct{}, 1)
	onShare := func(s share.Share) error {
		mu.Lock()
		defer mu.Unlock()
		if err := c.keep(s); err != nil {
			outErr = err
			return err
		}
		senders = append(senders, s.Sender)
		ev := receiveEvent{Event: "share", PeerID: h.ID().String(), Sender: s.Sender.String(), Grant: s.Header.Grant,
			Purpose: s.Header.Purpose, Count: len(s.Docs), Fields: s.Header.Fields, Received: filepath.Join(c.Out, receivedFile)}
		g.print(ev, func(w io.Writer) {
			fmt.Fprintf(w, "Received %d documents from %s for %q under grant %s (fields: %s); written to %s\n",
				ev.Count, ev.Sender, ev.Purpose, shown(ev.Grant), shown(strings.Join(ev.Fields, ", ")), ev.Received)
		})
		select {
		case got <- struct{}{}:
		default:
		}
		return nil
	}
	allow := func(p peer.ID) error {
		if !allowed[p] {
			return fmt.Errorf("sender %s is not allowed by this destination: it takes shares only from the peers given with meshsync receive --allow", p)
		}
		return nil
	}
	onRefuse := func(p peer.ID, err error) {
		mu.Lock()
		defer mu.Unlock()
		ev := receiveEvent{Event: "refused", PeerID: h.ID().String(), Sender: p.String(), Reason: strings.TrimPrefix(err.Error(), share.ErrRefused.Error()+": ")}
		g.print(ev, func(w io.Writer) {
			fmt.Fprintf(w, "Refused a share from %s: %s\n", ev.Sender, shown(ev.Reason))
			if !allowed[p] {
				fmt.Fprintf(w, "To take shares from it, run meshsync receive again with --allow %s\n", ev.Sender)
			}
		})
	}
	r := share.NewReceiver(h, &share.Options{OnShare: onShare, Allow: allow, OnRefuse: onRefuse,
		MaxBytes: int(c.MaxShareBytes), MaxTotalBytes: int64(c.MaxTotalBytes)})
	defer r.Close()

	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	var as []string
	for _, a := range addrs {
		as = append(as, a.String())
	}
	var allowList []string
	for p := range allowed {
		allowList = append(allowList, p.String())
	}
	slices.Sort(allowList)
	if err := g.print(receiveEvent{Event: "listening", PeerID: h.ID().String(), Addrs: as, Allowed: allowList}, func(w io.Writer) {
		fmt.Fprintln(w, h.ID())
		for _, a := range as {
			fmt.Fprintf(w, "  listening on %s\n", a)
		}
		if len(allowList) == 0 {
			fmt.Fprintln(w, "No sender is allowed yet: every share is refused. Name the sending device with --allow PEER (its peer_id in `meshsync --json status`).")
		} else {
			fmt.Fprintf(w, "Shares are taken from %s only, up to %s each and %s in all.\n", strings.Join(allowList, ", "), c.MaxShareBytes, c.MaxTotalBytes)
		}
		fmt.Fprintf(w, "Grant it on a device of your mesh: meshsync consent grant COLLECTION --purpose P --to %s --field NAME=keep ...\n", h.ID())
		fmt.Fprintf(w, "Shares are written to %s; stop with Ctrl-C.\n", filepath.Join(c.Out, receivedFile))
	}); err != nil {
		return err
	}
	if c.PeerFile != "" && len(as) > 0 {
		b, _ := json.Marshal(peerFile{PeerID: h.ID().String(), Addr: as[0], Addrs: as})
		if err := writeFileAtomic(c.PeerFile, append(b, '\n')); err != nil {
			return err
		}
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-got:
		}
		mu.Lock()
		err := outErr
		mu.Unlock()
		if err != nil {
			return err
		}
		if c.Once {
			break
		}
	}
	// Let the share finish (its receipt goes out) and the sender hang up, then exit.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r.Shutdown(sctx)
	for _, p := range senders {
		for sctx.Err() == nil && h.Network().Connectedness(p) == network.Connected {
			select {
			case <-sctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// keep appends the documents of a share to received.jsonl and its receipt to
// receipts.jsonl, synced to disk before the receipt goes back.
func (c *receiveCmd) keep(s share.Share) error {
	now := time.Now().UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one line each; documents kept byte for byte (no HTML escaping)
	enc.SetEscapeHTML(false)
	for _, d := range s.Docs {
		if err := enc.Encode(receivedLine{Received: now, Sender: s.Sender.String(), Grant: s.Header.Grant, Purpose: s.Header.Purpose, Doc: d}); err != nil {
			return fmt.Errorf("receive: encode document: %w", err)
		}
	}
	if err := appendSync(filepath.Join(c.Out, receivedFile), buf.Bytes()); err != nil {
		return err
	}
	rb, err := s.Receipt.Marshal()
	if err != nil {
		return err
	}
	return appendSync(filepath.Join(c.Out, receiptsFile), append(rb, '\n'))
}

func appendSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("receive: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("receive: sync %s: %w", path, err)
	}
	return f.Close()
}

// writeFileAtomic writes a file whole or not at all, so that a script polling for it
// never reads half of it.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	return os.Rename(tmp, path)
}

// loadOrCreateKey reads the destination's libp2p identity, or makes a new Ed25519 one, so
// that its peer id (what grants name) stays the same across runs.
func loadOrCreateKey(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("receive: key file %s: %w: remove it to make a new identity (grants to the old one stop working)", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("receive: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("receive: write key: %w", err)
	}
	return k, f.Close()
}
