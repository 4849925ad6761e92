package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// SocketName is the control socket's file name inside the data directory.
const SocketName = "meshsync.sock"

// SocketPath is where the daemon of dir listens.
func SocketPath(dir string) string { return filepath.Join(dir, SocketName) }

// maxBody bounds every request body.
const maxBody = store.MaxValueSize + 64<<10

// Options configure a Server. The zero value (or nil) serves a daemon.
type Options struct {
	// Logger logs failed requests; nil means slog.Default().
	Logger *slog.Logger
	// InProcess says the server lives inside its client's process for one command (see
	// Local): GET /v2/ping and the status say that no daemon runs, and the node's network
	// is started by the first route that needs it (invite, sync, an allowed share).
	InProcess bool
	// UI mints the address of the daemon's web page with a new one-time login token in
	// it (package node/web); nil when this server serves no web page, and then
	// POST /v2/ui answers ErrBadRequest.
	UI func() (string, error)
}

// Server serves the local API of one store, or of one node and its store.
type Server struct {
	st     *store.Store
	n      *node.Node // nil for a bare store: the node routes answer ErrBadRequest
	opts   Options
	log    *slog.Logger
	mux    *http.ServeMux
	workMu sync.Mutex
	work   *Progress // the export or import under way, if any
}

// NewServer returns a server of a bare store: the record, conflict, policy, backup and
// consent routes. The caller keeps the store open while the server runs.
func NewServer(st *store.Store, opts *Options) *Server { return newServer(st, nil, opts) }

// NewNodeServer returns a server of a node: every route. A daemon's node is started; an
// in-process one (Options.InProcess) starts when a route needs the network.
func NewNodeServer(n *node.Node, opts *Options) *Server { return newServer(n.Store(), n, opts) }

func newServer(st *store.Store, n *node.Node, opts *Options) *Server {
	s := &Server{st: st, n: n, mux: http.NewServeMux()}
	if opts != nil {
		s.opts = *opts
	}
	s.log = s.opts.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	for _, rt := range routes {
		s.mux.HandleFunc(rt.method+" "+Prefix+rt.path, s.handler(rt))
	}
	return s
}

// ServeHTTP serves one request. A request with an Origin header comes from a browser page
// and is refused: the socket's file mode guards it, not a cookie.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" {
		writeError(w, badRequest{"requests from a browser (with an Origin header) are refused"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Serve listens on the socket of dir (mode 0600) until ctx ends.
func (s *Server) Serve(ctx context.Context, dir string) error {
	path := SocketPath(dir)
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("serve control API: another daemon already answers on %s", path)
	}
	os.Remove(path) // a stale socket from a daemon that died
	// The data directory is 0700, so the moment before the chmod exposes nothing.
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("serve control API on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(path)
	return s.serve(ctx, ln)
}

// serve answers on ln until ctx ends (or ln fails).
func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-sctx.Done()
		tctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(tctx)
	}()
	err := hs.Serve(ln)
	stop()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// node is the served node, or an error for a bare store.
func (s *Server) node() (*node.Node, error) {
	if s.n == nil {
		return nil, badRequest{"this server serves a bare store: the route needs a node"}
	}
	return s.n, nil
}

// online starts the network of an in-process node (a daemon's runs already).
func (s *Server) online(ctx context.Context) (*node.Node, error) {
	n, err := s.node()
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// consent is the consent registry of the node, or over the bare store.
func (s *Server) consent() (*consent.Registry, error) {
	if s.n != nil {
		return s.n.Consent()
	}
	key, err := s.st.Keys().Subkey("consent")
	if err != nil {
		return nil, fmt.Errorf("consent key: %w", err)
	}
	return consent.New(s.st, key, nil)
}

// handler runs one route and writes its answer: the result as JSON, no content for a nil
// result, or the error.
func (s *Server) handler(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if rt.stream != nil {
			rt.stream(s, w, r)
			return
		}
		v, err := rt.call(s, r)
		switch {
		case err != nil:
			if !errors.Is(err, store.ErrNotFound) {
				s.log.Debug("local API request failed", "route", rt.method+" "+rt.path, "err", err)
			}
			writeError(w, err)
		case v == nil:
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, http.StatusOK, v)
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers with an error body whose codes let the client rebuild the sentinels.
func writeError(w http.ResponseWriter, err error) {
	err = withHint(err)
	writeJSON(w, statusOf(err), errorBody{Error: err.Error(), Codes: codesOf(err)})
}

// readJSON decodes a bounded request body into v.
func readJSON(r *http.Request, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(v); err != nil {
		return badRequest{"request body: " + err.Error()}
	}
	return nil
}
