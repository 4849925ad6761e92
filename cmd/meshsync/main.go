// Command meshsync keeps a person's records in sync across their own devices with no
// server in the middle. See README.md for a tour; `meshsync --help` lists the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/meshsync/meshsync/node"
)

// Exit codes. Scripts depend on them.
const (
	exitOK      = 0 // success
	exitFailure = 1 // failure, including "not found"
	exitUsage   = 2 // bad usage or bad input
	// exitUnreachable: a device to talk to could not be reached (join: the inviting device).
	exitUnreachable = 3
	// exitTimeout: a device was reached but did not finish in time (join: pairing).
	exitTimeout = 4
)

// cli is the whole command line. Each command lives in a file of its own with its flags in
// its own struct.
type cli struct {
	globals

	Init      initCmd      `cmd:"" help:"Create a new mesh on this device."`
	Put       putCmd       `cmd:"" help:"Write a record (a JSON value)."`
	Get       getCmd       `cmd:"" help:"Print a record's value."`
	Del       delCmd       `cmd:"" help:"Delete a record."`
	Ls        lsCmd        `cmd:"" help:"List records."`
	Passwd    passwdCmd    `cmd:"" help:"Change the passphrase (re-encrypts nothing)."`
	Verify    verifyCmd    `cmd:"" help:"Check every record and index of the store."`
	Compact   compactCmd   `cmd:"" help:"Rewrite the store file without its free pages (stop the daemon first)."`
	Export    exportCmd    `cmd:"" help:"Write an encrypted backup of the whole mesh."`
	Import    importCmd    `cmd:"" help:"Merge a backup into this store, or restore it into an empty directory."`
	Daemon    daemonCmd    `cmd:"" help:"Run the node in the foreground: sync with the mesh's devices, serve the CLI."`
	UI        uiCmd        `cmd:"" name:"ui" help:"Open the daemon's web page in a browser (prints its one-time login link)."`
	Status    statusCmd    `cmd:"" help:"Show every device: state, last seen, pending changes, direct or relayed."`
	Sync      syncCmd      `cmd:"" help:"Sync with every reachable device now."`
	Pair      pairCmd      `cmd:"" help:"Invite a new device into the mesh (prints a code and a QR code)."`
	Service   serviceCmd   `cmd:"" help:"Install or remove the daemon as a background service started at login (systemd --user, launchd)."`
	Replica   replicaCmd   `cmd:"" help:"Run a blind replica (joined with a code from meshsync pair --replica): stores and forwards envelopes it cannot open."`
	Join      joinCmd      `cmd:"" help:"Join a mesh with an invite code, in an empty data directory. It looks for the inviting device at the address in the code and at --peer, through each --relay, on the LAN (mDNS, unless --no-mdns) and on the DHT through --bootstrap (unless --lan-only)."`
	Devices   devicesCmd   `cmd:"" help:"List or remove the mesh's devices."`
	Conflicts conflictsCmd `cmd:"" help:"List, inspect and resolve conflicts."`
	Policy    policyCmd    `cmd:"" help:"Show or set how a collection resolves conflicts."`
	Scope     scopeCmd     `cmd:"" help:"Show or choose the collections this device holds (selective sync)."`
	Consent   consentCmd   `cmd:"" help:"Grant, list and revoke what may leave your devices, to whom and why."`
	Share     shareCmd     `cmd:"" help:"Send a collection to a destination, as a grant allows it (anonymized, audited)."`
	Receive   receiveCmd   `cmd:"" help:"Run a share destination: print its peer id, accept shares, write them as JSON lines."`
	Relay     relayCmd     `cmd:"" help:"Run a relay (and DHT bootstrap node) for devices behind NATs; prints its addresses."`
	Audit     auditCmd     `cmd:"" help:"Show every share and every refused attempt."`
	Bench     benchCmd     `cmd:"" help:"Measure meshsync on this machine."`
	Version   versionCmd   `cmd:"" help:"Print the version."`
	Demo      demoCmd      `cmd:"" help:"Run a short demo in a temporary directory."`
}

// exitPanic carries kong's request to exit (after --help) out of the parser.
type exitPanic int

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run parses args, runs one command and maps its error to an exit code. Nothing else
// decides exit codes.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c cli
	c.globals.stdin, c.globals.stdout, c.globals.stderr = stdin, stdout, stderr
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(exitPanic); ok {
				code = int(e)
				return
			}
			panic(r)
		}
	}()
	parser, err := kong.New(&c,
		kong.Name("meshsync"),
		kong.Description("Keep your records in sync across your own devices, with no server in the middle."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitPanic(code)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Vars{"default_dir": defaultDir()},
		kong.BindTo(ctx, (*context.Context)(nil)),
	)
	if err != nil {
		fmt.Fprintln(stderr, "meshsync: internal error:", err)
		return exitFailure
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "meshsync: %v (see meshsync --help)\n", err)
		return exitUsage
	}
	err = kctx.Run(&c.globals)
	if err == nil {
		return exitOK
	}
	msg, code := describe(err, &c.globals)
	fmt.Fprintln(stderr, "meshsync: "+msg)
	return code
}

// usageError marks an error as bad usage or bad input (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// describe turns an error into one line that says what was wrong and what to do, and picks
// the exit code. The line is escaped: an error may quote a name another device chose.
func describe(err error, g *globals) (string, int) {
	msg := shown(strings.ReplaceAll(err.Error(), "\n", " "))
	for _, h := range hints {
		if errors.Is(err, h.err) {
			code := exitFailure
			switch {
			case h.usage:
				code = exitUsage
			case errors.Is(err, node.ErrInviterUnreachable):
				code = exitUnreachable
			case errors.Is(err, node.ErrPairTimeout):
				code = exitTimeout
			}
			if h.fix != "" {
				msg += ": " + dirWord.ReplaceAllLiteralString(h.fix, g.dir())
			}
			return msg, code
		}
	}
	var u usageError
	if errors.As(err, &u) {
		return msg, exitUsage
	}
	return msg, exitFailure
}

// dirWord is the DIR placeholder of a hint, as a word of its own (not inside MESHSYNC_DIR).
var dirWord = regexp.MustCompile(`\bDIR\b`)
