// Package localapi is meshsync's control API: HTTP with JSON bodies, served by the daemon
// on a unix socket in the data directory (SocketPath, mode 0600), and by the CLI itself,
// in process, when no daemon runs. Both halves live here: Server and its typed Client.
//
// # Usage
//
// A daemon serves its node until ctx ends:
//
//	srv := localapi.NewNodeServer(n, &localapi.Options{Logger: log})
//	err := srv.Serve(ctx, dir)
//
// A command talks to the daemon, or, when none runs, serves the store (or a node whose
// network starts when a route needs it) in its own process and talks to that, through
// the same client:
//
//	c, err := localapi.Dial(ctx, dir) // errors.Is(err, localapi.ErrNoDaemon) when none runs
//	if errors.Is(err, localapi.ErrNoDaemon) {
//		c, err = localapi.Local(localapi.NewServer(st, &localapi.Options{InProcess: true}), st)
//	}
//	defer c.Close()
//	rec, err := c.Get(ctx, "notes", "hello") // store.ErrNotFound, whichever server answered
//
// Errors keep their sentinels: an error answer names (as codes) every sentinel error of
// store, node, consent, share and context that its error wraps, and the client returns an
// error that wraps them again, with the server's text.
//
// # Endpoints
//
// Every path starts with Prefix, the version of the API (/v2). Records, conflicts,
// policies and the store's reports travel as the JSON forms of package view (a policy's
// deadline in seconds); devices and consent as their packages' JSON; the rest as the
// types of this package. An empty answer is 204 No Content;
// an error answer is {"error": text, "codes": [...]} under a 4xx or 5xx status.
//
//	GET    /v2/ping                 Hello: the serving process, the device, daemon or not
//	PUT    /v2/record               ?collection&key[&raw=1], the value as the body
//	GET    /v2/record               ?collection&key → view.Record
//	DELETE /v2/record               ?collection&key
//	GET    /v2/records              ?collection&prefix → []view.Record
//	GET    /v2/conflicts            → []view.Conflict
//	GET    /v2/conflict             ?id (id prefix or collection/key) → view.Conflict
//	POST   /v2/conflict/resolve     {id, pick, value, expect}
//	GET    /v2/history              ?collection&key → []view.HistoryEntry
//	GET    /v2/policy               ?collection → view.Policy (defaults filled in)
//	PUT    /v2/policy               ?collection, view.Policy as the body
//	GET    /v2/policies             → {collection: view.Policy}, explicit ones only
//	GET    /v2/scope                → ScopeView
//	PUT    /v2/scope                ScopeRequest as the body → ScopeResult
//	POST   /v2/verify               → view.Report
//	POST   /v2/export               {path, passphrase} → view.BackupInfo
//	POST   /v2/import               {path, passphrase, dry_run} → view.ImportStats
//	POST   /v2/passwd               {old, new}
//	GET    /v2/progress             → Progress of the export or import under way, or 204
//	GET    /v2/status               → Status (node)
//	POST   /v2/sync                 [?wait=1&timeout_seconds=N] → Status when waiting (node)
//	POST   /v2/invite               {expires_seconds, replica, short} → Invite (node)
//	GET    /v2/invite               → node.InviteState: open, failures, why it closed (node)
//	GET    /v2/devices              → []node.Device (node)
//	DELETE /v2/device               {id, passphrase} (node)
//	GET    /v2/events               [?records=1] → JSON lines of Event: state, record, invite (node)
//	POST   /v2/ui                   → UI: the web page's URL with a one-time token (daemon)
//	POST   /v2/consent/grant        consent.GrantSpec → consent.Grant
//	POST   /v2/consent/revoke       ?id → consent.Grant
//	GET    /v2/consent/grants       → []consent.Grant
//	GET    /v2/consent/pending      → []consent.Request
//	POST   /v2/consent/approve      {id, rules, expires} → consent.Grant
//	POST   /v2/consent/deny         ?id → consent.Request
//	GET    /v2/consent/audit        → []consent.AuditEntry
//	POST   /v2/share                {collection, purpose, dest, timeout_seconds} → ShareReply (node)
//
// Routes marked (node) need a server of a node (NewNodeServer); a server of a bare store
// answers them with ErrBadRequest.
//
// # Caveats
//
// The socket's file mode is the only access control: whoever may open it may do
// everything the device may (a device removal still asks for the passphrase). Requests
// with an Origin header, which only browsers send, are refused.
//
// Export and import name files by path as the server sees them: give absolute paths.
//
// Durations travel in seconds; a policy's deadline in whole seconds, so a fraction of a
// second set through this API is dropped.
package localapi
