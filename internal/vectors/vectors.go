// Package vectors reads and writes the committed test vectors of meshsync's frozen
// formats (the envelope, the backup, the wire messages), for the tests that check them.
//
// A vector whose name ends in ".hex" is text: comment lines starting with '#', then the
// bytes in hex, any layout (Write puts 32 bytes on a line). Any other vector (".json",
// ".jsonl") holds its bytes as they are, so that a reviewer reads a text format as text.
//
// # Usage
//
//	msg := &wire.Hello{Proof: [32]byte(vectors.Counting(0x10, 32)), …} // fixed fields
//	vectors.Check(t, "testdata/vectors/hello.hex", "a sync Hello", msg.Marshal())
//	got, err := wire.UnmarshalHello(vectors.Read(t, "testdata/vectors/hello.hex"))
//	// compare got with msg
//
// `go test -update-vectors` rewrites the vectors of the packages it tests from their
// fields instead of checking them.
//
// # Caveats
//
// A vector is frozen: a test that fails on one means the bytes on the wire or on disk
// changed. Rewrite vectors only together with a new format or protocol version.
//
// Only tests import this package (it registers the -update-vectors flag);
// internal/testmode's TestOnlyTestsEnable checks that no other file does.
package vectors

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
)

var update = flag.Bool("update-vectors", false, "rewrite testdata/vectors from the fields in the tests (only with a new format or protocol version)")

// Counting returns n bytes counting up from start: fixed fields that are easy to find in a
// hex dump.
func Counting(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

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

// Updating reports whether the test binary runs with -update-vectors: Check writes rather
// than checks.
func Updating() bool { return *update }

// Check reports an error unless got is the vector at path; with -update-vectors it writes
// got there instead (comment heads a ".hex" file, one "# " line per line of it).
func Check(t TB, path, comment string, got []byte) {
	t.Helper()
	if *update {
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
