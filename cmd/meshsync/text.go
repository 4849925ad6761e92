package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// shown returns s fit to print on a terminal: control characters (C0, DEL, C1), the
// Unicode bidi controls and invalid UTF-8 bytes are written as Go escapes (\x1b, \u202e),
// so a name another device chose cannot clear the screen, move the cursor, forge a line or
// reverse the text around it. Everything else is left as it is. Text output passes every
// string that came from a peer (device names, record names, reasons) through shown; JSON
// output carries the exact string (encoding/json escapes control characters itself).
func shown(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r < 0x20 || r == 0x7f || unsafeRune(r) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune reports the runes at or above U+0080 that a terminal acts on: C1 controls and
// the bidi marks, embeddings, overrides and isolates.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 (U+009B is CSI on some terminals)
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f: // ALM, LRM, RLM
		return true
	case r >= 0x202a && r <= 0x202e: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	}
	return false
}

// shownAll applies shown to each string.
func shownAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = shown(s)
	}
	return out
}

// byteSize is a flag value in bytes, written as a number with an optional unit: B, KiB,
// MiB or GiB ("16MiB").
type byteSize int64

var byteUnits = []struct {
	suffix string
	n      int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// UnmarshalText parses a size such as 512, 64KiB or 16MiB.
func (b *byteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(strings.ToLower(s), strings.ToLower(u.suffix)) {
			s, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("size %q: want a number of bytes, or with a unit: 64KiB, 16MiB, 1GiB", text)
	}
	*b = byteSize(n * mult)
	return nil
}

// String writes the size in the largest unit that divides it.
func (b byteSize) String() string {
	for _, u := range byteUnits {
		if int64(b) != 0 && int64(b)%u.n == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.n, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}
