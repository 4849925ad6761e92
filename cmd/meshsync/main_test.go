package main

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/meshsync/meshsync/internal/testmode"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run the real command as `meshsync` inside scripts. The scripts
// use cheap key-derivation settings (internal/testmode) so that each command unlocks in a
// millisecond; the real floor is tested in package store.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"meshsync": func() {
			testmode.Enable()
			os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs the end-to-end CLI scripts in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("MESHSYNC_DIR", env.WorkDir+"/store")
			env.Setenv("MESHSYNC_PASSPHRASE", "test passphrase")
			env.Setenv("HOME", env.WorkDir+"/home")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitfile PATH waits (up to a minute) until PATH exists: a daemon's socket.
			"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: waitfile PATH")
				}
				for i := 0; i < 600; i++ {
					if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				ts.Fatalf("%s did not appear", args[0])
			},
			// jsonenv FILE FIELD VAR sets VAR to the string FIELD of the JSON object in FILE
			// (the first string of FIELD when it is an array).
			"jsonenv": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 3 {
					ts.Fatalf("usage: jsonenv FILE FIELD VAR")
				}
				var m map[string]any
				ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &m))
				v, ok := m[args[1]].(string)
				if a, isArray := m[args[1]].([]any); isArray && len(a) > 0 {
					v, ok = a[0].(string)
				}
				if !ok {
					ts.Fatalf("no string field %q in %s", args[1], args[0])
				}
				ts.Setenv(args[2], v)
			},
			// truncate FILE SIZE cuts a file, to damage a backup.
			"truncate": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: truncate FILE SIZE")
				}
				n, err := strconv.ParseInt(args[1], 10, 64)
				ts.Check(err)
				ts.Check(os.Truncate(ts.MkAbs(args[0]), n))
			},
		},
	})
}
