package localapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/view"
	"github.com/meshsync/meshsync/store"
)

// route is one endpoint: a method and a path under Prefix, and either a call whose result
// is answered as JSON or a stream that writes its own answer.
type route struct {
	method, path string
	call         func(*Server, *http.Request) (any, error)
	stream       func(*Server, http.ResponseWriter, *http.Request)
}

// routes is the whole API; doc.go lists it for callers.
var routes = []route{
	{method: "GET", path: "/ping", call: (*Server).ping},

	// records
	{method: "PUT", path: "/record", call: (*Server).putRecord},
	{method: "GET", path: "/record", call: (*Server).getRecord},
	{method: "DELETE", path: "/record", call: (*Server).deleteRecord},
	{method: "GET", path: "/records", call: (*Server).listRecords},

	// conflicts and policies
	{method: "GET", path: "/conflicts", call: (*Server).conflicts},
	{method: "GET", path: "/conflict", call: (*Server).conflict},
	{method: "POST", path: "/conflict/resolve", call: (*Server).resolveConflict},
	{method: "GET", path: "/history", call: (*Server).history},
	{method: "GET", path: "/policy", call: (*Server).policy},
	{method: "PUT", path: "/policy", call: (*Server).setPolicy},
	{method: "GET", path: "/policies", call: (*Server).policies},

	// scope
	{method: "GET", path: "/scope", call: (*Server).scope},
	{method: "PUT", path: "/scope", call: (*Server).setScope},

	// the store as a whole
	{method: "POST", path: "/verify", call: (*Server).verify},
	{method: "POST", path: "/export", call: (*Server).export},
	{method: "POST", path: "/import", call: (*Server).importBackup},
	{method: "POST", path: "/passwd", call: (*Server).passwd},
	{method: "GET", path: "/progress", call: (*Server).progress},

	// the node
	{method: "GET", path: "/status", call: (*Server).status},
	{method: "POST", path: "/sync", call: (*Server).sync},
	{method: "POST", path: "/invite", call: (*Server).invite},
	{method: "GET", path: "/invite", call: (*Server).inviteState},
	{method: "GET", path: "/devices", call: (*Server).devices},
	{method: "DELETE", path: "/device", call: (*Server).removeDevice},
	{method: "GET", path: "/events", stream: (*Server).events},
	{method: "POST", path: "/ui", call: (*Server).ui},

	// consent and sharing
	{method: "POST", path: "/consent/grant", call: withConsent(grant)},
	{method: "POST", path: "/consent/revoke", call: withConsent(revoke)},
	{method: "GET", path: "/consent/grants", call: withConsent(grants)},
	{method: "GET", path: "/consent/pending", call: withConsent(pending)},
	{method: "POST", path: "/consent/approve", call: withConsent(approve)},
	{method: "POST", path: "/consent/deny", call: withConsent(deny)},
	{method: "GET", path: "/consent/audit", call: withConsent(audit)},
	{method: "POST", path: "/share", call: (*Server).share},
}

func (s *Server) ping(*http.Request) (any, error) {
	return Hello{PID: os.Getpid(), Device: s.st.Device(), Daemon: !s.opts.InProcess}, nil
}

// Records.

func (s *Server) putRecord(r *http.Request) (any, error) {
	q := r.URL.Query()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, err
	}
	if q.Get("raw") == "1" {
		return nil, s.st.Update(func(tx *store.Tx) error { return tx.PutRaw(q.Get("collection"), q.Get("key"), body) })
	}
	return nil, s.st.Put(q.Get("collection"), q.Get("key"), body)
}

func (s *Server) getRecord(r *http.Request) (any, error) {
	rec, err := s.st.Get(r.URL.Query().Get("collection"), r.URL.Query().Get("key"))
	if err != nil {
		return nil, err
	}
	return view.FromRecord(rec), nil
}

func (s *Server) deleteRecord(r *http.Request) (any, error) {
	return nil, s.st.Delete(r.URL.Query().Get("collection"), r.URL.Query().Get("key"))
}

func (s *Server) listRecords(r *http.Request) (any, error) {
	recs, err := s.st.List(r.URL.Query().Get("collection"), r.URL.Query().Get("prefix"))
	if err != nil {
		return nil, err
	}
	out := make([]view.Record, 0, len(recs))
	for i := range recs {
		out = append(out, view.FromRecord(&recs[i]))
	}
	return out, nil
}

// Conflicts and policies.

func (s *Server) conflicts(*http.Request) (any, error) {
	cs, err := s.st.Conflicts().List()
	if err != nil {
		return nil, err
	}
	out := make([]view.Conflict, 0, len(cs))
	for i := range cs {
		out = append(out, view.FromConflict(&cs[i]))
	}
	return out, nil
}

func (s *Server) conflict(r *http.Request) (any, error) {
	c, err := s.st.Conflicts().Get(r.URL.Query().Get("id"))
	if err != nil {
		return nil, err
	}
	return view.FromConflict(c), nil
}

func (s *Server) resolveConflict(r *http.Request) (any, error) {
	var req resolveRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	c, err := s.st.Conflicts().Get(req.ID)
	if err != nil {
		return nil, err
	}
	return nil, s.st.Conflicts().Resolve(c.ID, req.Pick, req.Value, req.Expect)
}

func (s *Server) history(r *http.Request) (any, error) {
	h, err := s.st.Conflicts().History(r.URL.Query().Get("collection"), r.URL.Query().Get("key"))
	if err != nil {
		return nil, err
	}
	out := make([]view.HistoryEntry, 0, len(h))
	for _, e := range h {
		out = append(out, view.FromHistory(e))
	}
	return out, nil
}

func (s *Server) policy(r *http.Request) (any, error) {
	p, explicit, err := s.st.Policies().Get(r.URL.Query().Get("collection"))
	if err != nil {
		return nil, err
	}
	return view.FromPolicy(p, explicit), nil
}

func (s *Server) setPolicy(r *http.Request) (any, error) {
	var d view.Policy
	if err := readJSON(r, &d); err != nil {
		return nil, err
	}
	p, err := d.Policy()
	if err != nil {
		return nil, badRequest{"policy: " + err.Error()}
	}
	return nil, s.st.Policies().Set(r.URL.Query().Get("collection"), p)
}

func (s *Server) policies(*http.Request) (any, error) {
	all, err := s.st.Policies().List()
	if err != nil {
		return nil, err
	}
	out := make(map[string]view.Policy, len(all))
	for name, p := range all {
		out[name] = view.FromPolicy(p, true)
	}
	return out, nil
}

// The store as a whole.

func (s *Server) verify(*http.Request) (any, error) {
	rep, err := s.st.Verify()
	if err != nil {
		return nil, err
	}
	return view.FromReport(rep), nil
}

func (s *Server) export(r *http.Request) (any, error) {
	var req exportRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	done := s.startWork("export", "envelopes")
	defer done()
	info, err := store.ExportFile(s.st, req.Path, req.Passphrase, &store.ExportOptions{Progress: s.report})
	return view.FromBackupInfo(info), err
}

// startWork makes op the long work GET /progress reports, until the returned function.
func (s *Server) startWork(op, unit string) func() {
	p := &Progress{Op: op, Unit: unit, Started: time.Now().UTC()}
	s.workMu.Lock()
	s.work = p
	s.workMu.Unlock()
	return func() {
		s.workMu.Lock()
		if s.work == p {
			s.work = nil
		}
		s.workMu.Unlock()
	}
}

// report updates the progress of the work under way.
func (s *Server) report(done, total int64) {
	s.workMu.Lock()
	if s.work != nil {
		s.work.Done, s.work.Total = done, total
	}
	s.workMu.Unlock()
}

// progress answers GET /progress: the export or import under way, or 204.
func (s *Server) progress(*http.Request) (any, error) {
	s.workMu.Lock()
	defer s.workMu.Unlock()
	if s.work != nil {
		return *s.work, nil
	}
	return nil, nil
}

func (s *Server) importBackup(r *http.Request) (any, error) {
	var req importRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	done := s.startWork("import", "bytes")
	defer done()
	st, err := store.ImportFileProgress(s.st, req.Path, req.Passphrase, req.DryRun, s.report)
	return view.FromImportStats(st), err
}

func (s *Server) passwd(r *http.Request) (any, error) {
	var req passwdRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	return nil, s.st.Keys().ChangePassphrase(req.Old, req.New, nil)
}

// The node.

func (s *Server) status(*http.Request) (any, error) {
	n, err := s.node()
	if err != nil {
		return nil, err
	}
	return nodeStatus(n, !s.opts.InProcess), nil
}

// sync syncs now; with wait=1 it answers when every device finished a session, or
// timeout_seconds (default 30) passed: an error wrapping context.DeadlineExceeded.
func (s *Server) sync(r *http.Request) (any, error) {
	n, err := s.online(r.Context())
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	if q.Get("wait") != "1" {
		return nil, n.SyncNow(r.Context())
	}
	var secs float64
	fmt.Sscan(q.Get("timeout_seconds"), &secs)
	ctx, cancel := context.WithTimeout(r.Context(), duration(secs, 30*time.Second))
	defer cancel()
	if err := n.WaitSynced(ctx); err != nil {
		return nil, err
	}
	return nodeStatus(n, !s.opts.InProcess), nil
}

func (s *Server) invite(r *http.Request) (any, error) {
	var req inviteRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	n, err := s.online(r.Context())
	if err != nil {
		return nil, err
	}
	if req.Short {
		if req.Replica {
			return nil, fmt.Errorf("%w: a short code cannot invite a replica", store.ErrInvalid)
		}
		inv, err := n.InviteShort(duration(req.ExpiresSeconds, 0))
		if err != nil {
			return nil, err
		}
		return Invite{Code: inv.Code, Expires: inv.Expires, Addrs: inv.Addrs}, nil
	}
	invite := n.Invite
	if req.Replica {
		invite = n.InviteReplica
	}
	code, until, err := invite(duration(req.ExpiresSeconds, 0))
	if err != nil {
		return nil, err
	}
	return Invite{Code: code, Expires: until, Addrs: n.InviteAddrs()}, nil
}

func (s *Server) inviteState(*http.Request) (any, error) {
	n, err := s.node()
	if err != nil {
		return nil, err
	}
	return n.InviteState(), nil
}

func (s *Server) devices(*http.Request) (any, error) {
	n, err := s.node()
	if err != nil {
		return nil, err
	}
	return n.Devices(), nil
}

// removeDevice removes a device once the passphrase checks out against the store
// (store.ErrWrongPassphrase otherwise): a daemon holds the key, not the passphrase.
func (s *Server) removeDevice(r *http.Request) (any, error) {
	var req removeRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	n, err := s.node()
	if err != nil {
		return nil, err
	}
	return nil, n.RemoveDeviceConfirmed(req.ID, req.Passphrase)
}

// ui answers the web page's address with a new one-time login token in it.
func (s *Server) ui(*http.Request) (any, error) {
	if s.opts.UI == nil {
		return nil, badRequest{"no web page here: the daemon of a device serves it (start one with `meshsync daemon`, without --ui-listen off; a blind replica has none)"}
	}
	u, err := s.opts.UI()
	if err != nil {
		return nil, err
	}
	return UI{URL: u}, nil
}

// Consent and sharing.

// withConsent runs a call on the consent registry of the server.
func withConsent(call func(*consent.Registry, *http.Request) (any, error)) func(*Server, *http.Request) (any, error) {
	return func(s *Server, r *http.Request) (any, error) {
		reg, err := s.consent()
		if err != nil {
			return nil, err
		}
		return call(reg, r)
	}
}

func grant(reg *consent.Registry, r *http.Request) (any, error) {
	var spec consent.GrantSpec
	if err := readJSON(r, &spec); err != nil {
		return nil, err
	}
	return reg.Grant(spec)
}

func revoke(reg *consent.Registry, r *http.Request) (any, error) {
	return reg.Revoke(r.URL.Query().Get("id"))
}

func grants(reg *consent.Registry, _ *http.Request) (any, error) { return nonNil(reg.Grants()) }

func pending(reg *consent.Registry, _ *http.Request) (any, error) { return nonNil(reg.Pending()) }

func approve(reg *consent.Registry, r *http.Request) (any, error) {
	var req approveRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	return reg.Approve(req.ID, req.Rules, req.Expires)
}

func deny(reg *consent.Registry, r *http.Request) (any, error) {
	return reg.Deny(r.URL.Query().Get("id"))
}

func audit(reg *consent.Registry, _ *http.Request) (any, error) { return nonNil(reg.Audit()) }

// share shares a collection. A share the grants refuse is audited and answered as an
// error; one that sent something is answered with its result and its error, if any.
// An in-process node starts its network only for a share the grants allow, and then
// needs the destination's address.
func (s *Server) share(r *http.Request) (any, error) {
	var req shareRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	n, err := s.node()
	if err != nil {
		return nil, err
	}
	reg, err := n.Consent()
	if err != nil {
		return nil, err
	}
	if _, err := reg.Check(req.Collection, req.Purpose, req.Dest.ID.String()); err == nil {
		if s.opts.InProcess && len(req.Dest.Addrs) == 0 {
			return nil, badRequest{fmt.Sprintf("no address for %s: give --to as the address `meshsync receive` prints (ending in /p2p/PEER), or add --addr", req.Dest.ID)}
		}
		if _, err := s.online(r.Context()); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), duration(req.TimeoutSeconds, 2*time.Minute))
	defer cancel()
	res, err := n.Share(ctx, req.Collection, req.Purpose, req.Dest)
	if err != nil && res.Audit.ID == "" {
		return nil, err // refused (and audited): nothing left
	}
	out := ShareReply{Result: ShareResult{Grant: res.Grant, Audit: res.Audit, Skipped: res.Skipped}}
	if err != nil {
		out.Error, out.Codes = err.Error(), codesOf(err)
	}
	return out, nil
}

// nonNil answers an empty list as [] rather than null.
func nonNil[T any](list []T, err error) ([]T, error) {
	if list == nil && err == nil {
		list = []T{}
	}
	return list, err
}

// Scope.

func (s *Server) scope(*http.Request) (any, error) {
	return ScopeView{Collections: orEmpty(s.st.Replication().Scope().Collections), All: s.st.Replication().Scope().All()}, nil
}

func (s *Server) setScope(r *http.Request) (any, error) {
	var req ScopeRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	sc, err := store.NewScope(req.Collections...)
	if err != nil {
		return nil, badRequest{err.Error()}
	}
	var ch store.ScopeChange
	opts := store.ScopeOptions{DryRun: req.DryRun, Force: req.Force}
	if s.n != nil {
		ch, err = s.n.SetScope(sc, opts)
	} else {
		if opts.Holders, err = node.Holders(s.st); err != nil {
			return nil, err
		}
		ch, err = s.st.Replication().SetScope(sc, opts)
	}
	if err != nil {
		return nil, err
	}
	return ScopeResult{ScopeView: ScopeView{Collections: orEmpty(sc.Collections), All: sc.All()}, Widened: ch.Widened, Dropped: ch.Dropped, Unsent: ch.Unsent, DryRun: req.DryRun}, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
