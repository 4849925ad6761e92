package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// chromium finds a Chromium or Chrome to drive: $MESHSYNC_CHROMIUM, else the usual names.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MESHSYNC_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("browser test skipped: no chromium in PATH (install it: apt-get install chromium; .ci/run does so when it runs as root), or set MESHSYNC_CHROMIUM")
	return ""
}

// tab is one headless browser tab on a daemon's web page.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string // http://127.0.0.1:PORT
	shots string // where screenshots go
}

// openBrowser starts headless chromium and logs in with a link from `meshsync ui`. Any
// script error on the page fails the test; confirmations are accepted as a user would.
func openTab(t *testing.T, login, shots string) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", chromium(t), err)
	}
	go func() {
		for ev, err := range chromedp.Events(ctx, cdpruntime.ExceptionThrown) {
			if err != nil {
				return
			}
			t.Errorf("script error on the page: %s", ev.ExceptionDetails.Text)
		}
	}()
	go func() {
		for _, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			go chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
				return err
			}))
		}
	}()
	b := &tab{t: t, ctx: ctx, base: login[:strings.Index(login, "/?token=")], shots: shots}
	b.do("log in", chromedp.Navigate(login))
	return b
}

// do runs steps, failing the test with what was being done.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.t.Logf("%s page: %s", time.Now().Format("15:04:05.000"), what)
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

// fail ends the test with what was being done and the page as it stands.
func (b *tab) fail(what string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	b.t.Fatalf("%s: %v\npage:\n%s", what, err, html)
}

// nav runs steps that load a page (a click on a link or a form's button) and waits until
// the page has loaded, which must answer 200.
func (b *tab) nav(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.t.Logf("%s page: %s", time.Now().Format("15:04:05.000"), what)
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err == nil && resp.Status != 200 {
		err = fmt.Errorf("%s answered %d %s", resp.URL, resp.Status, resp.StatusText)
	}
	if err != nil {
		b.fail(what, err)
	}
}

// text is the text of the first element sel matches.
func (b *tab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// waitFor waits until a JavaScript expression is true on the page: the live views
// change without a reload.
func waitFor(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(90*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))
}

// flashSays waits for the page's message to contain s.
func flashSays(s string) chromedp.Action[chromedp.Void] {
	q, _ := json.Marshal(s)
	return waitFor(fmt.Sprintf(`Array.from(document.querySelectorAll(".flash")).some(e => e.textContent.includes(%s))`, q))
}

// a11yCheck lists what a basic accessibility check finds wrong on the page: a form
// control without a label, an image without alt text, a button without a name, text
// whose contrast with its background is under WCAG AA (4.5:1, 3:1 for large text), no
// language, no h1.
const a11yCheck = `(() => {
  const out = [];
  const name = el => (el.id || el.name || el.tagName) + " " + (el.textContent || "").trim().slice(0, 30);
  if (!document.documentElement.lang) out.push("no lang on <html>");
  if (document.querySelectorAll("h1").length !== 1) out.push("not exactly one h1");
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label")) out.push("no label: " + name(el));
  }
  for (const el of document.querySelectorAll("a[href], button, input, select, textarea")) if (el.type !== "hidden" && (el.tabIndex < 0 || el.disabled)) out.push("not reachable by keyboard: " + name(el));
  for (const el of document.querySelectorAll("img")) if (!el.alt) out.push("no alt: " + el.src.slice(0, 40));
  for (const el of document.querySelectorAll("button, a")) if (!el.textContent.trim() && !el.getAttribute("aria-label")) out.push("no name: " + el.outerHTML.slice(0, 60));
  const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3); } return [255, 255, 255]; };
  for (const el of document.querySelectorAll("body *")) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const st = getComputedStyle(el);
    if (st.visibility === "hidden" || st.display === "none" || el.closest(".skip, .sr")) continue;
    const a = lum(rgb(st.color).slice(0, 3)), b = lum(bg(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && Number(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) out.push("contrast " + ratio.toFixed(2) + ": " + name(el));
  }
  return out;
})()`

// shot writes a full-page screenshot for a reviewer, after a basic accessibility check
// of the view.
func (b *tab) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](a11yCheck))
	cancel()
	if err != nil {
		b.t.Fatalf("accessibility check of %s: %v", name, err)
	}
	for _, p := range problems {
		b.t.Errorf("accessibility of the %s view: %s", name, p)
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// screenshotDir is $MESHSYNC_SCREENSHOTS, else the test's artifact directory (kept with
// `go test -artifacts`).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("MESHSYNC_SCREENSHOTS")
	if dir == "" {
		dir = t.ArtifactDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// eventually polls cond until it holds or a minute passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
	}
	t.Fatalf("%s: still %s after a minute", what, last)
}

// TestWebPageInBrowser drives the daemon's web page in headless chromium against two real
// daemons on loopback, as a new user would: pair a second device by reading the code off
// the page, edit a record and see it arrive on the other daemon, make a collection wait
// for the user, resolve a conflict by clicking, grant and revoke a share, and remove a
// device after a confirmation that names it. Screenshots of each view are kept.
func TestWebPageInBrowser(t *testing.T) {
	h := daemonHarness(t, "test passphrase")
	chromium(t)
	ctx := context.Background()
	a, bdir := h.dir("a"), h.dir("b")
	h.cli(a, "init", "--name", "laptop")
	da := h.start(a)
	var login uiOutput
	if err := json.Unmarshal([]byte(h.cli(a, "--json", "ui", "--no-open")), &login); err != nil {
		t.Fatal(err)
	}
	br := openTab(t, login.URL, screenshotDir(t))
	if got := br.text("#self-name"); got != "laptop" {
		t.Fatalf("devices view names this device %q, want laptop", got)
	}

	// Pair the phone with the code read off the page.
	click := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
	br.nav("open the pairing view", click(`nav a[href="/pair"]`))
	br.nav("create an invite", click("#make-invite"))
	code := br.text("#invite-code")
	br.do("the QR code and the countdown", waitFor(`document.querySelector(".invite img").naturalWidth > 0`),
		waitFor(`/^in \d+:\d\d$/.test(document.querySelector("[data-countdown]").textContent)`))
	br.shot("pair")
	h.cli(bdir, "join", code, "--name", "phone")

	// The devices view shows the phone, then, once its daemon runs, up to date: live, with
	// no reload (the mark set on this page survives).
	br.nav("devices view", click(`nav a[href="/"]`))
	br.do("the phone is listed", waitFor(`!!document.querySelector('tr[data-device="phone"]')`), chromedp.Evaluate[chromedp.Void](`window.sameLoad = true`))
	db := h.start(bdir)
	br.do("the phone turns up to date", waitFor(`window.sameLoad && !!document.querySelector('tr[data-device="phone"] .s-up-to-date')`))
	br.shot("devices")
	br.nav("sync now, from the keyboard", chromedp.Focus(chromedp.CSS("#sync-now")), chromedp.KeyEvent(kb.Enter))
	br.do("syncing", flashSays("Syncing with every reachable device"))
	br.do("phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	br.shot("devices-phone")
	br.do("desktop width", chromedp.EmulateViewport(1280, 900))

	// Write a record on the page, edit it, and see the edit arrive on the phone's daemon.
	br.nav("records view", click(`nav a[href="/records"]`))
	br.do("fill in a new record", chromedp.SendKeys(chromedp.CSS("#new-collection"), "notes"), chromedp.SendKeys(chromedp.CSS("#new-key"), "groceries"),
		chromedp.SetValue(chromedp.CSS("#new-value"), `{"milk": 2, "eggs": 12}`))
	br.nav("save it", click("#new-rec ~ form button, form[action='/record'] button"))
	br.do("saved", flashSays("Saved notes/groceries"))
	br.do("edit it", chromedp.SetValue(chromedp.CSS("#edit-value"), `{"milk": 3, "eggs": 12}`))
	br.nav("save the edit", click("#save"))
	br.do("the edit shows", waitFor(`document.querySelector("#value").textContent.includes('"milk": 3')`))
	br.shot("record")
	getOn := func(d *crashDaemon) (string, error) {
		r, err := d.client.Get(ctx, "notes", "groceries")
		return string(r.Value), err
	}
	eventually(t, "the edit on the phone", func() (bool, string) {
		v, err := getOn(db)
		return v == `{"eggs":12,"milk":3}`, fmt.Sprint(v, err)
	})
	br.nav("search by key prefix", chromedp.Navigate(br.base+"/records?collection=notes&prefix=gro"))
	br.do("found", waitFor(`document.querySelector("#records").textContent.includes("groceries")`))
	br.shot("records")

	// Notes wait for the user on conflicts: set on the page, for every device.
	br.nav("policies view", click(`nav a[href="/policies"]`))
	br.do("fill in the policy", chromedp.SendKeys(chromedp.CSS("#pol-collection"), "notes"), chromedp.SetValue(chromedp.CSS("#strategy"), "user"))
	br.nav("set it", click("#set-policy"))
	br.do("set", flashSays("resolves conflicts by user"))
	br.shot("policies")
	eventually(t, "the policy on the phone", func() (bool, string) {
		p, err := db.client.Policy(ctx, "notes")
		return p.Strategy == "user", fmt.Sprint(p, err)
	})

	// A conflict: both edit while apart.
	db.stop()
	h.cli(bdir, "put", "notes", "groceries", `{"milk": 5, "eggs": 12}`)
	if err := da.client.Put(ctx, "notes", "groceries", []byte(`{"milk": 4, "eggs": 12}`)); err != nil {
		t.Fatal(err)
	}
	br.nav("conflicts view", click(`nav a[href="/conflicts"]`))
	br.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.sameLoad = true`))
	db = h.start(bdir)
	br.do("the conflict appears live", waitFor(`window.sameLoad && !!document.querySelector("#conflicts a")`))
	br.shot("conflicts")
	br.nav("open it", click("#conflicts a"))
	if got := br.text("#versions"); !strings.Contains(got, "laptop") || !strings.Contains(got, "phone") || !strings.Contains(got, `"milk": 5`) {
		t.Fatalf("the versions side by side do not name both devices and values:\n%s", got)
	}
	br.shot("conflict")
	br.do("phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	br.shot("conflict-phone")
	br.do("desktop width", chromedp.EmulateViewport(1280, 900))
	br.nav("keep the phone's version", click(`button.pick[data-device="phone"]`))
	br.do("resolved", flashSays("Conflict resolved"))
	for _, d := range []*crashDaemon{da, db} {
		eventually(t, "the phone's value on "+d.dir, func() (bool, string) {
			v, err := getOn(d)
			cs, _ := d.client.Conflicts(ctx)
			return v == `{"eggs":12,"milk":5}` && len(cs) == 0, fmt.Sprint(v, err, len(cs), " conflicts")
		})
	}
	br.do("the losing value in the history", waitFor(`document.querySelector("#history").textContent.includes('"milk": 4')`))

	// Another conflict, closed with a merged value written on the page.
	db.stop()
	h.cli(bdir, "put", "notes", "groceries", `{"milk": 6, "eggs": 12}`)
	if err := da.client.Put(ctx, "notes", "groceries", []byte(`{"milk": 5, "eggs": 24}`)); err != nil {
		t.Fatal(err)
	}
	db = h.start(bdir)
	br.do("the second conflict appears", waitFor(`!!document.querySelector("#conflicts a")`))
	br.nav("open it", click("#conflicts a"))
	br.do("write the merged value", chromedp.SetValue(chromedp.CSS("#merged"), `{"milk": 6, "eggs": 24}`))
	br.nav("save the merged value", click("#merge-save"))
	br.do("merged", flashSays("Conflict resolved"))
	for _, d := range []*crashDaemon{da, db} {
		eventually(t, "the merged value on "+d.dir, func() (bool, string) {
			v, err := getOn(d)
			cs, _ := d.client.Conflicts(ctx)
			return v == `{"eggs":24,"milk":6}` && len(cs) == 0, fmt.Sprint(v, err, len(cs), " conflicts")
		})
	}

	// Grant a share with field rules, then revoke it from the page.
	dest := testPeer(t).String()
	br.nav("consent view", click(`nav a[href="/consent"]`))
	br.do("fill in a grant", chromedp.SendKeys(chromedp.CSS("#g-collection"), "notes"), chromedp.SendKeys(chromedp.CSS("#g-purpose"), "research"),
		chromedp.SendKeys(chromedp.CSS("#g-destination"), dest), chromedp.SetValue(chromedp.CSS("#g-fields"), "milk=keep\neggs=generalize:10"))
	br.nav("grant", click("#make-grant"))
	br.do("granted", flashSays("Granted notes"), chromedp.WaitVisible(chromedp.CSS("#grants .g-active")))
	br.shot("consent")
	br.nav("revoke (and confirm)", click("#grants button.revoke"))
	br.do("revoked", flashSays("revoked"), chromedp.WaitVisible(chromedp.CSS("#grants .g-revoked")))
	for _, d := range []*crashDaemon{da, db} {
		eventually(t, "the revocation on "+d.dir, func() (bool, string) {
			gs, err := d.client.Consent().Grants(ctx)
			return err == nil && len(gs) == 1 && gs[0].IsRevoked() && gs[0].Destination == dest, fmt.Sprint(gs, err)
		})
	}

	// Remove the phone: the confirmation names it and asks for the passphrase.
	br.nav("devices view", click(`nav a[href="/"]`))
	br.nav("remove the phone", click(`tr[data-device="phone"] a`))
	if got := br.text("#remove-name"); got != "phone" {
		t.Fatalf("the confirmation names %q, want phone", got)
	}
	br.shot("remove")
	br.do("type a wrong passphrase", chromedp.SendKeys(chromedp.CSS("#passphrase"), "not it"))
	br.nav("confirm", click("#confirm-remove"))
	br.do("refused", flashSays("wrong passphrase"))
	br.do("type the passphrase", chromedp.SendKeys(chromedp.CSS("#passphrase"), "test passphrase"))
	br.nav("confirm", click("#confirm-remove"))
	br.do("removed", flashSays("phone was removed"))
	devs, err := da.client.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Name == "phone" && !d.Removed {
			t.Errorf("the phone is still a member after its removal on the page")
		}
	}
}
