package mobile

import (
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	fg := func(policy string, metered, charging bool) signals {
		return signals{policy: policy, foreground: true, metered: metered, charging: charging}
	}
	bg := func(s signals) signals { s.foreground = false; return s }
	tests := []struct {
		name   string
		s      signals
		run    bool
		reason string
	}{
		// The policies, in the foreground.
		{"always", fg(PolicyAlways, true, false), true, ""},
		{"paused", fg(PolicyPaused, false, true), false, reasonPolicy},
		{"wifi-only on wifi", fg(PolicyWifiOnly, false, false), true, ""},
		{"wifi-only metered", fg(PolicyWifiOnly, true, true), false, reasonMetered},
		{"charging-only charging", fg(PolicyChargingOnly, true, true), true, ""},
		{"charging-only on battery", fg(PolicyChargingOnly, false, false), false, reasonCharging},
		// The background: down unless background_sync or a SyncNow runs; the policy still rules.
		{"background", bg(fg(PolicyAlways, false, true)), false, reasonBackground},
		{"background sync", signals{policy: PolicyAlways, background: true}, true, ""},
		{"background SyncNow", signals{policy: PolicyAlways, bursts: 1}, true, ""},
		{"background SyncNow metered", signals{policy: PolicyWifiOnly, metered: true, bursts: 1}, false, reasonMetered},
		{"background paused", signals{policy: PolicyPaused, background: true}, false, reasonPolicy},
	}
	for _, tt := range tests {
		run, reason := decide(tt.s)
		if run != tt.run || reason != tt.reason {
			t.Errorf("%s: decide = %v %q, want %v %q", tt.name, run, reason, tt.run, tt.reason)
		}
	}
}

// fakeTimers replaces time.AfterFunc: the test fires the armed timer itself.
type fakeTimers struct {
	mu    sync.Mutex
	armed []*fakeTimer
}

type fakeTimer struct {
	d       time.Duration
	f       func()
	stopped bool
}

func (ft *fakeTimer) Stop() bool { ft.stopped = true; return true }

func (ft *fakeTimers) afterFunc(d time.Duration, f func()) timer {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	t := &fakeTimer{d: d, f: f}
	ft.armed = append(ft.armed, t)
	return t
}

// pending returns the armed, unstopped timers.
func (ft *fakeTimers) pending() []*fakeTimer {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var out []*fakeTimer
	for _, t := range ft.armed {
		if !t.stopped {
			out = append(out, t)
		}
	}
	return out
}

// TestSignalsDebounced: a signal that flaps back within the debounce changes nothing; one
// that holds takes the network down when its timer fires, and back up after.
func TestSignalsDebounced(t *testing.T) {
	n, err := Create(filepath.Join(t.TempDir(), "a"), testPass, "a", loopback)
	must(t, err)
	defer n.Close()
	ft := &fakeTimers{}
	n.afterFunc = ft.afterFunc
	must(t, n.SetSyncPolicy(PolicyWifiOnly))
	must(t, n.Start())
	waitNet(t, n, true, "")
	base := n.transitions.Load()

	for range 10 { // flapping between Wi-Fi and mobile data
		n.SetMetered(true)
		n.SetMetered(false)
	}
	n.SetForeground(false)
	n.SetForeground(true)
	if p := ft.pending(); len(p) != 0 {
		t.Fatalf("%d timers still armed after signals that came back", len(p))
	}
	if got := n.transitions.Load() - base; got != 0 {
		t.Fatalf("%d network transitions for flapping signals", got)
	}

	n.SetMetered(true)
	p := ft.pending()
	if len(p) != 1 || p[0].d != defaultDebounce {
		t.Fatalf("armed timers after a metered network: %+v", p)
	}
	if d := states(t, n); !d.Running || !d.Metered {
		t.Fatalf("the network went down before the debounce: %+v", d)
	}
	p[0].f()
	waitNet(t, n, false, reasonMetered)
	// Writes work while paused.
	must(t, n.Put("notes", "x", `1`))

	n.SetMetered(false)
	p = ft.pending()
	if len(p) != 1 {
		t.Fatalf("armed timers after Wi-Fi: %d", len(p))
	}
	p[0].f()
	waitNet(t, n, true, "")
	if got := n.transitions.Load() - base; got != 2 {
		t.Fatalf("%d network transitions, want 2 (down, up)", got)
	}
	if got := ok(t)(n.Get("notes", "x")); got != "1" {
		t.Fatalf("read %s after the pause", got)
	}

	// A stale timer (replaced before it ran) does nothing.
	n.SetForeground(false)
	stale := ft.pending()[0]
	n.SetForeground(true)
	stale.f()
	if d := states(t, n); !d.Running {
		t.Fatalf("a stale timer took the network down: %+v", d)
	}
}

// TestSyncPolicyPersists: the policy is kept in the store across Close and Open.
func TestSyncPolicyPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	n, err := Create(dir, testPass, "a", loopback)
	must(t, err)
	must(t, n.SetSyncPolicy(PolicyChargingOnly))
	must(t, n.Close())
	n, err = Open(dir, testPass, loopback)
	must(t, err)
	defer n.Close()
	if got := n.SyncPolicy(); got != PolicyChargingOnly {
		t.Fatalf("policy after reopen: %q", got)
	}
	must(t, n.Start())
	waitNet(t, n, false, reasonCharging)
	n.SetCharging(true) // the debounce is real here: 2 s
	waitNet(t, n, true, "")
	if err := n.SetSyncPolicy("sometimes"); code(err) != CodeInvalid {
		t.Fatalf("unknown policy: %v", err)
	}
}
