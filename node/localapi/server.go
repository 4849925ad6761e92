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
	"time"

	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// SocketName is the control socket's file name inside the data directory.
const SocketName = "meshsync.sock"

// SocketPath is where the daemon of dir listens.
func SocketPath(dir string) string { return filepath.Join(dir, SocketName) }

// maxBody bounds every request body.
const maxBody = store.MaxValueSize + 64<<10

// Server serves the control API of one running node over a unix socket.
type Server struct {
	st   *store.Store
	ext  []func(*http.ServeMux)
	log  *slog.Logger
	mux  *http.ServeMux
	http *http.Server
}

// NewServer returns a server for the store of a running node. Handle adds the node's own
// routes before Serve.
func NewServer(st *store.Store, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{st: st, log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

// Handle registers an extra route (for example the node's status and sync endpoints).
func (s *Server) Handle(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

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
	s.http = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.http.Shutdown(sctx)
	}()
	err = s.http.Serve(ln)
	<-done
	os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// WriteError answers with an error body whose code lets the client rebuild the sentinel.
func WriteError(w http.ResponseWriter, err error) {
	code := codeOf(err)
	status := http.StatusInternalServerError
	switch code {
	case "not_found":
		status = http.StatusNotFound
	case "invalid", "reserved", "too_large", "ambiguous", "bad_backup", "other_mesh", "wrong_passphrase":
		status = http.StatusBadRequest
	case "stale":
		status = http.StatusConflict
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Error: err.Error(), Code: code})
}

// ReadJSON decodes a bounded request body into v.
func ReadJSON(r *http.Request, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", store.ErrInvalid, err)
	}
	return nil
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, map[string]any{"pid": os.Getpid(), "device": s.st.Device()})
	})
	m.HandleFunc("PUT /v1/record", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			WriteError(w, err)
			return
		}
		if q.Get("raw") == "1" {
			err = s.st.PutRaw(q.Get("collection"), q.Get("key"), body)
		} else {
			err = s.st.Put(q.Get("collection"), q.Get("key"), body)
		}
		if err != nil {
			WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("GET /v1/record", func(w http.ResponseWriter, r *http.Request) {
		rec, err := s.st.Get(r.URL.Query().Get("collection"), r.URL.Query().Get("key"))
		reply(w, rec, err)
	})
	m.HandleFunc("DELETE /v1/record", func(w http.ResponseWriter, r *http.Request) {
		err := s.st.Delete(r.URL.Query().Get("collection"), r.URL.Query().Get("key"))
		reply(w, struct{}{}, err)
	})
	m.HandleFunc("GET /v1/records", func(w http.ResponseWriter, r *http.Request) {
		recs, err := s.st.List(r.URL.Query().Get("collection"), r.URL.Query().Get("prefix"))
		reply(w, recs, err)
	})
	m.HandleFunc("GET /v1/conflicts", func(w http.ResponseWriter, r *http.Request) {
		cs, err := s.st.Conflicts().List()
		reply(w, cs, err)
	})
	m.HandleFunc("GET /v1/conflict", func(w http.ResponseWriter, r *http.Request) {
		c, err := s.st.Conflicts().Get(r.URL.Query().Get("id"))
		reply(w, c, err)
	})
	m.HandleFunc("POST /v1/conflict/resolve", func(w http.ResponseWriter, r *http.Request) {
		var req resolveRequest
		if err := ReadJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
		reply(w, struct{}{}, s.st.Conflicts().Resolve(req.ID, req.Pick, req.Value, req.Expect))
	})
	m.HandleFunc("GET /v1/history", func(w http.ResponseWriter, r *http.Request) {
		h, err := s.st.Conflicts().History(r.URL.Query().Get("collection"), r.URL.Query().Get("key"))
		reply(w, h, err)
	})
	m.HandleFunc("GET /v1/policies", func(w http.ResponseWriter, r *http.Request) {
		p, err := s.st.Policies().List()
		reply(w, p, err)
	})
	m.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		p, explicit, err := s.st.Policies().Get(r.URL.Query().Get("collection"))
		reply(w, policyReply{p, explicit}, err)
	})
	m.HandleFunc("PUT /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		var p resolve.Policy
		if err := ReadJSON(r, &p); err != nil {
			WriteError(w, err)
			return
		}
		reply(w, struct{}{}, s.st.Policies().Set(r.URL.Query().Get("collection"), p))
	})
	m.HandleFunc("POST /v1/verify", func(w http.ResponseWriter, r *http.Request) {
		rep, err := s.st.Verify()
		reply(w, rep, err)
	})
	m.HandleFunc("POST /v1/export", func(w http.ResponseWriter, r *http.Request) {
		var req exportRequest
		if err := ReadJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
		info, err := s.st.ExportFile(req.Path, req.Passphrase, nil)
		reply(w, info, err)
	})
	m.HandleFunc("POST /v1/import", func(w http.ResponseWriter, r *http.Request) {
		var req importRequest
		if err := ReadJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
		f, err := os.Open(req.Path)
		if err != nil {
			WriteError(w, fmt.Errorf("%w: open backup: %v", store.ErrInvalid, err))
			return
		}
		defer f.Close()
		st, err := s.st.Import(f, req.Passphrase, req.DryRun)
		reply(w, st, err)
	})
	m.HandleFunc("POST /v1/passwd", func(w http.ResponseWriter, r *http.Request) {
		var req passwdRequest
		if err := ReadJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
		reply(w, struct{}{}, s.st.Keys().ChangePassphrase(req.Old, req.New, nil))
	})
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		WriteError(w, err)
		return
	}
	WriteJSON(w, v)
}

type resolveRequest struct {
	ID     merkle.ID `json:"id"`
	Pick   int       `json:"pick"`
	Value  []byte    `json:"value"`
	Expect int       `json:"expect"`
}

type policyReply struct {
	Policy   resolve.Policy `json:"policy"`
	Explicit bool           `json:"explicit"`
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
