// Package web is the daemon's web page: the devices and their sync state, pairing,
// records, conflicts, policies and consent, for people who do not live in a terminal.
// It is built on the local API's client (package node/localapi) and nothing else, with
// the standard library (and the QR code package `meshsync pair` uses): html/template
// pages rendered on the server, plain HTML forms for every action, and a small script
// for live updates (server-sent events from the node's event stream) and countdowns.
// Every page works without the script, only not live.
//
// # Usage
//
// The daemon listens on loopback and hands out login links through the local API:
//
//	ws, err := web.Listen(client, &web.Options{Addr: "127.0.0.1:0"})
//	go ws.Serve(ctx)
//	url, err := ws.LoginURL() // http://127.0.0.1:PORT/?token=…, usable once
//
// # Security
//
// The page can do everything the device may, so it is guarded like Jupyter's:
//   - it listens on a loopback address only (ErrNotLoopback otherwise);
//   - LoginURL mints a one-time token (valid TokenTTL) that the page trades for a
//     session cookie (HttpOnly, SameSite=Strict, named after the port, since browsers
//     share cookies between the ports of one host); every request without a valid
//     cookie gets 403;
//   - the Host header must name the listening address (DNS rebinding), a request with an
//     Origin other than the page's own or Sec-Fetch-Site: cross-site gets 403;
//   - every state-changing request is a POST that carries the session's CSRF token.
//
// # Caveats
//
// Sessions live in memory, for SessionTTL at most: a restarted daemon asks for a new
// link (`meshsync ui`).
// The records view lists a collection through the local API's list route, which reads
// it whole; it shows the first MaxRows records of a listing.
package web
