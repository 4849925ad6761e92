package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"
)

// page is what every template gets.
type page struct {
	Title string
	Nav   string // the nav entry to mark current
	CSRF  string
	Flash *flash
	// Live marks a view that the script refreshes when the node reports a change.
	Live bool
	Data any
}

var funcs = template.FuncMap{
	"when":    when,
	"ago":     ago,
	"pretty":  prettyJSON,
	"short":   short,
	"pending": pending,
	"qr":      qrDataURI,
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":    strings.Join,
	"add":     func(a, b int) int { return a + b },
	"minutes": func(d time.Duration) string { return fmt.Sprintf("%.0f minutes", d.Minutes()) },
}

// parsePages parses each page template together with the layout.
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", base, err)
		}
		pages[strings.TrimSuffix(base, ".html")] = t
	}
	return pages, nil
}

// render writes a page; a live refresh (X-Live) leaves the session's message for later.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	sess := sessionOf(r)
	p.CSRF = sess.csrf
	if r.Header.Get("X-Live") == "" {
		p.Flash = s.auth.takeFlash(sess)
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		s.log.Error("web page: render", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail shows an error on the page named by back (a path of this server).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, back string, err error) {
	s.auth.setFlash(sessionOf(r), flash{Error: true, Text: err.Error()})
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// done shows a confirmation on the page named by back.
func (s *Server) done(w http.ResponseWriter, r *http.Request, back, msg string) {
	s.auth.setFlash(sessionOf(r), flash{Text: msg})
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// when is a time as people read it here, or "never".
func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// ago is how long ago t was, roughly.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "in " + (-d).Round(time.Second).String()
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// prettyJSON indents a JSON value; raw bytes show as their size and base64.
func prettyJSON(v json.RawMessage, raw []byte) string {
	if v == nil {
		if raw == nil {
			return ""
		}
		return fmt.Sprintf("(%d raw bytes) %s", len(raw), base64.StdEncoding.EncodeToString(raw))
	}
	var b bytes.Buffer
	if err := json.Indent(&b, v, "", "  "); err != nil {
		return string(v)
	}
	return b.String()
}

// short is the first 8 characters of an id.
func short(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// pending shows a pending count, -1 being unknown.
func pending(n int64) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}

// qrDataURI is a PNG QR code of s as a data URI (the library `meshsync pair` uses for its
// terminal QR code).
func qrDataURI(s string) template.URL {
	png, err := qrcode.Encode(s, qrcode.Low, 320)
	if err != nil {
		return ""
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
}
