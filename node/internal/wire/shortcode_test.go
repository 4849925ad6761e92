package wire

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// TestWordList: 2,048 words (11 bits each), 4 to 6 lower-case letters, no two sharing
// their first four letters (so none is a prefix of another, and four letters name a word).
func TestWordList(t *testing.T) {
	if WordCount() != 2048 {
		t.Fatalf("%d words, want 2048", WordCount())
	}
	seen := map[string]string{}
	for _, w := range wordList {
		if len(w) < 4 || len(w) > 6 || strings.Trim(w, "abcdefghijklmnopqrstuvwxyz") != "" {
			t.Errorf("word %q: want 4 to 6 lower-case letters", w)
		}
		if o, ok := seen[w[:4]]; ok {
			t.Errorf("%q and %q share their first four letters", o, w)
		}
		seen[w[:4]] = w
	}
}

// TestShortCodeRoundTrip: a drawn code reads back from its text, also typed in capitals,
// with spaces, or with each word cut to four letters.
func TestShortCodeRoundTrip(t *testing.T) {
	for range 200 {
		c, err := NewShortCode(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if c.Nameplate < 1 || c.Nameplate > MaxNameplate {
			t.Fatalf("nameplate %d", c.Nameplate)
		}
		s := c.String()
		parts := strings.Split(s, "-")
		short := parts[0]
		for _, w := range parts[1:] {
			short += " " + w[:4]
		}
		for _, text := range []string{s, strings.ToUpper(s), strings.ReplaceAll(s, "-", " "), short} {
			if !LooksShort(text) {
				t.Fatalf("%q does not look like a short code", text)
			}
			got, err := ParseShortCode(text)
			if err != nil || got != c {
				t.Fatalf("ParseShortCode(%q) = %v, %v; want %v", text, got, err, c)
			}
		}
	}
}

// TestShortCodeRefused: what is not a code says what is wrong.
func TestShortCodeRefused(t *testing.T) {
	for _, c := range []struct{ text, says string }{
		{"4-garden-orbit", "3 parts"},
		{"0-" + wordList[0] + "-" + wordList[1] + "-" + wordList[2], "not a number from 1 to 99"},
		{"100-" + wordList[0] + "-" + wordList[1] + "-" + wordList[2], "not a number"},
		{"4-" + wordList[0] + "-zzzzzz-" + wordList[2], `"zzzzzz" is not one of the code words`},
		{"x-" + wordList[0] + "-" + wordList[1] + "-" + wordList[2], "not a number"},
		{strings.Repeat("4-", 100), "too long"},
	} {
		_, err := ParseShortCode(c.text)
		if !errors.Is(err, ErrBadShortCode) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseShortCode(%q) = %v, want ErrBadShortCode saying %q", c.text, err, c.says)
		}
	}
	for _, long := range []string{"AEAAA-AAANN-E5EAB", "3vQB7B6MrGQZaxCuFg4oh", ""} {
		if LooksShort(long) {
			t.Errorf("%q looks like a short code", long)
		}
	}
}

// FuzzShortCode: whatever parses prints back to a text that parses to the same code.
func FuzzShortCode(f *testing.F) {
	f.Add("4-" + wordList[0] + "-" + wordList[1] + "-" + wordList[2])
	f.Add("99 ABCD efgh ijkl")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseShortCode(text)
		if err != nil {
			return
		}
		again, err := ParseShortCode(c.String())
		if err != nil || again != c {
			t.Fatalf("%q → %v → %q → %v, %v", text, c, c.String(), again, err)
		}
	})
}
