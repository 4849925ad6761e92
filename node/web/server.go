package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/store"
)

// ErrNotLoopback means the listen address is not on a loopback interface: the page would
// be reachable from other machines.
var ErrNotLoopback = errors.New("the web page listens on loopback only")

// DefaultAddr is where the page listens when Options.Addr is empty: a port chosen at start.
const DefaultAddr = "127.0.0.1:0"

// MaxRows bounds the rows of one listing (records, history, audit entries).
const MaxRows = 500

// maxStreams bounds the live-update streams open at once (each follows the node's events).
const maxStreams = 16

// maxForm bounds a form's body: a record value (store.MaxValueSize) URL-encoded, and the rest.
const maxForm = 3*store.MaxValueSize + 64<<10

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a Server; nil or zero fields mean the defaults.
type Options struct {
	// Addr is the host:port to listen on, on a loopback address (127.0.0.1, ::1 or
	// localhost); empty means DefaultAddr.
	Addr string
	// Logger logs failed requests; nil means slog.Default().
	Logger *slog.Logger
}

// Server serves the web page of one daemon, through its local API client.
type Server struct {
	c       *localapi.Client
	ln      net.Listener
	base    string          // http://host:port
	hosts   map[string]bool // Host headers that name this server
	cookie  string
	auth    *auth
	log     *slog.Logger
	pages   map[string]*template.Template
	mux     *http.ServeMux
	streams chan struct{}
}

// Listen binds the page's address; Serve then answers on it. c is the client of the local
// API the page drives (a daemon's, usually in process: localapi.Local).
func Listen(c *localapi.Client, opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("web page address %q: %w: want host:port such as 127.0.0.1:8384", o.Addr, err)
	}
	ip := net.ParseIP(host)
	switch {
	case host == "localhost":
		host = "127.0.0.1"
	case ip == nil || !ip.IsLoopback():
		return nil, fmt.Errorf("web page address %q: %w: give 127.0.0.1:PORT (or [::1]:PORT)", o.Addr, ErrNotLoopback)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("web page: listen on %s: %w", o.Addr, err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	p := strconv.Itoa(tcp.Port)
	s := &Server{c: c, ln: ln, auth: newAuth(), log: o.Logger, cookie: "meshsync-" + p,
		streams: make(chan struct{}, maxStreams)}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.base = "http://" + net.JoinHostPort(tcp.IP.String(), p)
	s.hosts = map[string]bool{net.JoinHostPort(tcp.IP.String(), p): true, "localhost:" + p: true}
	if s.pages, err = parsePages(); err != nil {
		ln.Close()
		return nil, err
	}
	s.routes()
	return s, nil
}

// Addr is the address the page listens on (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// LoginURL returns the page's address with a new one-time login token: the first visit
// trades it for a session cookie. It is usable once, within TokenTTL.
func (s *Server) LoginURL() (string, error) {
	return s.base + "/?token=" + url.QueryEscape(s.auth.token()), nil
}

// Serve answers on the listening address until ctx ends, then closes it.
func (s *Server) Serve(ctx context.Context) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		tctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(tctx)
	})
	err := hs.Serve(s.ln)
	if stop() {
		s.ln.Close()
	} else {
		<-done
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeHTTP checks where a request comes from and who sends it, then serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin") // "no-referrer" would make Chrome send Origin: null
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	if !s.hosts[r.Host] {
		s.forbid(w, "this page answers only at "+s.base+" (the Host header names another address)")
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
		s.forbid(w, "a request from another site ("+o+") is refused")
		return
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		s.forbid(w, "a request from another site is refused")
		return
	}
	if tok := r.URL.Query().Get("token"); tok != "" && r.Method == http.MethodGet {
		s.login(w, r, tok)
		return
	}
	c, _ := r.Cookie(s.cookie)
	var sess *session
	if c != nil {
		sess = s.auth.session(c.Value)
	}
	if sess == nil {
		s.forbid(w, "not logged in: open the link that `meshsync ui` prints (it works once)")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if !s.auth.csrfOK(sess, r) {
			s.forbid(w, "the form's security token is missing or stale: reload the page and try again")
			return
		}
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
}

type sessionKey struct{}

// sessionOf is the logged-in session of a request that passed ServeHTTP.
func sessionOf(r *http.Request) *session { return r.Context().Value(sessionKey{}).(*session) }

// login trades a one-time token for a session cookie and sends the browser on to the
// front page, without the token in its address.
func (s *Server) login(w http.ResponseWriter, r *http.Request, tok string) {
	id, ok := s.auth.login(tok)
	if !ok {
		if c, _ := r.Cookie(s.cookie); c == nil || s.auth.session(c.Value) == nil {
			s.forbid(w, "this login link was used already or has expired: run `meshsync ui` for a new one")
			return
		}
	} else {
		http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	// Always to the front page: a path from the link (such as //evil.example) must not
	// turn the login into an open redirect.
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// forbid answers 403 with a line that says why and what to do.
func (s *Server) forbid(w http.ResponseWriter, why string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprintln(w, "403 forbidden: "+why)
}

// static serves the embedded script and style sheet.
func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}
