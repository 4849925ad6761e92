package localapi

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/store"
)

// testNode is a started loopback node in a fresh directory, unlocked with pass.
func testNode(t *testing.T, name string, pass []byte) node.Config {
	t.Helper()
	return node.Config{Dir: filepath.Join(t.TempDir(), name), Passphrase: pass,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LANOnly: true}
}

// TestRemoveDeviceAsksPassphrase: the local API removes a device only with the store's
// passphrase (a stolen, unlocked device must not evict the owner's others); a wrong one is
// store.ErrWrongPassphrase over the socket and removes nothing.
func TestRemoveDeviceAsksPassphrase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pass := []byte("laptop pass")
	a, err := node.Init(ctx, testNode(t, "a", pass), "laptop")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	code, _, err := a.Invite(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := node.Join(ctx, testNode(t, "b", []byte("phone pass")), code, "phone")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	srv := NewNodeServer(a, nil)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, a.Store().Dir()) }()
	defer func() { stop(); <-done }()
	var c *Client
	for i := 0; ; i++ {
		if c, err = Dial(ctx, a.Store().Dir()); err == nil {
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer c.Close()

	removed := func() bool {
		devs, err := c.Devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			if d.ID == b.DeviceID() {
				return d.Removed
			}
		}
		t.Fatalf("device %s not listed", b.DeviceID())
		return false
	}
	for _, wrong := range [][]byte{nil, []byte("phone pass"), []byte("laptop pas")} {
		if err := c.RemoveDevice(ctx, b.DeviceID(), wrong); !errors.Is(err, store.ErrWrongPassphrase) {
			t.Errorf("remove with passphrase %q: %v, want ErrWrongPassphrase", wrong, err)
		}
		if removed() {
			t.Fatalf("a wrong passphrase (%q) removed the device", wrong)
		}
	}
	// Node errors keep their sentinels through the socket too.
	if err := c.RemoveDevice(ctx, "no-such-device", pass); !errors.Is(err, node.ErrUnknownDevice) {
		t.Errorf("remove an unknown device: %v, want node.ErrUnknownDevice", err)
	}
	if err := c.RemoveDevice(ctx, a.DeviceID(), pass); !errors.Is(err, node.ErrSelf) {
		t.Errorf("remove this device: %v, want node.ErrSelf", err)
	}
	if err := c.RemoveDevice(ctx, b.DeviceID(), pass); err != nil {
		t.Fatal(err)
	}
	if !removed() {
		t.Error("the right passphrase did not remove the device")
	}
}
