package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// TokenTTL is how long a login link from LoginURL stays usable (once).
const TokenTTL = 10 * time.Minute

// SessionTTL is how long a logged-in browser stays logged in.
const SessionTTL = 7 * 24 * time.Hour

const (
	maxTokens   = 32 // login links not yet used; the oldest goes first
	maxSessions = 32 // logged-in browsers; the oldest goes first
	csrfField   = "csrf"
	csrfHeader  = "X-CSRF-Token"
)

// flash is a one-shot message shown on the next page a session renders.
type flash struct {
	Error bool
	Text  string
}

type session struct {
	csrf    string
	created time.Time
	flash   *flash
}

// auth owns the login tokens and the sessions.
type auth struct {
	mu       sync.Mutex
	tokens   map[string]time.Time // token -> expiry
	sessions map[string]*session  // cookie value -> session
	now      func() time.Time
}

func newAuth() *auth {
	return &auth{tokens: map[string]time.Time{}, sessions: map[string]*session{}, now: time.Now}
}

// secret is 32 random bytes, URL-safe.
func secret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// token mints a one-time login token.
func (a *auth) token() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for t, exp := range a.tokens {
		if !now.Before(exp) {
			delete(a.tokens, t)
		}
	}
	for len(a.tokens) >= maxTokens {
		var oldest string
		for t, exp := range a.tokens {
			if oldest == "" || exp.Before(a.tokens[oldest]) {
				oldest = t
			}
		}
		delete(a.tokens, oldest)
	}
	t := secret()
	a.tokens[t] = now.Add(TokenTTL)
	return t
}

// login trades a token for a new session id; false when the token is unknown, used or
// expired.
func (a *auth) login(token string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.tokens[token]
	if !ok {
		return "", false
	}
	delete(a.tokens, token)
	now := a.now()
	if !now.Before(exp) {
		return "", false
	}
	for len(a.sessions) >= maxSessions {
		var oldest string
		for id, s := range a.sessions {
			if oldest == "" || s.created.Before(a.sessions[oldest].created) {
				oldest = id
			}
		}
		delete(a.sessions, oldest)
	}
	id := secret()
	a.sessions[id] = &session{csrf: secret(), created: now}
	return id, true
}

// session is the session of id, or nil.
func (a *auth) session(id string) *session {
	if id == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[id]
	if s != nil && !a.now().Before(s.created.Add(SessionTTL)) {
		delete(a.sessions, id)
		return nil
	}
	return s
}

// csrfOK reports whether r carries the session's CSRF token (form field or header).
func (a *auth) csrfOK(s *session, r *http.Request) bool {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// setFlash leaves a message for the session's next page.
func (a *auth) setFlash(s *session, f flash) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s.flash = &f
}

// takeFlash returns and clears the session's message.
func (a *auth) takeFlash(s *session) *flash {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}
