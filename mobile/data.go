package mobile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meshsync/meshsync/node/view"
	"github.com/meshsync/meshsync/store"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/resolve"
)

// maxArgJSON caps the JSON documents an app passes in (policies, consent requests).
// Record values are capped by the store.
const maxArgJSON = 1 << 20

// decodeStrict decodes one JSON object into v, refusing unknown fields and trailing data.
func decodeStrict(what, s string, v any) error {
	if len(s) > maxArgJSON {
		return fmt.Errorf("%s: %w: longer than %d bytes", what, errInvalid, maxArgJSON)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w: %v", what, errInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: %w: trailing data after the JSON object", what, errInvalid)
	}
	return nil
}

// States returns the node's state as JSON: this device (device_id, name, peer_id), the
// overall sync state ("offline", "syncing", "conflict", "up-to-date", "error"), one entry
// per other device in "devices" (status, connected, last_sync, pending_in, pending_out …),
// open "conflicts", "warnings", and the phone side: "running", "stopped", "paused",
// "paused_reason" ("stopped", "not started", "paused by sync policy", "metered network",
// "not charging", "in background", "starting"), "policy", "foreground", "metered",
// "charging", "background_sync" and the last network "error". It works while stopped.
func (m *Node) States() (string, error) { return m.statesJSON(), nil }

func (m *Node) statesJSON() string {
	m.mu.RLock()
	var d statesDoc
	if m.inner != nil {
		d.States = m.inner.States()
	} else {
		d.States = node.States{DeviceID: m.self.deviceID, Name: m.self.name, PeerID: m.self.peerID, Overall: node.StatusOffline}
	}
	if d.Devices == nil {
		d.Devices = []node.DeviceState{}
	}
	run, reason := decide(m.sig)
	switch {
	case m.closed:
		reason = "closed"
	case m.inner == nil:
		reason = reasonStopped
	case !m.want:
		reason = "not started"
	case m.net:
		reason = ""
	case run:
		reason = "starting"
	}
	d.Running, d.Stopped, d.Paused, d.PausedReason = m.net, m.inner == nil || !m.want, !m.net, reason
	d.Policy, d.Foreground, d.Metered, d.Charging, d.BackgroundSync = m.sig.policy, m.sig.foreground, m.sig.metered, m.sig.charging, m.sig.background
	d.Error = m.lastErr
	m.mu.RUnlock()
	s, err := marshal(d)
	if err != nil {
		return `{"error":"encode states"}`
	}
	return s
}

// Put writes a JSON document under (collection, key); connected devices receive it within
// milliseconds. Collections starting with "_" are reserved. Errors: CodeInvalid (not
// JSON, bad names), CodeStopped.
func (m *Node) Put(collection, key, valueJSON string) error {
	return m.with(func(n *node.Node) error {
		if err := n.Put(collection, key, []byte(valueJSON)); err != nil {
			return fmt.Errorf("put %s/%s: %w", collection, key, err)
		}
		return nil
	})
}

// PutBytes writes raw bytes under (collection, key).
func (m *Node) PutBytes(collection, key string, value []byte) error {
	return m.with(func(n *node.Node) error {
		if err := n.PutRaw(collection, key, value); err != nil {
			return fmt.Errorf("put %s/%s: %w", collection, key, err)
		}
		return nil
	})
}

// Get returns the JSON document under (collection, key), as every device resolves it.
// Errors: CodeNotFound (also for a deleted record), CodeInvalid (a PutBytes record: use
// GetBytes).
func (m *Node) Get(collection, key string) (string, error) {
	var out string
	err := m.with(func(n *node.Node) error {
		r, err := n.Get(collection, key)
		if err != nil {
			return fmt.Errorf("get %s/%s: %w", collection, key, err)
		}
		if r.Kind != resolve.KindJSON {
			return fmt.Errorf("get %s/%s: %w: the record holds raw bytes: use GetBytes", collection, key, errInvalid)
		}
		out = string(r.Value)
		return nil
	})
	return out, err
}

// GetBytes returns the value under (collection, key): the raw bytes of a PutBytes record,
// the JSON text of a Put record. Errors: CodeNotFound.
func (m *Node) GetBytes(collection, key string) ([]byte, error) {
	var out []byte
	err := m.with(func(n *node.Node) error {
		r, err := n.Get(collection, key)
		if err != nil {
			return fmt.Errorf("get %s/%s: %w", collection, key, err)
		}
		out = r.Value
		return nil
	})
	return out, err
}

// Delete deletes the record under (collection, key); the delete syncs like a write.
func (m *Node) Delete(collection, key string) error {
	return m.with(func(n *node.Node) error {
		if err := n.Delete(collection, key); err != nil {
			return fmt.Errorf("delete %s/%s: %w", collection, key, err)
		}
		return nil
	})
}

// List returns, as a JSON array, the live records of collection (of every application
// collection when empty) whose keys start with prefix, sorted by collection and key. Each
// element is {"collection", "key", "value" (JSON) or "raw" (base64), "version",
// "versions", "conflict"}.
func (m *Node) List(collection, prefix string) (string, error) {
	var out string
	err := m.with(func(n *node.Node) error {
		recs, err := n.List(collection, prefix)
		if err != nil {
			return fmt.Errorf("list %s: %w", collection, err)
		}
		docs := make([]view.Record, 0, len(recs))
		for i := range recs {
			docs = append(docs, view.FromRecord(&recs[i]))
		}
		out, err = marshal(docs)
		return err
	})
	return out, err
}

// Conflicts returns, as a JSON array, every record with concurrent versions: {"id",
// "collection", "key", "type", "open" (waits for a decision), "deadline", "strategy",
// "value" (what devices read now), "versions": [{"n", "version", "value" | "raw" |
// "deleted"}]}.
func (m *Node) Conflicts() (string, error) {
	var out string
	err := m.with(func(n *node.Node) error {
		cs, err := n.Store().Conflicts().List()
		if err != nil {
			return fmt.Errorf("conflicts: %w", err)
		}
		docs := make([]view.Conflict, 0, len(cs))
		for i := range cs {
			docs = append(docs, view.FromConflict(&cs[i]))
		}
		out, err = marshal(docs)
		return err
	})
	return out, err
}

// ResolveConflict closes the conflict id (its "id", a unique prefix of it, or
// "collection/key") with a new version: the value of version pick (its "n"), or when pick
// is 0 the document valueJSON. expectVersions is the number of versions the app showed
// (0: do not check); when the record holds another number now, nothing is written and the
// error is CodeStale. Errors: CodeNotFound, CodeAmbiguous, CodeStale, CodeInvalid.
func (m *Node) ResolveConflict(id string, pick int, valueJSON string, expectVersions int) error {
	return m.with(func(n *node.Node) error {
		c, err := n.Store().Conflicts().Get(id)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", id, err)
		}
		var value []byte
		if pick == 0 {
			value = []byte(valueJSON)
		}
		if err := n.Store().Conflicts().Resolve(c.ID, pick, value, expectVersions); err != nil {
			return fmt.Errorf("resolve %s: %w", id, err)
		}
		return nil
	})
}

// parsePolicy decodes a policy document.
func parsePolicy(s string) (resolve.Policy, error) {
	var d view.Policy
	if err := decodeStrict("policy", s, &d); err != nil {
		return resolve.Policy{}, err
	}
	p, err := d.Policy()
	if err != nil {
		return resolve.Policy{}, fmt.Errorf("policy: %w: %v", errInvalid, err)
	}
	return p, nil
}

// SetPolicy sets the conflict policy of a collection on every device of the mesh (it is a
// synced record): {"strategy": "timestamp"|"priority"|"merge"|"user", "fallback",
// "deadline_seconds", "priority_field", "device_rank": {device id: rank}, "critical":
// [field paths]}. Errors: CodeInvalid.
func (m *Node) SetPolicy(collection, policyJSON string) error {
	p, err := parsePolicy(policyJSON)
	if err != nil {
		return wrap(err)
	}
	return m.with(func(n *node.Node) error {
		if err := n.Store().Policies().Set(collection, p); err != nil {
			return fmt.Errorf("set policy of %s: %w", collection, err)
		}
		return nil
	})
}

// Policy returns the conflict policy of a collection, defaults filled in, with
// "explicit": true when it was set for that collection.
func (m *Node) Policy(collection string) (string, error) {
	var out string
	err := m.with(func(n *node.Node) error {
		p, explicit, err := n.Store().Policies().Get(collection)
		if err != nil {
			return fmt.Errorf("policy of %s: %w", collection, err)
		}
		out, err = marshal(view.FromPolicy(p, explicit))
		return err
	})
	return out, err
}

// Invite opens an invite valid for expiresSeconds (600 when 0) and returns its code, to
// show as text or a QR code; the other device passes it to Join. One invite is open at a
// time; a code works once. The network must be up. Errors: CodePaused.
func (m *Node) Invite(expiresSeconds int64) (string, error) {
	var code string
	err := m.with(func(n *node.Node) error {
		if !m.net {
			_, reason := decide(m.sig)
			return fmt.Errorf("invite: %w (%s): pairing needs the network", errPaused, reasonOr(reason, "not started"))
		}
		var err error
		code, _, err = n.Invite(time.Duration(max(expiresSeconds, 0)) * time.Second)
		return err
	})
	return code, err
}

// InviteShort opens an invite by short code, for a person to read aloud
// ("4-garden-orbit-pencil"), valid for expiresSeconds (600 when 0, and at most 600) and for
// three wrong tries in all. It returns {"code", "expires", "addrs"} as JSON: the other
// device passes code (and, where the LAN does not let the two find each other, one of
// addrs) to JoinShort. One invite is open at a time. Errors: CodePaused, CodeInvalid.
func (m *Node) InviteShort(expiresSeconds int64) (string, error) {
	var out string
	err := m.with(func(n *node.Node) error {
		if !m.net {
			_, reason := decide(m.sig)
			return fmt.Errorf("invite: %w (%s): pairing needs the network", errPaused, reasonOr(reason, "not started"))
		}
		inv, err := n.InviteShort(time.Duration(max(expiresSeconds, 0)) * time.Second)
		if err != nil {
			return err
		}
		out, err = marshal(inv)
		return err
	})
	return out, err
}

func reasonOr(reason, def string) string {
	if reason == "" {
		return def
	}
	return reason
}

// Devices returns, as a JSON array, the devices of the mesh: {"id", "peer", "name",
// "role", "addrs", "added", "removed", "self"}.
func (m *Node) Devices() (string, error) {
	var out string
	err := m.with(func(n *node.Node) error {
		devs := n.Devices()
		docs := make([]deviceDoc, 0, len(devs))
		for _, d := range devs {
			docs = append(docs, deviceDoc{Device: d, Self: d.ID == n.DeviceID()})
		}
		var err error
		out, err = marshal(docs)
		return err
	})
	return out, err
}

// RemoveDevice removes a device (its "id" in Devices) from the mesh: every device refuses
// it from the moment it learns of the removal. The app asks the person for the passphrase
// again and passes it: an unlocked phone in someone else's hands must not evict the
// owner's other devices. Errors: CodeWrongPassphrase (nothing removed), CodeNotFound,
// CodeInvalid (this device).
func (m *Node) RemoveDevice(id, passphrase string) error {
	return m.with(func(n *node.Node) error { return n.RemoveDeviceConfirmed(id, []byte(passphrase)) })
}

// consentRequestDoc is what RequestConsent takes.
type consentRequestDoc struct {
	App         string              `json:"app"`
	Collection  string              `json:"collection"`
	Purpose     string              `json:"purpose"`
	Destination string              `json:"destination"`
	Fields      []consent.FieldRule `json:"fields"`
	ForSeconds  int64               `json:"for_seconds,omitempty"`
	Note        string              `json:"note,omitempty"`
}

func parseConsentRequest(s string) (consent.RequestSpec, error) {
	var d consentRequestDoc
	if err := decodeStrict("consent request", s, &d); err != nil {
		return consent.RequestSpec{}, err
	}
	if d.ForSeconds < 0 || d.ForSeconds > int64((100*365*24*time.Hour)/time.Second) {
		return consent.RequestSpec{}, fmt.Errorf("consent request: %w: for_seconds out of range", errInvalid)
	}
	return consent.RequestSpec{App: d.App, Collection: d.Collection, Purpose: d.Purpose, Destination: d.Destination,
		Fields: d.Fields, For: time.Duration(d.ForSeconds) * time.Second, Note: d.Note}, nil
}

// RequestConsent records an app's request to share a collection outside the mesh:
// {"app", "collection", "purpose", "destination" (a libp2p peer id), "fields": ["name=drop",
// "email=pseudonymize", "age=generalize:10", …], "for_seconds", "note"}. Nothing is shared
// until the person approves it (`meshsync consent approve ID` or an app's own screen). It
// returns the pending request as JSON ({"id", …, "status": "pending"}). Errors: CodeInvalid.
func (m *Node) RequestConsent(requestJSON string) (string, error) {
	spec, err := parseConsentRequest(requestJSON)
	if err != nil {
		return "", wrap(err)
	}
	var out string
	err = m.with(func(n *node.Node) error {
		reg, err := n.Consent()
		if err != nil {
			return err
		}
		q, err := reg.Request(spec)
		if err != nil {
			return fmt.Errorf("request consent: %w", err)
		}
		out, err = marshal(q)
		return err
	})
	return out, err
}

// CheckConsent reports whether an active grant lets collection be shared for purpose with
// destination (a peer id). A missing, expired or revoked grant is false, not an error.
func (m *Node) CheckConsent(collection, purpose, destination string) (bool, error) {
	ok := false
	err := m.with(func(n *node.Node) error {
		reg, err := n.Consent()
		if err != nil {
			return err
		}
		_, err = reg.Check(collection, purpose, destination)
		var denied *consent.DeniedError
		switch {
		case err == nil:
			ok = true
		case errors.As(err, &denied):
		default:
			return fmt.Errorf("check consent: %w", err)
		}
		return nil
	})
	return ok, err
}

// ExportBackup writes an encrypted backup of every record, the device list and the grants to
// path, under passphrase (the stock `age` tool opens it too), and returns {"envelopes",
// "records", "created"}.
func (m *Node) ExportBackup(path, passphrase string) (string, error) {
	var out string
	err := m.with(func(n *node.Node) error {
		info, err := store.ExportFile(n.Store(), path, []byte(passphrase), nil)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		out, err = marshal(info)
		return err
	})
	return out, err
}

// ImportBackup applies the backup at path like a sync (it never overwrites newer data) and
// returns {"envelopes", "new", "newer", "conflicting", "unchanged", "rejected"}; with
// dryRun it only counts. A truncated or altered file is refused whole.
func (m *Node) ImportBackup(path, passphrase string, dryRun bool) (string, error) {
	var out string
	err := m.with(func(n *node.Node) error {
		st, err := store.ImportFile(n.Store(), path, []byte(passphrase), dryRun)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		out, err = marshal(st)
		return err
	})
	return out, err
}

// Addrs returns, as a JSON array, the addresses the node listens on (empty while the
// network is down), each ending in /p2p/<peer id>.
func (m *Node) Addrs() (string, error) {
	var out string
	err := m.with(func(n *node.Node) error {
		as := []string{}
		for _, a := range n.Addrs() {
			as = append(as, a.String())
		}
		var err error
		out, err = marshal(as)
		return err
	})
	return out, err
}
