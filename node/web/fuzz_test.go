package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzGuard feeds the request guard whatever a browser or a local process could send:
// Host, Origin, Sec-Fetch-Site, cookies, method, path and login token. With no login link
// minted and no session, every request must be refused with 403 before it reaches a
// view (the server has no API client: a view would panic).
func FuzzGuard(f *testing.F) {
	ws, err := Listen(nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	ws.ln.Close()
	host := ws.Addr()
	f.Add("GET", "/", host, "", "", "", "")
	f.Add("GET", "/?token=abc", host, "http://"+host, "same-origin", "", "abc")
	f.Add("POST", "/record", host, "http://"+host, "same-origin", ws.cookie+"=x", "")
	f.Add("GET", "/static/app.js", "localhost:1", "null", "cross-site", ws.cookie+"=", "")
	f.Add("POST", "/consent/revoke", "evil.example", "http://evil.example", "cross-site", "a=b; "+ws.cookie+"=%00", "t")
	f.Fuzz(func(t *testing.T, method, path, hostHdr, origin, site, cookie, token string) {
		u, err := url.ParseRequestURI(path)
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		if token != "" {
			q := u.Query()
			q.Set("token", token)
			u.RawQuery = q.Encode()
		}
		req := &http.Request{Method: method, URL: u, Host: hostHdr, Header: http.Header{}, Body: http.NoBody, RequestURI: u.RequestURI()}
		for k, v := range map[string]string{"Origin": origin, "Sec-Fetch-Site": site, "Cookie": cookie} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		ws.ServeHTTP(w, req)
		if w.Code != http.StatusForbidden {
			t.Fatalf("%s %s (Host %q, Origin %q, site %q, cookie %q): %d, want 403", method, u, hostHdr, origin, site, cookie, w.Code)
		}
	})
}
