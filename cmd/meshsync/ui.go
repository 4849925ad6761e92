package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"

	"github.com/meshsync/meshsync/node/localapi"
)

type uiCmd struct {
	NoOpen bool `name:"no-open" help:"Print the link; do not open a browser (--json never opens one)."`
}

// uiOutput is `meshsync --json ui`.
type uiOutput struct {
	URL string `json:"url"`
}

// Run asks the daemon for a one-time login link to its web page, prints it and opens it
// in a browser where one exists.
func (c *uiCmd) Run(ctx context.Context, g *globals) error {
	cl, err := localapi.Dial(ctx, g.dir())
	if err != nil {
		return fmt.Errorf("the web page is served by the daemon: %w", err)
	}
	defer cl.Close()
	ui, err := cl.UI(ctx)
	if err != nil {
		return err
	}
	out := uiOutput{URL: ui.URL}
	if err := g.print(out, func(w io.Writer) {
		fmt.Fprintln(w, ui.URL)
		fmt.Fprintln(w, "The link logs one browser in, once, within 10 minutes; run `meshsync ui` again for another.")
	}); err != nil {
		return err
	}
	if c.NoOpen || g.JSON {
		return nil
	}
	if err := openBrowser(ui.URL); err != nil {
		fmt.Fprintf(g.stderr, "no browser opened (%v): open the link above in one\n", err)
	}
	return nil
}

// openBrowser opens url in the desktop's browser ($BROWSER first), without waiting for it.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch b := os.Getenv("BROWSER"); {
	case b != "":
		cmd = exec.Command(b, url)
	case runtime.GOOS == "darwin":
		cmd = exec.Command("open", url)
	case runtime.GOOS == "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return fmt.Errorf("no graphical session")
		}
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
