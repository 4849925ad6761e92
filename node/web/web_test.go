package web

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/store"
)

func init() { testmode.Enable() }

// serve runs a real node (loopback, no discovery) behind the local API and the web page,
// as the daemon does, and returns the page's server and the API client.
func serve(t *testing.T) (*Server, *localapi.Client) {
	ws, cl, _ := serveNode(t)
	return ws, cl
}

// serveNode is serve, with the node.
func serveNode(t *testing.T) (*Server, *localapi.Client, *node.Node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := node.Init(ctx, node.Config{Dir: filepath.Join(t.TempDir(), "n"), Passphrase: []byte("pass"),
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LANOnly: true}, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var ws *Server
	cl, err := localapi.Local(localapi.NewNodeServer(n, &localapi.Options{UI: func() (string, error) { return ws.LoginURL() }}), n)
	if err != nil {
		t.Fatal(err)
	}
	if ws, err = Listen(cl, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ws.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		cl.Close()
	})
	return ws, cl, n
}

// browser is an HTTP client that keeps cookies and does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends one request with the given headers and returns the status and body.
func do(t *testing.T, c *http.Client, method, u string, form url.Values, hdr map[string]string) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfRE = regexp.MustCompile(`<meta name="csrf" content="([^"]+)">`)

// TestRefusedWithoutCookieOrFromElsewhere: every request without the session cookie, with
// a foreign Origin or Host, from another site, or a state change without the CSRF token
// gets 403 and changes nothing; the one-time login link works once; the same requests
// done right succeed.
func TestRefusedWithoutCookieOrFromElsewhere(t *testing.T) {
	ws, cl := serve(t)
	ctx := context.Background()
	base := "http://" + ws.Addr()
	login, err := cl.UI(ctx) // as `meshsync ui` asks for it
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(login.URL, base+"/?token=") {
		t.Fatalf("login URL %q is not on %s", login.URL, base)
	}

	// No cookie: every route, the stream and the static files too.
	stranger := browser(t)
	for _, p := range []string{"/", "/pair", "/records", "/record?collection=notes&key=k", "/conflicts", "/policies", "/consent", "/events", "/static/app.js"} {
		if code, _ := do(t, stranger, "GET", base+p, nil, nil); code != http.StatusForbidden {
			t.Errorf("GET %s without the cookie: %d, want 403", p, code)
		}
	}
	if code, _ := do(t, stranger, "GET", base+"/?token=not-a-token", nil, nil); code != http.StatusForbidden {
		t.Errorf("a made-up token: %d, want 403", code)
	}
	if code, _ := do(t, stranger, "POST", base+"/record", url.Values{"collection": {"notes"}, "key": {"k"}, "value": {"1"}}, nil); code != http.StatusForbidden {
		t.Errorf("POST without the cookie: %d, want 403", code)
	}

	// The login link, from a foreign Origin: refused, and the token is still good.
	me := browser(t)
	if code, _ := do(t, me, "GET", login.URL, nil, map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Errorf("login from a foreign origin: %d, want 403", code)
	}
	// Trading it for the cookie: HttpOnly, SameSite=Strict, and the link then dies.
	req, _ := http.NewRequest("GET", login.URL, nil)
	resp, err := me.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %s to %q, want 303 to /", resp.Status, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login cookie %+v: want one, HttpOnly, SameSite=Strict", cookies)
	}
	if code, _ := do(t, browser(t), "GET", login.URL, nil, nil); code != http.StatusForbidden {
		t.Errorf("the login link used a second time: %d, want 403", code)
	}
	// A link whose path points elsewhere logs in to this page, not to that place.
	other, _ := ws.LoginURL()
	req, _ = http.NewRequest("GET", base+"//evil.example/"+other[len(base)+1:], nil)
	resp, err = browser(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("login through //evil.example: %s to %q, want 303 to /", resp.Status, resp.Header.Get("Location"))
	}

	code, page := do(t, me, "GET", base+"/", nil, nil)
	if code != http.StatusOK || !strings.Contains(page, "laptop") {
		t.Fatalf("GET / logged in: %d (page names the device: %v)", code, strings.Contains(page, "laptop"))
	}
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	csrf := m[1]

	// Logged in, but from elsewhere.
	put := func(value, token string, hdr map[string]string) int {
		code, _ := do(t, me, "POST", base+"/record", url.Values{"collection": {"notes"}, "key": {"k"}, "value": {value}, "csrf": {token}}, hdr)
		return code
	}
	for _, c := range []struct {
		what string
		hdr  map[string]string
	}{
		{"a foreign Origin", map[string]string{"Origin": "http://evil.example"}},
		{"another port's Origin", map[string]string{"Origin": "http://127.0.0.1:1"}},
		{"a rebound Host (DNS rebinding)", map[string]string{"Host": "evil.example:" + strings.Split(ws.Addr(), ":")[1]}},
		{"Sec-Fetch-Site: cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		if code, _ := do(t, me, "GET", base+"/", nil, c.hdr); code != http.StatusForbidden {
			t.Errorf("GET with %s: %d, want 403", c.what, code)
		}
		if code := put(`"from elsewhere"`, csrf, c.hdr); code != http.StatusForbidden {
			t.Errorf("POST with %s: %d, want 403", c.what, code)
		}
	}
	// State changes without the CSRF token, or with another.
	if code := put(`"no token"`, "", nil); code != http.StatusForbidden {
		t.Errorf("POST without the CSRF token: %d, want 403", code)
	}
	if code := put(`"wrong token"`, csrf+"x", nil); code != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d, want 403", code)
	}
	if _, err := cl.Get(ctx, "notes", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused request wrote the record: %v", err)
	}

	// Done right, from the page's own origin: written.
	if code := put(`{"ok": true}`, csrf, map[string]string{"Origin": base}); code != http.StatusSeeOther {
		t.Fatalf("POST from the page: %d, want 303", code)
	}
	rec, err := cl.Get(ctx, "notes", "k")
	if err != nil || string(rec.Value) != `{"ok":true}` {
		t.Fatalf("record after the page's POST: %s, %v", rec.Value, err)
	}
}

// TestLoginLinkExpires: a login link is refused after TokenTTL, a session after
// SessionTTL.
func TestLoginLinkExpires(t *testing.T) {
	ws, _ := serve(t)
	now := time.Now()
	ws.auth.now = func() time.Time { return now }
	u, _ := ws.LoginURL()
	now = now.Add(TokenTTL + time.Second)
	if code, _ := do(t, browser(t), "GET", u, nil, nil); code != http.StatusForbidden {
		t.Errorf("an expired login link: %d, want 403", code)
	}
	c, _ := login(t, ws)
	now = now.Add(SessionTTL - time.Second)
	if code, _ := do(t, c, "GET", "http://"+ws.Addr()+"/", nil, nil); code != http.StatusOK {
		t.Errorf("a session just before SessionTTL: %d, want 200", code)
	}
	now = now.Add(2 * time.Second)
	if code, _ := do(t, c, "GET", "http://"+ws.Addr()+"/", nil, nil); code != http.StatusForbidden {
		t.Errorf("a session past SessionTTL: %d, want 403", code)
	}
}

// TestListenLoopbackOnly: an address other machines can reach is refused.
func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "192.0.2.1:0", "example.com:80"} {
		if _, err := Listen(nil, &Options{Addr: addr}); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Listen(%q): %v, want ErrNotLoopback", addr, err)
		}
	}
	ws, err := Listen(nil, &Options{Addr: "localhost:0"})
	if err != nil {
		t.Fatal(err)
	}
	ws.ln.Close()
}

// login logs a client in with a fresh login link and returns it with the page's CSRF token.
func login(t *testing.T, ws *Server) (*http.Client, string) {
	t.Helper()
	u, _ := ws.LoginURL()
	c := browser(t)
	if code, _ := do(t, c, "GET", u, nil, nil); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	code, page := do(t, c, "GET", "http://"+ws.Addr()+"/", nil, nil)
	m := csrfRE.FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		t.Fatalf("after login: %d, CSRF token found: %v", code, m != nil)
	}
	return c, m[1]
}

// TestConsentRequestsAndAudit: the consent view lists an app's pending requests, approves
// one (a grant follows, with the request's fields) and denies the other, and shows the
// audit log with each receipt's verification.
func TestConsentRequestsAndAudit(t *testing.T) {
	ws, _, n := serveNode(t)
	reg, err := n.Consent()
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	lpub, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	dest, err := peer.IDFromPublicKey(lpub)
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := consent.ParseRules([]string{"steps=keep"})
	ask := func(app string) consent.Request {
		q, err := reg.Request(consent.RequestSpec{App: app, Collection: "health", Purpose: "coaching", Destination: dest.String(), Fields: rules, For: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	fit, spy := ask("fitness-app"), ask("spy-app")

	// Two shares in the audit log: one whose receipt verifies, one whose does not.
	g, err := reg.Grant(consent.GrantSpec{Collection: "health", Purpose: "coaching", Destination: dest.String(), Expires: time.Now().Add(time.Hour), Fields: rules})
	if err != nil {
		t.Fatal(err)
	}
	docs := [][]byte{[]byte(`{"steps":1}`)}
	sign := func(m []byte) ([]byte, error) { return ed25519.Sign(priv, m), nil }
	verify := func(m, sig []byte) error {
		if !ed25519.Verify(pub, m, sig) {
			return errors.New("bad signature")
		}
		return nil
	}
	good, err := consent.SignReceipt(consent.NewReceipt(g, n.PeerID().String(), docs, time.Now()), sign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.RecordShare(consent.Sent{Grant: g, Sender: n.PeerID().String(), Docs: docs}, &good, verify); err != nil {
		t.Fatal(err)
	}
	lying := consent.NewReceipt(g, n.PeerID().String(), docs, time.Now())
	lying.Count = 7
	bad, err := consent.SignReceipt(lying, sign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.RecordShare(consent.Sent{Grant: g, Sender: n.PeerID().String(), Docs: docs}, &bad, verify); !errors.Is(err, consent.ErrBadReceipt) {
		t.Fatalf("a lying receipt: %v, want ErrBadReceipt", err)
	}

	c, csrf := login(t, ws)
	base := "http://" + ws.Addr()
	_, page := do(t, c, "GET", base+"/consent", nil, nil)
	for _, want := range []string{"fitness-app", "spy-app", ">verified<", ">not verified<", "acknowledges 7 documents, sent 1"} {
		if !strings.Contains(page, want) {
			t.Errorf("the consent view does not show %q", want)
		}
	}
	origin := map[string]string{"Origin": base}
	if code, _ := do(t, c, "POST", base+"/consent/approve", url.Values{"id": {fit.ID}, "csrf": {csrf}}, origin); code != http.StatusSeeOther {
		t.Fatalf("approve: %d", code)
	}
	if code, _ := do(t, c, "POST", base+"/consent/deny", url.Values{"id": {spy.ID}, "csrf": {csrf}}, origin); code != http.StatusSeeOther {
		t.Fatalf("deny: %d", code)
	}
	if p, err := reg.Pending(); err != nil || len(p) != 0 {
		t.Fatalf("pending after approve and deny: %v, %v", p, err)
	}
	qs, err := reg.Requests()
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]consent.RequestStatus{}
	for _, q := range qs {
		status[q.ID] = q.Status
	}
	if status[fit.ID] != consent.Approved || status[spy.ID] != consent.Denied {
		t.Fatalf("request states %v: want the fitness app approved, the spy app denied", status)
	}
	gs, err := reg.Grants()
	if err != nil {
		t.Fatal(err)
	}
	var granted bool
	for _, g := range gs {
		granted = granted || (g.Request == fit.ID && len(g.Fields) == 1 && g.Fields[0].String() == "steps=keep")
	}
	if !granted {
		t.Fatalf("no grant from the approved request among %+v", gs)
	}
	_, page = do(t, c, "GET", base+"/consent", nil, nil)
	if !strings.Contains(page, "Denied the request of spy-app") {
		t.Errorf("no confirmation of the last decision on the page")
	}
}

// TestPairAndRecordViews: the pairing view makes a device invite and a replica invite,
// each with its code, QR code and expiry; a bad expiry is refused with a message; a record
// that does not exist is a 404 page; a value that is not JSON is refused and not written.
func TestPairAndRecordViews(t *testing.T) {
	ws, cl := serve(t)
	c, csrf := login(t, ws)
	base := "http://" + ws.Addr()
	origin := map[string]string{"Origin": base}
	codeRE := regexp.MustCompile(`<output id="invite-code" class="code">([A-Za-z0-9-]+)</output>`)
	for _, kind := range []string{"device", "replica"} {
		code, page := do(t, c, "POST", base+"/pair", url.Values{"kind": {kind}, "expires": {"5m0s"}, "csrf": {csrf}}, origin)
		m := codeRE.FindStringSubmatch(page)
		if code != http.StatusOK || m == nil || !strings.Contains(page, `src="data:image/png;base64,`) || !strings.Contains(page, "data-countdown=") {
			t.Fatalf("%s invite: %d, code found %v, QR code and countdown shown: %v", kind, code, m != nil, strings.Contains(page, "data-countdown="))
		}
		if _, _, err := node.InviteReach(m[1]); err != nil {
			t.Errorf("%s invite code %q does not parse: %v", kind, m[1], err)
		}
		if kind == "replica" && !strings.Contains(page, "Replica invite") {
			t.Errorf("the replica invite is not labelled as one")
		}
	}
	if code, _ := do(t, c, "POST", base+"/pair", url.Values{"kind": {"device"}, "expires": {"100h"}, "csrf": {csrf}}, origin); code != http.StatusSeeOther {
		t.Errorf("an invite for 100h: %d, want a redirect with a message", code)
	}
	if _, page := do(t, c, "GET", base+"/pair", nil, nil); !strings.Contains(page, "pick one of the choices") {
		t.Errorf("no message about the refused expiry")
	}

	if code, page := do(t, c, "GET", base+"/record?collection=notes&key=nope", nil, nil); code != http.StatusNotFound || !strings.Contains(page, "not found") {
		t.Errorf("a missing record: %d, want a 404 page that says so", code)
	}
	do(t, c, "POST", base+"/record", url.Values{"collection": {"notes"}, "key": {"k"}, "value": {"{milk: 2"}, "csrf": {csrf}}, origin)
	if _, page := do(t, c, "GET", base+"/records?collection=notes", nil, nil); !strings.Contains(page, "the value is not JSON") {
		t.Errorf("no message about the value that is not JSON")
	}
	if _, err := cl.Get(context.Background(), "notes", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a value that is not JSON was written: %v", err)
	}
}

// TestEventStream: a logged-in page gets the node's changes as server-sent events; a
// burst of writes arrives (coalesced) up to the last one.
func TestEventStream(t *testing.T) {
	ws, cl := serve(t)
	c, _ := login(t, ws)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ws.Addr()+"/events", nil)
	c.Timeout = 0
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	go func() {
		time.Sleep(200 * time.Millisecond) // the stream subscribes first
		for i := range 100 {
			cl.Put(ctx, "notes", fmt.Sprint("k", i), []byte(`1`))
		}
	}()
	sc := bufio.NewScanner(resp.Body)
	events := 0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		events++
		var ev localapi.Event
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		if ev.Record != nil && ev.Record.Key == "k99" {
			t.Logf("100 writes arrived as %d events (coalesced %s apart)", events, eventGap)
			return
		}
	}
	t.Fatalf("the stream ended before the last write: %v", sc.Err())
}

// TestPairShortCode: the pairing form makes a short code to read aloud (capped at ten
// minutes whatever was picked) and shows it with the addresses for --peer; a device joins
// with it.
func TestPairShortCode(t *testing.T) {
	ws, _, n := serveNode(t)
	c, csrf := login(t, ws)
	base := "http://" + ws.Addr()
	code, page := do(t, c, "POST", base+"/pair", url.Values{"kind": {"short"}, "expires": {"1h0m0s"}, "csrf": {csrf}}, map[string]string{"Origin": base})
	if code != http.StatusOK {
		t.Fatalf("POST /pair: %d\n%s", code, page)
	}
	m := regexp.MustCompile(`<output id="invite-code" class="code">([0-9]+-[a-z]+-[a-z]+-[a-z]+)</output>`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "--peer") || !strings.Contains(page, "/p2p/"+n.PeerID().String()) {
		t.Fatalf("the page shows no short code with addresses:\n%s", page)
	}
	if st := n.InviteState(); !st.Open || !st.Short || time.Until(st.Expires) > node.MaxShortInviteExpiry {
		t.Fatalf("invite state %+v", st)
	}
	j, err := node.Join(context.Background(), node.Config{Dir: filepath.Join(t.TempDir(), "j"), Passphrase: []byte("pass"), LANOnly: true, JoinPeers: n.InviteAddrs()}, m[1], "phone")
	if err != nil {
		t.Fatalf("join with the page's short code %s: %v", m[1], err)
	}
	j.Close()
}

// TestScopeForm: the policies view shows this device's scope and changes it; narrowing
// that drops records needs the confirmation box, and one that drops writes no other
// device has yet needs the second box too.
func TestScopeForm(t *testing.T) {
	ws, cl := serve(t)
	c, csrf := login(t, ws)
	base := "http://" + ws.Addr()
	origin := map[string]string{"Origin": base}
	ctx := context.Background()
	for _, coll := range []string{"notes", "photos"} {
		if err := cl.Put(ctx, coll, "k", []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, page := do(t, c, "GET", base+"/policies", nil, nil); !strings.Contains(page, "Every collection.") {
		t.Fatalf("the policies view does not show the scope:\n%s", page)
	}
	do(t, c, "POST", base+"/scope", url.Values{"collections": {"notes"}, "force": {"on"}, "csrf": {csrf}}, origin)
	if _, page := do(t, c, "GET", base+"/policies", nil, nil); !strings.Contains(page, "tick the box to confirm") {
		t.Error("narrowing without the box: no message asking to confirm")
	}
	if v, err := cl.Scope(ctx); err != nil || !v.All {
		t.Fatalf("narrowing without the box changed the scope: %+v %v", v, err)
	}
	// The photo was written here and no other device has it: the confirmation is not
	// enough, the page asks for the second box.
	do(t, c, "POST", base+"/scope", url.Values{"collections": {"notes"}, "confirm": {"on"}, "csrf": {csrf}}, origin)
	if _, page := do(t, c, "GET", base+"/policies", nil, nil); !strings.Contains(page, "no other device has yet") {
		t.Error("narrowing over an unsent write: no message saying it would be lost")
	}
	if v, err := cl.Scope(ctx); err != nil || !v.All {
		t.Fatalf("narrowing over an unsent write changed the scope: %+v %v", v, err)
	}
	do(t, c, "POST", base+"/scope", url.Values{"collections": {"notes"}, "confirm": {"on"}, "force": {"on"}, "csrf": {csrf}}, origin)
	if v, err := cl.Scope(ctx); err != nil || v.All || len(v.Collections) != 1 || v.Collections[0] != "notes" {
		t.Fatalf("scope after the form: %+v %v", v, err)
	}
	if _, err := cl.Get(ctx, "photos", "k"); !errors.Is(err, store.ErrOutOfScope) {
		t.Errorf("a photo after narrowing to notes: %v", err)
	}
	if _, page := do(t, c, "GET", base+"/policies", nil, nil); !strings.Contains(page, "Dropped 1 records here") || !strings.Contains(page, "notes, and meshsync") {
		t.Error("the page does not say what narrowing did")
	}
}
