package localapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/share"
)

// Consent errors keep their sentinels over the socket too.
func init() {
	codes = append(codes, []struct {
		code string
		err  error
	}{
		{"consent_not_found", consent.ErrNotFound},
		{"bad_rule", consent.ErrBadRule},
		{"bad_grant", consent.ErrBadGrant},
		{"consent_ambiguous", consent.ErrAmbiguous},
		{"mesh_device", consent.ErrMeshDevice},
		{"consent_too_large", consent.ErrTooLarge},
		{"decided", consent.ErrDecided},
		{"no_grant", consent.ErrNoGrant},
		{"wrong_destination", consent.ErrWrongDestination},
		{"wrong_purpose", consent.ErrWrongPurpose},
		{"revoked", consent.ErrRevoked},
		{"expired", consent.ErrExpired},
		{"share_refused", share.ErrRefused}, // before bad_receipt: a refusal also has no receipt
		{"bad_receipt", consent.ErrBadReceipt},
	}...)
}

type approveRequest struct {
	ID      string              `json:"id"`
	Rules   []consent.FieldRule `json:"rules"`
	Expires time.Time           `json:"expires"`
}

type shareRequest struct {
	Collection string        `json:"collection"`
	Purpose    string        `json:"purpose"`
	Dest       peer.AddrInfo `json:"dest"`
	Timeout    time.Duration `json:"timeout"`
}

// ShareReply is the answer of POST /v1/share: what was sent, and the error (a refusal
// with its hint, or an unverified receipt) as text when there was one.
type ShareReply struct {
	Result node.ShareResult `json:"result"`
	Error  string           `json:"error,omitempty"`
	Code   string           `json:"code,omitempty"`
}

// denied adds the fix to a consent refusal, since the client cannot see the struct.
func denied(err error) error {
	var de *consent.DeniedError
	if errors.As(err, &de) {
		return &remoteError{msg: err.Error() + "; " + de.Hint(), sentinel: errors.Unwrap(err)}
	}
	return err
}

// AttachConsent adds the consent routes: grants, requests, the audit log and sharing.
func (s *Server) AttachConsent(n *node.Node) {
	m := s.mux
	reg := func(w http.ResponseWriter) *consent.Registry {
		r, err := n.Consent()
		if err != nil {
			WriteError(w, err)
			return nil
		}
		return r
	}
	m.HandleFunc("POST /v1/consent/grant", func(w http.ResponseWriter, r *http.Request) {
		var spec consent.GrantSpec
		if err := ReadJSON(r, &spec); err != nil {
			WriteError(w, err)
			return
		}
		if rg := reg(w); rg != nil {
			g, err := rg.Grant(spec)
			reply(w, g, err)
		}
	})
	m.HandleFunc("POST /v1/consent/revoke", func(w http.ResponseWriter, r *http.Request) {
		if rg := reg(w); rg != nil {
			g, err := rg.Revoke(r.URL.Query().Get("id"))
			reply(w, g, err)
		}
	})
	m.HandleFunc("GET /v1/consent/grants", func(w http.ResponseWriter, r *http.Request) {
		if rg := reg(w); rg != nil {
			gs, err := rg.Grants()
			reply(w, gs, err)
		}
	})
	m.HandleFunc("GET /v1/consent/pending", func(w http.ResponseWriter, r *http.Request) {
		if rg := reg(w); rg != nil {
			p, err := rg.Pending()
			reply(w, p, err)
		}
	})
	m.HandleFunc("POST /v1/consent/approve", func(w http.ResponseWriter, r *http.Request) {
		var req approveRequest
		if err := ReadJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
		if rg := reg(w); rg != nil {
			g, err := rg.Approve(req.ID, req.Rules, req.Expires)
			reply(w, g, err)
		}
	})
	m.HandleFunc("POST /v1/consent/deny", func(w http.ResponseWriter, r *http.Request) {
		if rg := reg(w); rg != nil {
			q, err := rg.Deny(r.URL.Query().Get("id"))
			reply(w, q, err)
		}
	})
	m.HandleFunc("GET /v1/consent/audit", func(w http.ResponseWriter, r *http.Request) {
		if rg := reg(w); rg != nil {
			a, err := rg.Audit()
			reply(w, a, err)
		}
	})
	m.HandleFunc("POST /v1/share", func(w http.ResponseWriter, r *http.Request) {
		var req shareRequest
		if err := ReadJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
		if req.Timeout <= 0 {
			req.Timeout = 2 * time.Minute
		}
		ctx, cancel := context.WithTimeout(r.Context(), req.Timeout)
		defer cancel()
		res, err := n.Share(ctx, req.Collection, req.Purpose, req.Dest)
		if err != nil && res.Audit.ID == "" {
			WriteError(w, denied(err)) // refused (and audited): nothing left
			return
		}
		out := ShareReply{Result: res}
		if err != nil {
			out.Error, out.Code = err.Error(), codeOf(err)
		}
		WriteJSON(w, out)
	})
}

// ConsentClient is the daemon's consent registry over the control socket. Its methods
// mirror consent.Registry's.
type ConsentClient struct{ c *Client }

// Consent returns the consent half of the client.
func (c *Client) Consent() *ConsentClient { return &ConsentClient{c} }

// Grant records a grant.
func (cc *ConsentClient) Grant(spec consent.GrantSpec) (consent.Grant, error) {
	var g consent.Grant
	err := cc.c.Do(bg, "POST", "/v1/consent/grant", nil, spec, &g)
	return g, err
}

// Revoke revokes a grant by id or unique prefix.
func (cc *ConsentClient) Revoke(id string) (consent.Grant, error) {
	var g consent.Grant
	err := cc.c.Do(bg, "POST", "/v1/consent/revoke", url.Values{"id": {id}}, nil, &g)
	return g, err
}

// Grants lists every grant.
func (cc *ConsentClient) Grants() ([]consent.Grant, error) {
	var out []consent.Grant
	err := cc.c.Do(bg, "GET", "/v1/consent/grants", nil, nil, &out)
	return out, err
}

// Pending lists the requests waiting for a decision.
func (cc *ConsentClient) Pending() ([]consent.Request, error) {
	var out []consent.Request
	err := cc.c.Do(bg, "GET", "/v1/consent/pending", nil, nil, &out)
	return out, err
}

// Approve grants a pending request.
func (cc *ConsentClient) Approve(id string, rules []consent.FieldRule, expires time.Time) (consent.Grant, error) {
	var g consent.Grant
	err := cc.c.Do(bg, "POST", "/v1/consent/approve", nil, approveRequest{id, rules, expires}, &g)
	return g, err
}

// Deny refuses a pending request.
func (cc *ConsentClient) Deny(id string) (consent.Request, error) {
	var q consent.Request
	err := cc.c.Do(bg, "POST", "/v1/consent/deny", url.Values{"id": {id}}, nil, &q)
	return q, err
}

// Audit returns the audit log.
func (cc *ConsentClient) Audit() ([]consent.AuditEntry, error) {
	var out []consent.AuditEntry
	err := cc.c.Do(bg, "GET", "/v1/consent/audit", nil, nil, &out)
	return out, err
}

// Share makes the daemon share a collection; the error mirrors node.Node.Share's.
func (cc *ConsentClient) Share(ctx context.Context, collection, purpose string, dest peer.AddrInfo, timeout time.Duration) (node.ShareResult, error) {
	var out ShareReply
	if err := cc.c.Do(ctx, "POST", "/v1/share", nil, shareRequest{collection, purpose, dest, timeout}, &out); err != nil {
		return node.ShareResult{}, err
	}
	if out.Error != "" {
		return out.Result, errorFromWire(out.Code, out.Error)
	}
	return out.Result, nil
}

// Close is a no-op: the client's connections are released by Client.Close.
func (cc *ConsentClient) Close() error { return nil }
