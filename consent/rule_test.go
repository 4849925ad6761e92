package consent

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	good := []struct {
		in   string
		want FieldRule
	}{
		// Every action.
		{"name=keep", FieldRule{Path: "name", Action: Keep}},
		{"name=drop", FieldRule{Path: "name", Action: Drop}},
		{"email=redact", FieldRule{Path: "email", Action: Redact}},
		{"user.id=pseudonymize", FieldRule{Path: "user.id", Action: Pseudonymize}},
		// Every generalize argument.
		{"age=generalize:10", FieldRule{Path: "age", Action: Generalize, Arg: "10"}},
		{"price=generalize:0.5", FieldRule{Path: "price", Action: Generalize, Arg: "0.5"}},
		{"loc=generalize:2dp", FieldRule{Path: "loc", Action: Generalize, Arg: "2dp"}},
		{"loc=generalize:0dp", FieldRule{Path: "loc", Action: Generalize, Arg: "0dp"}},
		{"at=generalize:hour", FieldRule{Path: "at", Action: Generalize, Arg: "hour"}},
		{"at=generalize:day", FieldRule{Path: "at", Action: Generalize, Arg: "day"}},
		{"at=generalize:month", FieldRule{Path: "at", Action: Generalize, Arg: "month"}},
		{"zip=generalize:prefix3", FieldRule{Path: "zip", Action: Generalize, Arg: "prefix3"}},
		// Nested and unusual names.
		{"a.b.c=keep", FieldRule{Path: "a.b.c", Action: Keep}},
		{"naïve name=keep", FieldRule{Path: "naïve name", Action: Keep}},
	}
	for _, tc := range good {
		got, err := ParseRule(tc.in)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseRule(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("ParseRule(%q).String() = %q", tc.in, got.String())
		}
	}

	bad := []struct{ in, msg string }{
		{"name", "want NAME=keep"},
		{"=keep", "empty field name"},
		{"name=", "missing action"},
		{"name=share", `unknown action "share"`},
		{"name=KEEP", "unknown action"},
		{"name=keep:1", "keep takes no argument"},
		{"name=generalize", "generalize needs an argument"},
		{"name=generalize:", "empty argument"},
		{"name=generalize:0", "step must be positive"},
		{"name=generalize:-5", "want a step"},
		{"name=generalize:1e3", "want a step"},
		{"name=generalize:.5", "want a step"},
		{"name=generalize:5.", "want a step"},
		{"name=generalize:16dp", "Ndp with N in 0..15"},
		{"name=generalize:02dp", "Ndp"},
		{"name=generalize:prefix0", "prefixN"},
		{"name=generalize:prefix", "prefixN"},
		{"name=generalize:week", "want a step"},
		{"a..b=keep", "empty segment"},
		{".a=keep", "empty segment"},
		{"a.=keep", "empty segment"},
		{"a\nb=keep", "control character"},
		{"a=b=keep", "unknown action"},
		{strings.Repeat("a", 300) + "=keep", "field path of 300 bytes"},
		{strings.Repeat("a.", 40) + "a=keep", "segments"},
		{strings.Repeat("x", MaxRuleLen+1), "field rule of"},
	}
	for _, tc := range bad {
		_, err := ParseRule(tc.in)
		if !errors.Is(err, ErrBadRule) {
			t.Errorf("ParseRule(%q) = %v, want ErrBadRule", tc.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseRule(%q) error %q does not say %q", tc.in, err, tc.msg)
		}
	}
}

func TestParseRulesDuplicate(t *testing.T) {
	_, err := ParseRules([]string{"a=keep", "b=drop", "a=redact"})
	if !errors.Is(err, ErrBadRule) || !strings.Contains(err.Error(), "two rules") {
		t.Fatalf("duplicate path: %v", err)
	}
	rules, err := ParseRules([]string{"a=keep", "a.b=drop"})
	if err != nil || len(rules) != 2 {
		t.Fatalf("nested rules: %v %v", rules, err)
	}
}
