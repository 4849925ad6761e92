package mobile

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/node/view"
)

// Stores made by the tests use a cheap KDF: they open in a millisecond.
func init() { testmode.Enable() }

const testPass = "correct horse battery staple"

// loopback keeps test nodes on 127.0.0.1 with random ports and no mDNS.
const loopback = `{"listen":["/ip4/127.0.0.1/tcp/0"],"mdns":false}`

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ok returns a function that returns a call's string, failing the test on its error:
// ok(t)(n.Get(c, k)).
func ok(t testing.TB) func(string, error) string {
	return func(s string, err error) string {
		t.Helper()
		must(t, err)
		return s
	}
}

// code returns the code of err's message, as an app would read it.
func code(err error) string {
	if err == nil {
		return ""
	}
	return ErrorCode(err.Error())
}

// eventually polls fn until it returns nil or 30 seconds pass.
func eventually(t testing.TB, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// states decodes n.States.
func states(t testing.TB, n *Node) statesDoc {
	t.Helper()
	var d statesDoc
	js, err := n.States()
	must(t, err)
	must(t, json.Unmarshal([]byte(js), &d))
	return d
}

// waitNet waits until n's network is up (running) or down with reason.
func waitNet(t testing.TB, n *Node, running bool, reason string) {
	t.Helper()
	eventually(t, "network state", func() error {
		d := states(t, n)
		if d.Running != running || d.PausedReason != reason {
			return errors.New("running=" + boolStr(d.Running) + " reason=" + d.PausedReason)
		}
		return nil
	})
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// recListener records the events of a Listener, as an app's callback would.
type recListener struct {
	mu        sync.Mutex
	changes   []string // "collection/key" (+" deleted")
	states    []string
	conflicts []string
	calls     int // callbacks running at once, to catch concurrent calls
	overlap   bool
}

var _ Listener = (*recListener)(nil)

func (l *recListener) enter() func() {
	l.mu.Lock()
	l.calls++
	if l.calls > 1 {
		l.overlap = true
	}
	l.mu.Unlock()
	return func() { l.mu.Lock(); l.calls--; l.mu.Unlock() }
}

func (l *recListener) OnChange(collection, key string, deleted, local bool) {
	defer l.enter()()
	s := collection + "/" + key
	if deleted {
		s += " deleted"
	}
	l.mu.Lock()
	l.changes = append(l.changes, s)
	l.mu.Unlock()
}

func (l *recListener) OnState(stateJSON string) {
	defer l.enter()()
	l.mu.Lock()
	l.states = append(l.states, stateJSON)
	l.mu.Unlock()
}

func (l *recListener) OnConflict(conflictJSON string) {
	defer l.enter()()
	l.mu.Lock()
	l.conflicts = append(l.conflicts, conflictJSON)
	l.mu.Unlock()
}

// waitChange waits for an OnChange of collection/key.
func (l *recListener) waitChange(t testing.TB, name string) {
	t.Helper()
	eventually(t, "OnChange "+name, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, c := range l.changes {
			if c == name {
				return nil
			}
		}
		return errors.New("not seen; seen: " + strings.Join(l.changes, ", "))
	})
}

// hasChange reports whether OnChange reported name.
func (l *recListener) hasChange(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.changes {
		if c == name {
			return true
		}
	}
	return false
}

// waitConflict waits for an OnConflict of collection/key and returns its document.
func (l *recListener) waitConflict(t testing.TB, collection, key string) view.Conflict {
	t.Helper()
	var found view.Conflict
	eventually(t, "OnConflict "+collection+"/"+key, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, js := range l.conflicts {
			var d view.Conflict
			if json.Unmarshal([]byte(js), &d) == nil && d.Collection == collection && d.Key == key && len(d.Versions) > 1 {
				found = d
				return nil
			}
		}
		return errors.New("not seen")
	})
	return found
}

// resources counts what a process holds that a stopped node must give back.
type resources struct {
	goroutines int
	sockets    int
}

func takeResources(t testing.TB) resources {
	t.Helper()
	return resources{goroutines: runtime.NumGoroutine(), sockets: countSockets(t)}
}

// countSockets counts this process's open socket descriptors.
func countSockets(t testing.TB) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd: cannot count sockets")
	}
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// goroutineDump is every goroutine's stack, for a failure message.
func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
