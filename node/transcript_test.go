package node

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Transcript tests, in the manner of etcd raft's interaction tests: a file in testdata
// holds commands, each followed by "----" and the output it must print. Run with
// -rewrite to write the current outputs back into the files, then review the diff.
//
//	command arg key=value …
//	input line …            (optional, before the ----)
//	----
//	output …                (up to the next blank line)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs of the transcript tests in testdata")

// transcriptCmd is one command of a transcript.
type transcriptCmd struct {
	pos   string // file:line, for messages
	line  string // as written
	name  string
	args  []string
	opts  map[string]string
	input []string
	want  string
}

// opt returns the value of key=value, or def.
func (c *transcriptCmd) opt(key, def string) string {
	if v, ok := c.opts[key]; ok {
		return v
	}
	return def
}

// transcriptBlock is a command, or lines kept as they are (comments, blank lines).
type transcriptBlock struct {
	cmd  *transcriptCmd
	text []string
}

func parseTranscript(t *testing.T, path string) []transcriptBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var out []transcriptBlock
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			out = append(out, transcriptBlock{text: []string{l}})
			continue
		}
		c := &transcriptCmd{pos: fmt.Sprintf("%s:%d", filepath.Base(path), i+1), line: l, opts: map[string]string{}}
		for j, f := range strings.Fields(l) {
			if j == 0 {
				c.name = f
			} else if k, v, ok := strings.Cut(f, "="); ok {
				c.opts[k] = v
			} else {
				c.args = append(c.args, f)
			}
		}
		for i++; i < len(lines) && lines[i] != "----"; i++ {
			c.input = append(c.input, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("%s: command without ----", c.pos)
		}
		var want []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		c.want = strings.Join(want, "\n")
		out = append(out, transcriptBlock{cmd: c})
		if i < len(lines) {
			out = append(out, transcriptBlock{text: []string{""}})
		}
	}
	return out
}

// runTranscripts runs every file matching glob: a fresh env per file, run per command.
func runTranscripts(t *testing.T, glob string, newEnv func(t *testing.T) func(c *transcriptCmd) string) {
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in %s (%v)", glob, err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			blocks := parseTranscript(t, path)
			run := newEnv(t)
			var buf strings.Builder
			for _, b := range blocks {
				if b.cmd == nil {
					buf.WriteString(strings.Join(b.text, "\n") + "\n")
					continue
				}
				c := b.cmd
				got := strings.TrimRight(run(c), "\n")
				if !*rewrite && got != c.want {
					t.Errorf("%s: %s\ngot:\n%s\nwant:\n%s", c.pos, c.name, got, c.want)
				}
				buf.WriteString(c.line + "\n")
				for _, in := range c.input {
					buf.WriteString(in + "\n")
				}
				buf.WriteString("----\n" + got + "\n")
			}
			if *rewrite {
				if err := os.WriteFile(path, []byte(buf.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
