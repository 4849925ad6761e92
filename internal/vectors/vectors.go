// Package vectors reads and writes the committed test vectors of meshsync's frozen
// formats (the envelope, the backup, the wire messages), for the tests that check them.
//
// A vector whose name ends in ".hex" is text: comment lines starting with '#', then the
// bytes in hex, any layout (Write puts 32 bytes on a line). Any other vector (".json",
// ".jsonl") holds its bytes as they are, so that a reviewer reads a text format as text.
//
// # Usage
//
//	var update = flag.Bool("update-vectors", false, "rewrite testdata/vectors (a deliberate format change)")
//
//	got := msg.Marshal()
//	vectors.Check(t, "testdata/vectors/hello.hex", "a sync Hello", got, *update)
//	want := vectors.Read(t, "testdata/vectors/hello.hex") // decode these, compare the fields
//
// # Caveats
//
// A vector is frozen: a test that fails on one means the bytes on the wire or on disk
// changed. Rewrite vectors only together with a new format or protocol version.
package vectors

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
)

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// Read returns the bytes of the vector at path.
func Read(t TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read vector: %v", err)
	}
	if !strings.HasSuffix(path, ".hex") {
		return b
	}
	var h strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			h.WriteString(strings.ReplaceAll(line, " ", ""))
		}
	}
	out, err := hex.DecodeString(h.String())
	if err != nil {
		t.Fatalf("read vector %s: %v", path, err)
	}
	return out
}

// Check reports an error unless got is the vector at path. With update it writes got there
// instead (comment heads a ".hex" file, one "# " line per line of it).
func Check(t TB, path, comment string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := Write(path, comment, got); err != nil {
			t.Fatalf("%v", err)
		}
		return
	}
	if want := Read(t, path); !bytes.Equal(got, want) {
		t.Errorf("encoding changed: %s\ngot  %x\nwant %x", path, got, want)
	}
}

// Write writes b as the vector at path.
func Write(path, comment string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if !strings.HasSuffix(path, ".hex") {
		return os.WriteFile(path, b, 0o644)
	}
	var s strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(comment), "\n") {
		s.WriteString(strings.TrimRight("# "+line, " ") + "\n")
	}
	for len(b) > 0 {
		n := min(32, len(b))
		s.WriteString(hex.EncodeToString(b[:n]) + "\n")
		b = b[n:]
	}
	return os.WriteFile(path, []byte(s.String()), 0o644)
}
