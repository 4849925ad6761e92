package main

import (
	"os"
	"strconv"
	"testing"

	"github.com/meshsync/meshsync/store"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run the real command as `meshsync` inside scripts. The scripts
// use cheap key-derivation settings (store.UseTestKDF) so that each command unlocks in a
// millisecond; the real floor is tested in package store.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"meshsync": func() {
			store.UseTestKDF()
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
