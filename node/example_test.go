package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/meshsync/meshsync/node"
)

// Two devices on loopback: the first creates the mesh and invites the second, which
// joins with the code; a write on one is readable on the other.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, _ := os.MkdirTemp("", "meshsync-example")
	defer os.RemoveAll(dir)
	cfg := func(name string) node.Config {
		return node.Config{
			Dir:         filepath.Join(dir, name),
			Passphrase:  []byte("example passphrase"),
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
			LANOnly:     true,
		}
	}

	laptop, err := node.Init(ctx, cfg("laptop"), "laptop")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer laptop.Close()
	laptop.Start(ctx)
	code, _, _ := laptop.Invite(10 * time.Minute)

	phone, err := node.Join(ctx, cfg("phone"), code, "phone")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer phone.Close()
	phone.Start(ctx)

	laptop.Put("notes", "today", []byte(`{"text":"hello"}`))
	for ctx.Err() == nil {
		if rec, err := phone.Get("notes", "today"); err == nil {
			fmt.Println(string(rec.Value))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Output:
	// {"text":"hello"}
}
