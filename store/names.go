package store

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// canonicalName returns the one form under which a collection name or key is stored and
// compared: Unicode NFC, so that "é" typed on a Mac (NFD) and on Linux (NFC) name the same
// record. Control and invisible format characters (zero-width spaces and joiners, byte
// order marks, direction marks) are refused: two keys that look the same must be the same
// key. Case is significant.
func canonicalName(what, s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: %s must be valid UTF-8", ErrInvalid, what)
	}
	for _, r := range s {
		if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) {
			return "", fmt.Errorf("%w: %s contains the invisible character %U; remove it", ErrInvalid, what, r)
		}
	}
	return norm.NFC.String(s), nil
}

// canonicalNames checks and canonicalizes a collection and key (an empty key is allowed
// when keyOptional, for list prefixes).
func canonicalNames(collection, key string, keyOptional bool) (string, string, error) {
	c, err := canonicalName("the collection name", collection)
	if err != nil {
		return "", "", err
	}
	k, err := canonicalName("the key", key)
	if err != nil {
		return "", "", err
	}
	switch {
	case c == "":
		return "", "", fmt.Errorf("%w: empty collection name", ErrInvalid)
	case k == "" && !keyOptional:
		return "", "", fmt.Errorf("%w: empty key", ErrInvalid)
	case len(c) > MaxNameSize || len(k) > MaxNameSize:
		return "", "", fmt.Errorf("%w: collection and key are limited to %d bytes", ErrInvalid, MaxNameSize)
	}
	return c, k, nil
}
