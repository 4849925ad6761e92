package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node/share"
	"github.com/meshsync/meshsync/store"
)

// Consent returns a consent registry over the node's store, with the node's clock, and the
// device list (removed devices and this one included) as the check that a destination is
// not a device of the mesh. Registries are cheap; take one per operation.
func (n *Node) Consent() (*consent.Registry, error) {
	key, err := n.st.Keys().Subkey(store.PurposeConsent)
	if err != nil {
		return nil, fmt.Errorf("consent key: %w", err)
	}
	return consent.New(n.st, key, &consent.Options{Now: n.cfg.Now, IsMeshDevice: n.isMeshDevice})
}

// isMeshDevice reports whether a peer id is, or ever was, a device of the mesh.
func (n *Node) isMeshDevice(p string) (bool, error) {
	id, err := peer.Decode(p)
	if err != nil {
		return false, nil
	}
	if id == n.id {
		return true, nil
	}
	_, ok := n.devices.Load().byPeer[id]
	return ok, nil
}

// ShareResult says what a share sent.
type ShareResult struct {
	// Grant is the grant the share went under.
	Grant consent.Grant
	// Audit is the audit entry written for it (Verified: the receipt checked out).
	Audit consent.AuditEntry
	// Skipped counts the records of the collection that were not sent because they are not
	// JSON objects.
	Skipped int
}

// Share sends the anonymized documents of collection to dest for purpose over the share
// protocol (/meshsync/share/1.0.0), if and only if an active grant covers exactly that
// collection, purpose and destination. Deny by default: without such a grant nothing is
// dialled or sent, the refusal is written to the audit log, and the error is a
// *consent.DeniedError (or wraps consent.ErrMeshDevice). dest.Addrs may be empty when the
// peerstore already knows where the destination is.
//
// Once any byte of the share has left, the share is audited, receipt or not: an error
// wrapping consent.ErrBadReceipt means the documents were sent but the destination's
// receipt is missing or does not verify (the audit entry says so).
func (n *Node) Share(ctx context.Context, collection, purpose string, dest peer.AddrInfo) (ShareResult, error) {
	reg, err := n.Consent()
	if err != nil {
		return ShareResult{}, err
	}
	g, err := reg.Authorize(collection, purpose, dest.ID.String())
	if err != nil {
		return ShareResult{}, err
	}
	docs, skipped, err := reg.Documents(g)
	if err != nil {
		return ShareResult{}, fmt.Errorf("share %s: %w", collection, err)
	}
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	h := n.hostNow()
	if closed {
		return ShareResult{}, ErrClosed
	}
	if h == nil {
		return ShareResult{}, fmt.Errorf("share %s: %w", collection, ErrNotStarted)
	}
	if len(dest.Addrs) > 0 {
		h.Peerstore().AddAddrs(dest.ID, dest.Addrs, peerstore.TempAddrTTL)
	}
	defer func() {
		if _, member := n.isMember(dest.ID); !member {
			h.Network().ClosePeer(dest.ID) // a destination gets no lasting connection
		}
	}()
	// Connecting sends nothing of the share; a destination that cannot be reached has
	// received nothing, so there is nothing to audit.
	if err := h.Connect(ctx, peer.AddrInfo{ID: dest.ID}); err != nil {
		return ShareResult{}, fmt.Errorf("share %s: connect to %s: %w", collection, dest.ID, err)
	}
	res, serr := share.Send(ctx, h, dest.ID, share.Outgoing{Grant: g.ID, Purpose: g.Purpose,
		Fields: consent.FieldsSent(g.Fields), Docs: docs, StepTimeout: n.cfg.StepTimeout})
	if !res.Started {
		return ShareResult{}, serr
	}
	rcpt := parseReceipt(res.Receipt)
	e, rerr := reg.RecordShare(consent.Sent{Grant: g, Sender: n.id.String(), Docs: docs}, rcpt, peerVerifier(h, dest.ID))
	return ShareResult{Grant: g, Audit: e, Skipped: skipped}, errors.Join(serr, rerr)
}

// parseReceipt decodes a receipt for the audit log: canonical if it can, else as it came
// (RecordShare then records why it does not verify), nil when it is not a receipt at all.
func parseReceipt(b []byte) *consent.SignedReceipt {
	if b == nil {
		return nil
	}
	if sr, err := consent.ParseSignedReceipt(b); err == nil {
		return &sr
	}
	var sr consent.SignedReceipt
	if len(b) > consent.MaxReceiptSize || json.Unmarshal(b, &sr) != nil {
		return nil
	}
	return &sr
}

// peerVerifier checks receipt signatures with the public key of peer p: the one its peer id
// embeds, else the one the secure handshake put in the peerstore.
func peerVerifier(h host.Host, p peer.ID) consent.Verifier {
	pub, err := p.ExtractPublicKey()
	if err != nil || pub == nil {
		pub = h.Peerstore().PubKey(p)
	}
	return func(msg, sig []byte) error {
		if pub == nil {
			return fmt.Errorf("no public key for %s", p)
		}
		ok, err := pub.Verify(msg, sig)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("signature is not by the destination's key")
		}
		return nil
	}
}

// isShareDestination reports whether an active grant names p as its destination: the
// gater lets this node dial such a peer (and only dial it) so that a share can reach it.
func (n *Node) isShareDestination(p peer.ID) bool {
	if p == n.id {
		return false
	}
	reg, err := n.Consent()
	if err != nil {
		return false
	}
	grants, err := reg.Grants()
	if err != nil {
		return false
	}
	now := n.cfg.Now()
	for i := range grants {
		if grants[i].Destination == p.String() && grants[i].Active(now) {
			return true
		}
	}
	return false
}

// refuseOnShareConns wraps a stream handler of the node's own protocols so that it never
// runs for a peer that is not a device of the mesh on a connection this node dialled: such
// a connection exists only to carry a share, and the destination may not open anything on
// it. (Sync and push check membership themselves; pairing serves inbound joiners only.)
func (n *Node) refuseOnShareConns(h network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		if s.Conn().Stat().Direction == network.DirOutbound {
			if _, ok := n.isMember(s.Conn().RemotePeer()); !ok {
				s.Reset()
				return
			}
		}
		h(s)
	}
}

// NewReceiveHost returns a libp2p host for a share destination (`meshsync receive`): the
// given identity, TCP and QUIC, TLS and Noise, the node's resource limits, listening on
// listenAddrs. It has no gater: anyone may connect, and only the handlers registered on it
// (share.NewReceiver) answer.
func NewReceiveHost(key crypto.PrivKey, listenAddrs []string) (host.Host, error) {
	rm, err := newResourceManager()
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	h, err := libp2p.New(append(baseOptions(key, rm), libp2p.ListenAddrStrings(listenAddrs...))...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("receive host on %v: %w", listenAddrs, err)
	}
	return h, nil
}
