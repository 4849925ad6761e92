package localapi

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node"
)

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	err := c.do(ctx, "GET", "/status", nil, nil, &out)
	return out, err
}

// Sync asks the node to sync now. With wait it returns, with the status, when every
// device finished a session, or fails once timeout passes (an error wrapping
// context.DeadlineExceeded) or a device is unreachable (node.ErrUnreachable).
func (c *Client) Sync(ctx context.Context, wait bool, timeout time.Duration) (Status, error) {
	var out Status
	q := url.Values{}
	if wait {
		q.Set("wait", "1")
		q.Set("timeout_seconds", fmt.Sprint(seconds(timeout)))
	}
	err := c.do(ctx, "POST", "/sync", q, nil, &out)
	return out, err
}

// Invite opens a pairing invite valid for expires; with replica the invite makes a blind
// replica.
func (c *Client) Invite(ctx context.Context, expires time.Duration, replica bool) (Invite, error) {
	var out Invite
	err := c.do(ctx, "POST", "/invite", nil, inviteRequest{ExpiresSeconds: seconds(expires), Replica: replica}, &out)
	return out, err
}

// InviteShort opens an invite by short code ("4-garden-orbit-pencil") valid for expires
// (at most node.MaxShortInviteExpiry); the answer lists the device's addresses.
func (c *Client) InviteShort(ctx context.Context, expires time.Duration) (Invite, error) {
	var out Invite
	err := c.do(ctx, "POST", "/invite", nil, inviteRequest{ExpiresSeconds: seconds(expires), Short: true}, &out)
	return out, err
}

// InviteState says whether the latest invite is open, how many wrong codes it saw and
// why it closed.
func (c *Client) InviteState(ctx context.Context) (node.InviteState, error) {
	var out node.InviteState
	err := c.do(ctx, "GET", "/invite", nil, nil, &out)
	return out, err
}

// Devices lists the mesh's devices, removed ones included.
func (c *Client) Devices(ctx context.Context) ([]node.Device, error) {
	var out []node.Device
	err := c.do(ctx, "GET", "/devices", nil, nil, &out)
	return out, err
}

// RemoveDevice removes a device from the mesh once the server has checked pass against
// its store (store.ErrWrongPassphrase otherwise).
func (c *Client) RemoveDevice(ctx context.Context, id string, pass []byte) error {
	return c.do(ctx, "DELETE", "/device", nil, removeRequest{ID: id, Passphrase: pass}, nil)
}

// UI returns the address of the daemon's web page with a new one-time login token in it.
// A server without a web page (no daemon, a blind replica) answers ErrBadRequest; a
// daemon of an older meshsync, ErrOldDaemon.
func (c *Client) UI(ctx context.Context) (UI, error) {
	var out UI
	err := c.do(ctx, "POST", "/ui", nil, nil, &out)
	if errors.Is(err, errNoRoute) {
		err = fmt.Errorf("%w: it has no web page; stop it and start it again with this meshsync", ErrOldDaemon)
	}
	return out, err
}

// Share shares a collection with dest for purpose, as a grant allows it, giving up after
// timeout. The error mirrors node.Node.Share's: a refusal is a consent error and the
// result is empty; once something was sent the result says what, and an error may
// still come with it (consent.ErrBadReceipt, share.ErrRefused).
func (c *Client) Share(ctx context.Context, collection, purpose string, dest peer.AddrInfo, timeout time.Duration) (node.ShareResult, error) {
	var out ShareReply
	req := shareRequest{Collection: collection, Purpose: purpose, Dest: dest, TimeoutSeconds: seconds(timeout)}
	if err := c.do(ctx, "POST", "/share", nil, req, &out); err != nil {
		return node.ShareResult{}, err
	}
	res := node.ShareResult{Grant: out.Result.Grant, Audit: out.Result.Audit, Skipped: out.Result.Skipped}
	if out.Error != "" {
		return res, errorFromWire(errorBody{Error: out.Error, Codes: out.Codes})
	}
	return res, nil
}

// ConsentClient is the consent registry over the local API. Its methods mirror
// consent.Registry's.
type ConsentClient struct{ c *Client }

// Consent returns the consent half of the client.
func (c *Client) Consent() ConsentClient { return ConsentClient{c} }

// Grant records a grant.
func (cc ConsentClient) Grant(ctx context.Context, spec consent.GrantSpec) (consent.Grant, error) {
	var g consent.Grant
	err := cc.c.do(ctx, "POST", "/consent/grant", nil, spec, &g)
	return g, err
}

// Revoke revokes a grant by id or unique prefix.
func (cc ConsentClient) Revoke(ctx context.Context, id string) (consent.Grant, error) {
	var g consent.Grant
	err := cc.c.do(ctx, "POST", "/consent/revoke", url.Values{"id": {id}}, nil, &g)
	return g, err
}

// Grants lists every grant.
func (cc ConsentClient) Grants(ctx context.Context) ([]consent.Grant, error) {
	var out []consent.Grant
	err := cc.c.do(ctx, "GET", "/consent/grants", nil, nil, &out)
	return out, err
}

// Pending lists the requests waiting for a decision.
func (cc ConsentClient) Pending(ctx context.Context) ([]consent.Request, error) {
	var out []consent.Request
	err := cc.c.do(ctx, "GET", "/consent/pending", nil, nil, &out)
	return out, err
}

// Approve grants a pending request; nil rules and a zero expiry keep what it asked.
func (cc ConsentClient) Approve(ctx context.Context, id string, rules []consent.FieldRule, expires time.Time) (consent.Grant, error) {
	var g consent.Grant
	err := cc.c.do(ctx, "POST", "/consent/approve", nil, approveRequest{id, rules, expires}, &g)
	return g, err
}

// Deny refuses a pending request.
func (cc ConsentClient) Deny(ctx context.Context, id string) (consent.Request, error) {
	var q consent.Request
	err := cc.c.do(ctx, "POST", "/consent/deny", url.Values{"id": {id}}, nil, &q)
	return q, err
}

// Audit returns the audit log, oldest first.
func (cc ConsentClient) Audit(ctx context.Context) ([]consent.AuditEntry, error) {
	var out []consent.AuditEntry
	err := cc.c.do(ctx, "GET", "/consent/audit", nil, nil, &out)
	return out, err
}
