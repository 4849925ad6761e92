package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
)

// TestOneErrorTable: a command fails with the same line and exit code whether a daemon
// serves the store or the command serves it in its own process: errors keep their
// sentinels through the local API, and one hint table names the fix.
func TestOneErrorTable(t *testing.T) {
	testmode.Enable()
	t.Setenv("MESHSYNC_PASSPHRASE", "test passphrase")
	dir := filepath.Join(t.TempDir(), "store")
	cli := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"--dir", dir}, args...), strings.NewReader(""), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	if code, _, stderr := cli("init", "--name", "laptop"); code != exitOK {
		t.Fatalf("init: %s", stderr)
	}
	_, self, _ := cli("--json", "status")
	deviceID := between(self, `"device":{"id":"`, `"`)

	cases := []struct {
		args []string
		code int
		want string // in the error line
	}{
		// store
		{[]string{"get", "notes", "missing"}, exitFailure, "notes/missing: record not found"},
		{[]string{"put", "_x", "k", "1"}, exitUsage, "reserved"},
		{[]string{"put", "notes", "bad", "{"}, exitUsage, "not valid JSON"},
		{[]string{"conflicts", "show", "abcdef"}, exitFailure, "not found"},
		// consent
		{[]string{"consent", "revoke", "zzzzzz"}, exitFailure, "see `meshsync consent ls` and `meshsync consent pending`"},
		// node
		{[]string{"devices", "rm", deviceID}, exitUsage, "remove a device from another device of the mesh"},
	}
	check := func(mode string) {
		for _, tc := range cases {
			code, stdout, stderr := cli(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("%s: meshsync %s: exit %d, stdout %q, stderr %q; want exit %d and %q",
					mode, strings.Join(tc.args, " "), code, stdout, stderr, tc.code, tc.want)
			}
		}
	}
	check("no daemon")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := node.Open(ctx, node.Config{Dir: dir, Passphrase: []byte("test passphrase"), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LANOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- localapi.NewNodeServer(n, nil).Serve(sctx, dir) }()
	defer func() { stop(); <-served }()
	for i := 0; ; i++ {
		c, err := localapi.Dial(ctx, dir)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The node holds the store now: these commands can only have gone through the daemon.
	check("daemon")
}

// between is the text of s after the first start, up to the next end.
func between(s, start, end string) string {
	_, after, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(after, end)
	return v
}

// TestJoinErrorsExitCodes: join's three failures each have their own hint and exit code
// (issue 19): unreachable 3, timed out 4, refused 1.
func TestJoinErrorsExitCodes(t *testing.T) {
	g := &globals{}
	for _, c := range []struct {
		err  error
		code int
		hint string
	}{
		{fmt.Errorf("join: %w: tried /ip4/10.0.0.2/tcp/4001: dial refused", node.ErrInviterUnreachable), exitUnreachable, "invite was not used"},
		{fmt.Errorf("join: %w: stopped answering", node.ErrPairTimeout), exitTimeout, "try again"},
		{fmt.Errorf("join: %w: wrong invite code", node.ErrInviteRefused), exitFailure, "works once"},
	} {
		msg, code := describe(c.err, g)
		if code != c.code || !strings.Contains(msg, c.hint) {
			t.Errorf("%v: exit %d, %q; want exit %d and a hint with %q", c.err, code, msg, c.code, c.hint)
		}
	}
}
