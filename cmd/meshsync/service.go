package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/meshsync/meshsync/store"
)

// serviceCmd installs the daemon as a per-user background service: a systemd user unit
// on Linux, a launchd agent on macOS.
type serviceCmd struct {
	Install   serviceInstallCmd   `cmd:"" help:"Start the daemon at login and keep it running (systemd --user on Linux, launchd on macOS)."`
	Uninstall serviceUninstallCmd `cmd:"" help:"Stop the background daemon and remove its service file."`
}

type serviceInstallCmd struct {
	Replica bool `help:"Run this directory as a blind replica (meshsync replica) instead of a device."`
	Print   bool `help:"Print the service file and where it goes; change nothing."`
	NoStart bool `name:"no-start" help:"Write the service file but do not enable or start it."`
}

type serviceUninstallCmd struct{}

// serviceFile says what a service is called and where its file lives.
type serviceFile struct {
	path    string
	content string
	enable  [][]string // commands that enable and start it
	disable [][]string // commands that stop and disable it
}

// servicePlace says where the service file of a device (or a replica) goes and how it is
// enabled and disabled, without its content.
func servicePlace(replica bool) (*serviceFile, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, err
	}
	mode := "daemon"
	if replica {
		mode = "replica"
	}
	switch runtime.GOOS {
	case "darwin":
		path := filepath.Join(home, "Library", "LaunchAgents", "dev.meshsync."+mode+".plist")
		return &serviceFile{path: path,
			enable:  [][]string{{"launchctl", "load", "-w", path}},
			disable: [][]string{{"launchctl", "unload", "-w", path}},
		}, nil
	case "linux":
		unit := "meshsync.service"
		if replica {
			unit = "meshsync-replica.service"
		}
		cfg := os.Getenv("XDG_CONFIG_HOME")
		if cfg == "" {
			cfg = filepath.Join(home, ".config")
		}
		return &serviceFile{path: filepath.Join(cfg, "systemd", "user", unit),
			enable:  [][]string{{"systemctl", "--user", "daemon-reload"}, {"systemctl", "--user", "enable", "--now", unit}},
			disable: [][]string{{"systemctl", "--user", "disable", "--now", unit}},
		}, nil
	}
	return nil, fmt.Errorf("no service manager support for %s: run `meshsync daemon` from your own startup scripts", runtime.GOOS)
}

// service is the service file that runs this data directory's daemon (or replica).
func (g *globals) service(replica bool) (*serviceFile, error) {
	sf, err := servicePlace(replica)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the meshsync binary: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return nil, fmt.Errorf("find the meshsync binary: %w", err)
	}
	dir, err := filepath.Abs(g.dir())
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, store.ErrNoStore)
	}
	if g.PassphraseFile == "" {
		return nil, usagef("a background daemon has no terminal to ask for the passphrase: give --passphrase-file FILE (a file only you can read, mode 0600)")
	}
	pf, err := filepath.Abs(g.PassphraseFile)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(pf); err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	} else if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("passphrase file %s is readable by others (mode %v): run `chmod 600 %s`", pf, st.Mode().Perm(), pf)
	}
	mode := "daemon"
	if replica {
		mode = "replica"
	}
	args := []string{exe, "--dir", dir, "--passphrase-file", pf, mode}
	if runtime.GOOS == "darwin" {
		var b strings.Builder
		for _, a := range args {
			fmt.Fprintf(&b, "\t\t<string>%s</string>\n", xmlEscape(a))
		}
		sf.content = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>dev.meshsync.` + mode + `</string>
	<key>ProgramArguments</key>
	<array>
` + b.String() + `	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>StandardErrorPath</key>
	<string>` + xmlEscape(filepath.Join(dir, "daemon.log")) + `</string>
</dict>
</plist>
`
		return sf, nil
	}
	var quoted []string
	for _, a := range args {
		quoted = append(quoted, systemdQuote(a))
	}
	sf.content = `[Unit]
Description=meshsync ` + mode + ` (` + dir + `)
After=network-online.target

[Service]
ExecStart=` + strings.Join(quoted, " ") + `
Restart=on-failure
RestartSec=10s
# Stop gracefully: the node finishes its transactions and closes the store.
KillSignal=SIGINT
TimeoutStopSec=30s

[Install]
WantedBy=default.target
`
	return sf, nil
}

// Run writes the service file and enables it.
func (c *serviceInstallCmd) Run(ctx context.Context, g *globals) error {
	sf, err := g.service(c.Replica)
	if err != nil {
		return err
	}
	if c.Print {
		fmt.Fprintf(g.stdout, "# %s\n%s", sf.path, sf.content)
		for _, cmd := range sf.enable {
			fmt.Fprintf(g.stdout, "# then: %s\n", strings.Join(cmd, " "))
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(sf.path), 0o755); err != nil {
		return fmt.Errorf("install service: %w", err)
	}
	if err := os.WriteFile(sf.path, []byte(sf.content), 0o644); err != nil {
		return fmt.Errorf("install service: %w", err)
	}
	fmt.Fprintf(g.stdout, "Wrote %s\n", sf.path)
	if c.NoStart {
		fmt.Fprintf(g.stdout, "Start it with: %s\n", strings.Join(sf.enable[len(sf.enable)-1], " "))
		return nil
	}
	return runAll(ctx, g.stdout, sf.enable)
}

// Run stops the service and removes its file.
func (c *serviceUninstallCmd) Run(ctx context.Context, g *globals) error {
	var errs []error
	removed := false
	for _, replica := range []bool{false, true} {
		sf, err := servicePlace(replica)
		if err != nil {
			return err
		}
		if _, err := os.Stat(sf.path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		errs = append(errs, runAll(ctx, g.stdout, sf.disable), os.Remove(sf.path))
		fmt.Fprintf(g.stdout, "Removed %s\n", sf.path)
		removed = true
	}
	if !removed {
		fmt.Fprintln(g.stdout, "No meshsync service is installed.")
	}
	return errors.Join(errs...)
}

func runAll(ctx context.Context, w io.Writer, cmds [][]string) error {
	for _, c := range cmds {
		fmt.Fprintf(w, "$ %s\n", strings.Join(c, " "))
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w (the service file is in place; run the command yourself once the service manager is available)", strings.Join(c, " "), err)
		}
	}
	return nil
}

// systemdQuote quotes one ExecStart argument.
func systemdQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\$%;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
