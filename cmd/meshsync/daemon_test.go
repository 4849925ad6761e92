package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// TestDaemonWaitsForStoreLock: a daemon that starts while a command holds the store waits
// for it (here a second), and when the command holds it longer than daemonLockWait, fails
// naming the process.
func TestDaemonWaitsForStoreLock(t *testing.T) {
	testmode.Enable()
	pass := []byte("pass")
	g := &globals{Dir: filepath.Join(t.TempDir(), "s")}
	held, err := store.Init(g.Dir, pass, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := g.daemonConfig(pass, netFlags{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LANOnly: true}, nil)
	open := func() (time.Duration, error) {
		start := time.Now()
		n, err := node.Open(context.Background(), cfg)
		if err == nil {
			n.Close()
		}
		return time.Since(start), err
	}

	// Released after a second: the daemon opens the store.
	time.AfterFunc(time.Second, func() { held.Close() })
	if took, err := open(); err != nil {
		t.Fatalf("open while a command holds the store for 1s: %v", err)
	} else if took < 900*time.Millisecond {
		t.Errorf("opened after %s, before the holder released the store", took)
	}

	// Held for longer: the error says which process holds it.
	held, err = store.Open(g.Dir, pass, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	took, err := open()
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("open while the store stays held: %v, want ErrLocked", err)
	}
	if took < daemonLockWait-time.Second/2 {
		t.Errorf("gave up after %s, want about %s", took, daemonLockWait)
	}
	t.Log(err)
	if want := fmt.Sprintf("process %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder (%s)", err, want)
	}
}
