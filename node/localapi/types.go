package localapi

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// The JSON of the API, version 2 (the Prefix of every route). Records, conflicts and
// policies travel in the forms of package view; the types below are the rest. Fields may
// be added within a version, none renamed or removed. Durations are in seconds.

// Prefix starts the path of every route: the version of the API.
const Prefix = "/v2"

// Hello is the answer of GET /v2/ping: who serves the API.
type Hello struct {
	// PID is the serving process.
	PID int `json:"pid"`
	// Device is the device whose store is served.
	Device store.DeviceInfo `json:"device"`
	// Daemon is false when the server lives inside the client's own process, for one
	// command: its node's network is up only while a route needs it.
	Daemon bool `json:"daemon"`
}

// Status is the answer of GET /v2/status: this device, every other device with its sync
// state, and health warnings. Its JSON is a stable contract (`meshsync status --json`).
type Status struct {
	Device    store.DeviceInfo `json:"device"`
	PeerID    string           `json:"peer_id"`
	Addrs     []string         `json:"addrs"`
	Daemon    bool             `json:"daemon"`
	PID       int              `json:"pid,omitempty"`
	Overall   node.Status      `json:"overall"`
	Devices   []DeviceStatus   `json:"devices"`
	Conflicts int              `json:"conflicts"`
	ClockSkew float64          `json:"clock_skew_seconds"`
	Warnings  []string         `json:"warnings"`
	// Scope lists the collections this device holds (empty: all).
	Scope []string `json:"scope"`
}

// DeviceStatus is one other device in Status.
type DeviceStatus struct {
	node.DeviceState
	Role    string `json:"role"`
	Removed bool   `json:"removed,omitempty"`
	// Scope lists the collections the device holds, as its record says (empty: all).
	Scope []string `json:"scope"`
}

// Invite is the answer of POST /v2/invite: a pairing invite.
type Invite struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
	// Addrs are the inviting device's addresses with its peer id (node.InviteAddrs):
	// what `join CODE --peer ADDR` takes where discovery does not find it.
	Addrs []string `json:"addrs,omitempty"`
}

// UI is the answer of POST /v2/ui: the daemon's web page, with a one-time login token
// in the URL.
type UI struct {
	URL string `json:"url"`
}

// Event is one line of GET /v2/events: a sync-state change or a record change.
type Event struct {
	Time   time.Time        `json:"time"`
	Type   string           `json:"type"` // "state", "record" or "invite"
	State  *node.StateEvent `json:"state,omitempty"`
	Record *RecordEvent     `json:"record,omitempty"`
	// Invite is the state of this device's invite after it changed: opened, a wrong code
	// tried, used, or closed after too many wrong codes.
	Invite *node.InviteState `json:"invite,omitempty"`
}

// RecordEvent is a record change in the event stream.
type RecordEvent struct {
	Collection string `json:"collection"`
	Key        string `json:"key"`
	Deleted    bool   `json:"deleted"`
	Local      bool   `json:"local"`
	Conflict   bool   `json:"conflict"`
}

// ShareResult is what a share sent (node.ShareResult).
type ShareResult struct {
	Grant   consent.Grant      `json:"grant"`
	Audit   consent.AuditEntry `json:"audit"`
	Skipped int                `json:"skipped"`
}

// ShareReply is the answer of POST /v2/share once something was sent: the result, and
// the error that came with it (an unverified receipt, a refusal by the destination).
type ShareReply struct {
	Result ShareResult `json:"result"`
	Error  string      `json:"error,omitempty"`
	Codes  []string    `json:"codes,omitempty"`
}

// Requests.

type resolveRequest struct {
	// ID names the conflict as GET /v2/conflict does: an id prefix or "collection/key".
	ID     string `json:"id"`
	Pick   int    `json:"pick"`
	Value  []byte `json:"value,omitempty"`
	Expect int    `json:"expect"`
}

type exportRequest struct {
	Path       string `json:"path"`
	Passphrase []byte `json:"passphrase"`
}

type importRequest struct {
	Path       string `json:"path"`
	Passphrase []byte `json:"passphrase"`
	DryRun     bool   `json:"dry_run"`
}

type passwdRequest struct {
	Old []byte `json:"old"`
	New []byte `json:"new"`
}

type inviteRequest struct {
	ExpiresSeconds float64 `json:"expires_seconds"`
	Replica        bool    `json:"replica,omitempty"`
	Short          bool    `json:"short,omitempty"`
}

// removeRequest asks to remove a device; the passphrase confirms that the owner asks.
type removeRequest struct {
	ID         string `json:"id"`
	Passphrase []byte `json:"passphrase"`
}

type approveRequest struct {
	ID      string              `json:"id"`
	Rules   []consent.FieldRule `json:"rules"`
	Expires time.Time           `json:"expires"`
}

type shareRequest struct {
	Collection     string        `json:"collection"`
	Purpose        string        `json:"purpose"`
	Dest           peer.AddrInfo `json:"dest"`
	TimeoutSeconds float64       `json:"timeout_seconds,omitempty"`
}

// seconds is d in seconds, as durations travel.
func seconds(d time.Duration) float64 { return d.Seconds() }

// duration is s seconds as a duration, def when s is not positive.
func duration(s float64, def time.Duration) time.Duration {
	if s <= 0 || s > float64(1<<62)/float64(time.Second) {
		return def
	}
	return time.Duration(s * float64(time.Second))
}

// Progress is an export or import under way (GET /progress): Done of Total Unit
// ("envelopes" for an export, "bytes" of the file for an import) since Started.
type Progress struct {
	Op      string    `json:"op"` // "export" or "import"
	Unit    string    `json:"unit"`
	Done    int64     `json:"done"`
	Total   int64     `json:"total"`
	Started time.Time `json:"started"`
}

// ScopeView is a device's scope: the collections it holds (All: every one).
type ScopeView struct {
	Collections []string `json:"collections"`
	All         bool     `json:"all"`
}

// ScopeRequest sets the scope: the collections to hold (none: all). DryRun only counts
// what narrowing would drop.
type ScopeRequest struct {
	Collections []string `json:"collections"`
	DryRun      bool     `json:"dry_run,omitempty"`
	// Force narrows even over writes made here that no other device is known to hold
	// (they are lost); without it such a narrowing fails with store.ErrUnsent.
	Force bool `json:"force,omitempty"`
}

// ScopeResult is the scope after a change, whether it widened (the peers send the
// collections now held) and how many records narrowing dropped here (or would, DryRun).
type ScopeResult struct {
	ScopeView
	Widened bool `json:"widened"`
	Dropped int  `json:"dropped"`
	// Unsent counts, of the records dropped, those holding a write made here that no
	// other device is known to hold (store.ScopeChange.Unsent).
	Unsent int  `json:"unsent"`
	DryRun bool `json:"dry_run,omitempty"`
}
