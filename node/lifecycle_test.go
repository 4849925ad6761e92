package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// Stop takes the network down and keeps the store; Start brings it up again on a new
// host, and the node syncs as before.
func TestStopStart(t *testing.T) {
	nodes := newMeshWith(t, 2, func(c *Config) {
		if testing.Verbose() {
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	})
	a, b := nodes[0], nodes[1]
	if err := a.Put("notes", "before", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b has the first write", func() error { return hasValue(b, "notes", "before", `{"v":1}`) })
	// a's new host listens on new ports: a dials b after Start, so it needs b's addresses
	// from b's device record first (a real device also finds b by mDNS, the DHT, or the
	// fixed port).
	eventually(t, "a knows b's addresses", func() error {
		if len(a.devices.Load().byPeer[b.id].Addrs) == 0 {
			return errors.New("no addresses of b yet")
		}
		return nil
	})

	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if a.Host() != nil || a.Addrs() != nil {
		t.Fatal("a stopped node still has a host")
	}
	if err := a.SyncNow(ctxT(t, time.Second)); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("SyncNow while stopped: %v, want ErrNotStarted", err)
	}
	// The store stays open: local writes work while the network is down.
	if err := a.Put("notes", "offline", []byte(`{"v":2}`)); err != nil {
		t.Fatalf("put while stopped: %v", err)
	}
	if err := hasValue(a, "notes", "offline", `{"v":2}`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := hasValue(b, "notes", "offline", `{"v":2}`); err == nil {
		t.Fatal("a write made while stopped reached b")
	}

	mustStart(t, a)
	eventually(t, "b has the write made while a was stopped", func() error { return hasValue(b, "notes", "offline", `{"v":2}`) })
	if err := b.Put("notes", "back", []byte(`{"v":3}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a hears b again", func() error { return hasValue(a, "notes", "back", `{"v":3}`) })
	if err := a.WaitSynced(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}

	// Close after Stop closes the store; Start after Close fails.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctxT(t, time.Second)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}

// Stop and Start, again and again, while other goroutines use the node: no race, no
// deadlock, and the node ends synced.
func TestStopStartChurn(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	eventually(t, "a knows b's addresses", func() error {
		if len(a.devices.Load().byPeer[b.id].Addrs) == 0 {
			return errors.New("no addresses of b yet")
		}
		return nil
	})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			a.Put("notes", fmt.Sprint("churn", i%10), []byte(fmt.Sprintf(`{"i":%d}`, i)))
			a.SyncNow(context.Background())
			_ = a.Addrs()
			_ = a.States()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for range 4 {
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		mustStart(t, a)
		time.Sleep(50 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	if err := a.Put("notes", "last", []byte(`{"v":"last"}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b has a's last write", func() error { return hasValue(b, "notes", "last", `{"v":"last"}`) })
}
