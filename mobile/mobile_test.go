package mobile

import (
	"encoding/json"
	"fmt"
	"github.com/meshsync/meshsync/node/view"
	"net"
	"path/filepath"
	"testing"
)

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pair creates A (started) and joins B to it with A's invite, exactly as two apps would.
// B is opened but not started.
func pair(t *testing.T) (a, b *Node) { return pairWith(t, loopback) }

// pairWith is pair with A's options.
func pairWith(t *testing.T, optsA string) (a, b *Node) {
	t.Helper()
	dir := t.TempDir()
	a, err := Create(filepath.Join(dir, "a"), testPass, "phone-a", optsA)
	must(t, err)
	t.Cleanup(func() { a.Close() })
	must(t, a.Start())
	code := ok(t)(a.Invite(600))
	b, err = Join(filepath.Join(dir, "b"), testPass, code, "phone-b", loopback)
	must(t, err)
	t.Cleanup(func() { b.Close() })
	return a, b
}

// TestAppFlow drives two embedded nodes the way an app does: create, pair by invite,
// write on one and receive it on the other through the Listener, pause sync with the
// policy, resume, resolve a conflict, close.
func TestAppFlow(t *testing.T) {
	a, b := pair(t)
	lb := &recListener{}
	b.SetListener(lb)
	must(t, b.Start())
	waitNet(t, b, true, "")

	// A write on A reaches B's listener, and B reads it.
	must(t, a.Put("notes", "n1", `{"text":"hello"}`))
	lb.waitChange(t, "notes/n1")
	if got := ok(t)(b.Get("notes", "n1")); got != `{"text":"hello"}` {
		t.Fatalf("B reads %s", got)
	}
	// The device list follows the device records of the same sync, which the node reloads
	// after it applied them: it can trail the first record by a moment.
	eventually(t, "B lists both devices", func() error {
		var devs []deviceDoc
		if err := json.Unmarshal([]byte(ok(t)(b.Devices())), &devs); err != nil {
			return err
		}
		if len(devs) != 2 {
			return fmt.Errorf("B lists %d devices, want 2: %+v", len(devs), devs)
		}
		return nil
	})

	// Paused on B: A cannot reach it, so A's write stays on A.
	must(t, b.SetSyncPolicy(PolicyPaused))
	waitNet(t, b, false, reasonPolicy)
	if got := states(t, b); !got.Paused || got.Policy != PolicyPaused {
		t.Fatalf("B's states while paused: %+v", got)
	}
	must(t, a.Put("notes", "n2", `{"text":"while paused"}`))
	if err := a.SyncNow(10); code(err) != CodeUnreachable {
		t.Fatalf("A's SyncNow while B is paused: %v, want %s", err, CodeUnreachable)
	}
	if _, err := b.Get("notes", "n2"); code(err) != CodeNotFound {
		t.Fatalf("B got n2 while paused: %v", err)
	}
	if lb.hasChange("notes/n2") {
		t.Fatal("B's listener heard of n2 while paused")
	}
	// B still reads and writes locally while paused.
	must(t, b.Put("notes", "b1", `{"text":"offline edit"}`))

	// Resume: the write arrives, and B's offline edit reaches A.
	must(t, b.SetSyncPolicy(PolicyAlways))
	waitNet(t, b, true, "")
	lb.waitChange(t, "notes/n2")
	eventually(t, "A gets B's offline edit", func() error {
		_, err := a.Get("notes", "b1")
		return err
	})

	// A conflict: both write the same record of a user-choice collection while apart.
	must(t, a.SetPolicy("todo", `{"strategy":"user","deadline_seconds":3600}`))
	eventually(t, "policy reaches B", func() error {
		var p view.Policy
		if err := json.Unmarshal([]byte(ok(t)(b.Policy("todo"))), &p); err != nil || !p.Explicit {
			return fmt.Errorf("policy on B: %+v %v", p, err)
		}
		return nil
	})
	must(t, b.SetSyncPolicy(PolicyPaused))
	waitNet(t, b, false, reasonPolicy)
	must(t, b.Put("todo", "x", `{"v":"b"}`))
	must(t, a.Put("todo", "x", `{"v":"a"}`))
	must(t, b.SetSyncPolicy(PolicyAlways))
	c := lb.waitConflict(t, "todo", "x")
	if !c.Open || len(c.Versions) != 2 {
		t.Fatalf("conflict on B: %+v", c)
	}
	var listed []view.Conflict
	must(t, json.Unmarshal([]byte(ok(t)(b.Conflicts())), &listed))
	if len(listed) != 1 || listed[0].ID != c.ID {
		t.Fatalf("B's Conflicts: %+v", listed)
	}
	pick := 1
	if string(c.Versions[1].Value) == `{"v":"b"}` {
		pick = 2
	}
	must(t, b.ResolveConflict(c.ID, pick, "", len(c.Versions)))
	eventually(t, "resolution reaches A", func() error {
		if cs := ok(t)(a.Conflicts()); cs != "[]" {
			return fmt.Errorf("A's conflicts: %s", cs)
		}
		if v := ok(t)(a.Get("todo", "x")); v != `{"v":"b"}` {
			return fmt.Errorf("A reads %s", v)
		}
		return nil
	})

	must(t, b.Close())
	if _, err := b.Get("notes", "n1"); code(err) != CodeClosed {
		t.Fatalf("Get after Close: %v", err)
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.overlap {
		t.Fatal("listener callbacks ran concurrently")
	}
	if len(lb.states) == 0 {
		t.Fatal("no OnState")
	}
}

// TestStopReleasesEverything: a stopped node holds no goroutine and no socket, even after
// it synced with a connected device; Start brings it back and it catches up.
func TestStopReleasesEverything(t *testing.T) {
	before := takeResources(t)
	// A keeps its port across restarts, as a phone on the default port does; B finds it
	// there.
	a, b := pairWith(t, fmt.Sprintf(`{"listen":["/ip4/127.0.0.1/tcp/%d"],"mdns":false}`, freePort(t)))
	must(t, b.Start())
	must(t, a.Put("notes", "n1", `1`))
	eventually(t, "B gets n1", func() error { _, err := b.Get("notes", "n1"); return err })

	must(t, a.Stop())
	must(t, b.Stop())
	if err := a.Put("notes", "n2", `2`); code(err) != CodeStopped {
		t.Fatalf("Put on a stopped node: %v, want %s", err, CodeStopped)
	}
	if d := states(t, b); !d.Stopped || d.Running || d.PausedReason != reasonStopped {
		t.Fatalf("states of a stopped node: %+v", d)
	}
	eventually(t, "goroutines and sockets back to where they were", func() error {
		// At most as many as before: a goroutine left over from an earlier test may have
		// ended meanwhile, but nothing the two nodes started may remain.
		if now := takeResources(t); now.goroutines > before.goroutines || now.sockets > before.sockets {
			return fmt.Errorf("before %+v, after Stop %+v", before, now)
		}
		return nil
	})
	if t.Failed() {
		t.Log(goroutineDump())
	}

	// Start again: both reopen, reconnect and sync what was written in between.
	must(t, a.Start())
	must(t, a.Put("notes", "n3", `3`))
	must(t, b.Start())
	eventually(t, "B gets n3 after restart", func() error { _, err := b.Get("notes", "n3"); return err })
}

// TestPairShortCode: InviteShort on one phone, JoinShort with the code (and one of the
// addresses, as the LAN is off in tests) on the other; a wrong code first is refused.
func TestPairShortCode(t *testing.T) {
	dir := t.TempDir()
	a, err := Create(filepath.Join(dir, "a"), testPass, "phone-a", loopback)
	must(t, err)
	t.Cleanup(func() { a.Close() })
	must(t, a.Start())
	var inv struct {
		Code    string   `json:"code"`
		Expires string   `json:"expires"`
		Addrs   []string `json:"addrs"`
	}
	must(t, json.Unmarshal([]byte(ok(t)(a.InviteShort(0))), &inv))
	if inv.Code == "" || inv.Expires == "" || len(inv.Addrs) == 0 {
		t.Fatalf("InviteShort: %+v", inv)
	}
	if _, err := JoinShort(filepath.Join(dir, "x"), testPass, "42-abash-abduct-abort", inv.Addrs[0], "thief", loopback); code(err) != CodeInviteRefused {
		t.Fatalf("a wrong short code: %v, want %s", err, CodeInviteRefused)
	}
	if _, err := JoinShort(filepath.Join(dir, "y"), testPass, "3QQ1K6evhtY8HyuT5GS8k", "", "y", loopback); code(err) != CodeBadInvite {
		t.Fatalf("a long code to JoinShort: %v, want %s", err, CodeBadInvite)
	}
	b, err := JoinShort(filepath.Join(dir, "b"), testPass, inv.Code, inv.Addrs[0], "phone-b", loopback)
	must(t, err)
	t.Cleanup(func() { b.Close() })
	must(t, b.Start())
	must(t, a.Put("notes", "n1", `{"text":"paired by voice"}`))
	eventually(t, "B reads A's note", func() error {
		_, err := b.Get("notes", "n1")
		return err
	})
}
