package wire

import (
	_ "embed"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrBadShortCode means a short pairing code does not parse: not "N-word-word-word", a
// word that is not in the list, or a nameplate out of range. It is an ErrBadInvite.
var ErrBadShortCode = fmt.Errorf("%w: a short code reads like 4-garden-orbit-pencil, a number and three words", ErrBadInvite)

// Short codes: a nameplate number and three words from a fixed list of 2,048 (words/words.txt:
// SCOWL via Debian's wamerican, see words/README.md), about 33 bits for the words. The
// nameplate only tells two devices on one LAN which announcement to look at; the secret is
// the whole code, and it is only ever used as the password of a PAKE (CPace).
const (
	// ShortWords is how many words a short code has.
	ShortWords = 3
	// MaxNameplate is the largest nameplate: one or two digits, quick to say.
	MaxNameplate = 99
	maxShortText = 128
)

//go:embed words/words.txt
var wordsFile string

var (
	wordList  = strings.Fields(wordsFile)
	wordIndex = func() map[string]int {
		m := make(map[string]int, len(wordList))
		for i, w := range wordList {
			m[w] = i
			m[w[:4]] = i // a word is known by its first four letters
		}
		return m
	}()
)

// WordCount is the size of the word list (2,048: 11 bits per word).
func WordCount() int { return len(wordList) }

// ShortCode is a spoken pairing code, "N-word-word-word".
type ShortCode struct {
	Nameplate int
	Words     [ShortWords]int // indexes into the word list
}

// NewShortCode draws a code from rand: a nameplate in 1..MaxNameplate and three words,
// each uniform over the list.
func NewShortCode(rand io.Reader) (ShortCode, error) {
	var b [8]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return ShortCode{}, fmt.Errorf("short code: %w", err)
	}
	v := binary.BigEndian.Uint64(b[:])
	c := ShortCode{Nameplate: 1 + int(v%MaxNameplate)} // a bias of under 2^-56: harmless
	v /= MaxNameplate
	n := uint64(len(wordList)) // a power of two: exact
	for i := range c.Words {
		c.Words[i] = int(v % n)
		v /= n
	}
	return c, nil
}

// String is the code as a person reads it: "4-garden-orbit-pencil".
func (c ShortCode) String() string {
	var sb strings.Builder
	sb.WriteString(strconv.Itoa(c.Nameplate))
	for _, w := range c.Words {
		sb.WriteByte('-')
		sb.WriteString(wordList[w])
	}
	return sb.String()
}

// LooksShort reports whether text has the shape of a short code (a number, a dash, and
// words), as opposed to a long invite code: join uses it to pick the protocol, and
// ParseShortCode then says what is wrong with it.
func LooksShort(text string) bool {
	t := strings.TrimSpace(text)
	i := strings.IndexAny(t, "- ")
	if i <= 0 || i > 3 {
		return false
	}
	if _, err := strconv.Atoi(t[:i]); err != nil {
		return false
	}
	rest := strings.ToLower(t[i+1:])
	return rest != "" && strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz- ") == ""
}

// ParseShortCode reads a short code. Case does not matter, words may be separated by
// dashes or spaces, and a word may be given by its first four letters.
func ParseShortCode(text string) (ShortCode, error) {
	if len(text) > maxShortText {
		return ShortCode{}, fmt.Errorf("%w: %d characters is too long", ErrBadShortCode, len(text))
	}
	parts := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	if len(parts) != 1+ShortWords {
		return ShortCode{}, fmt.Errorf("%w: %d parts, want a number and %d words", ErrBadShortCode, len(parts), ShortWords)
	}
	np, err := strconv.Atoi(parts[0])
	if err != nil || np < 1 || np > MaxNameplate || parts[0][0] == '0' || parts[0][0] == '+' {
		return ShortCode{}, fmt.Errorf("%w: %q is not a number from 1 to %d", ErrBadShortCode, parts[0], MaxNameplate)
	}
	c := ShortCode{Nameplate: np}
	for i, w := range parts[1:] {
		idx, ok := wordIndex[w]
		if !ok {
			return ShortCode{}, fmt.Errorf("%w: %q is not one of the code words (check the spelling)", ErrBadShortCode, w)
		}
		c.Words[i] = idx
	}
	return c, nil
}
