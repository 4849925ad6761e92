package resolve

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// jkind is the type of a JSON value.
type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

func (k jkind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// jval is a parsed JSON value. Numbers keep their literal text.
type jval struct {
	kind jkind
	b    bool
	s    string // number literal or string contents
	arr  []*jval
	keys []string // object keys, sorted
	obj  map[string]*jval
}

// CanonicalJSON returns the canonical text of one JSON document: object keys
// sorted by their UTF-8 bytes, no insignificant whitespace, strings with only
// the escapes JSON requires (", \ and control characters), numbers kept as
// written. Two documents that differ only in key order or spacing get the
// same bytes. It refuses text that is not one JSON value, is not valid UTF-8,
// has duplicate keys, is larger than MaxJSONSize or nests deeper than MaxDepth.
func CanonicalJSON(b []byte) ([]byte, error) {
	v, err := parseJSON(b)
	if err != nil {
		return nil, err
	}
	return v.appendCanonical(make([]byte, 0, len(b))), nil
}

func parseJSON(b []byte) (*jval, error) {
	if len(b) > MaxJSONSize {
		return nil, fmt.Errorf("parse JSON of %d bytes: %w (max %d)", len(b), ErrTooLarge, MaxJSONSize)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("parse JSON: %w: not valid UTF-8", ErrInvalidJSON)
	}
	p := jparser{b: b}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, p.fail("trailing data after the value")
	}
	return v, nil
}

// jparser is a recursive-descent parser of RFC 8259 JSON.
type jparser struct {
	b []byte
	i int
}

func (p *jparser) fail(what string) error {
	return fmt.Errorf("parse JSON at byte %d: %w: %s", p.i, ErrInvalidJSON, what)
}

func (p *jparser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jparser) literal(word string) bool {
	if strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+len(word))]), word) {
		p.i += len(word)
		return true
	}
	return false
}

func (p *jparser) value(depth int) (*jval, error) {
	if p.i >= len(p.b) {
		return nil, p.fail("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return nil, fmt.Errorf("parse JSON: %w (max %d)", ErrTooDeep, MaxDepth)
		}
		if c == '[' {
			return p.array(depth)
		}
		return p.object(depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &jval{kind: jString, s: s}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case p.literal("true"):
		return &jval{kind: jBool, b: true}, nil
	case p.literal("false"):
		return &jval{kind: jBool}, nil
	case p.literal("null"):
		return &jval{kind: jNull}, nil
	}
	return nil, p.fail("unexpected character")
}

func (p *jparser) array(depth int) (*jval, error) {
	p.i++ // [
	v := &jval{kind: jArray}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.space()
		e, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.arr = append(v.arr, e)
		p.space()
		if p.i >= len(p.b) {
			return nil, p.fail("unterminated array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return v, nil
		default:
			return nil, p.fail("expected , or ]")
		}
	}
}

func (p *jparser) object(depth int) (*jval, error) {
	p.i++ // {
	v := &jval{kind: jObject, obj: map[string]*jval{}}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return v, nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.fail("expected a string key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		if _, dup := v.obj[k]; dup {
			return nil, p.fail(fmt.Sprintf("duplicate key %q", k))
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.fail("expected :")
		}
		p.i++
		p.space()
		e, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.obj[k] = e
		v.keys = append(v.keys, k)
		p.space()
		if p.i >= len(p.b) {
			return nil, p.fail("unterminated object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			slices.Sort(v.keys)
			return v, nil
		default:
			return nil, p.fail("expected , or }")
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *jparser) digits() int {
	n := 0
	for p.i < len(p.b) && isDigit(p.b[p.i]) {
		p.i++
		n++
	}
	return n
}

func (p *jparser) number() (*jval, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.digits() == 0:
		return nil, p.fail("bad number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return nil, p.fail("bad fraction")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return nil, p.fail("bad exponent")
		}
	}
	return &jval{kind: jNumber, s: string(p.b[start:p.i])}, nil
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

func (p *jparser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		h := hexVal(c)
		if h < 0 {
			return 0, false
		}
		r = r<<4 | h
	}
	p.i += 4
	return r, true
}

// str reads a string; escapes of lone surrogates become U+FFFD.
func (p *jparser) str() (string, error) {
	p.i++ // "
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := string(p.b[start:p.i])
			p.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.i++
	}
	buf := []byte(string(p.b[start:p.i]))
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.fail("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.b) {
			break
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.fail("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				save := p.i
				r2 := rune(-1)
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					if x, ok := p.hex4(); ok {
						r2 = x
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
				} else {
					r = utf8.RuneError
					p.i = save
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.fail("bad escape")
		}
	}
	return "", p.fail("unterminated string")
}

func (v *jval) appendCanonical(b []byte) []byte {
	switch v.kind {
	case jNull:
		return append(b, "null"...)
	case jBool:
		return strconv.AppendBool(b, v.b)
	case jNumber:
		return append(b, v.s...)
	case jString:
		return appendJSONString(b, v.s)
	case jArray:
		b = append(b, '[')
		for i, e := range v.arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendCanonical(b)
		}
		return append(b, ']')
	default:
		b = append(b, '{')
		for i, k := range v.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = v.obj[k].appendCanonical(b)
		}
		return append(b, '}')
	}
}

func (v *jval) canonical() []byte { return v.appendCanonical(nil) }

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s with the minimal escapes: s is valid UTF-8 here
// (the parser replaces invalid sequences from escapes with U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// splitPath splits a dotted field path such as "a.b" into its keys.
func splitPath(p string) ([]string, error) {
	if p == "" {
		return nil, errors.New("empty field path")
	}
	parts := strings.Split(p, ".")
	if slices.Contains(parts, "") {
		return nil, fmt.Errorf("field path %q has an empty segment", p)
	}
	return parts, nil
}

// lookup returns the value at path inside v, or nil when absent.
func (v *jval) lookup(path []string) *jval {
	for _, k := range path {
		if v == nil || v.kind != jObject {
			return nil
		}
		v = v.obj[k]
	}
	return v
}
