package consent

import (
	"errors"
	"strings"
	"testing"
)

func TestApplyRules(t *testing.T) {
	tests := []struct {
		name  string
		rules []string
		doc   string
		want  string
	}{
		// Deny by default.
		{"no rules send nothing", nil, `{"a":1,"b":"x"}`, `{}`},
		{"unnamed field dropped", []string{"a=keep"}, `{"a":1,"b":"secret"}`, `{"a":1}`},
		{"rule for an absent field", []string{"zz=keep"}, `{"a":1}`, `{}`},

		// keep, drop, redact.
		{"keep scalar types", []string{"s=keep", "n=keep", "b=keep", "z=keep"}, `{"s":"x","n":1.5,"b":true,"z":null}`, `{"b":true,"n":1.5,"s":"x","z":null}`},
		{"keep keeps big numbers exactly", []string{"n=keep"}, `{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
		{"drop", []string{"a=drop", "b=keep"}, `{"a":"secret","b":2}`, `{"b":2}`},
		{"redact scalar", []string{"e=redact"}, `{"e":"me@x.org"}`, `{"e":"[redacted]"}`},
		{"redact object whole", []string{"o=redact"}, `{"o":{"k":"v"}}`, `{"o":"[redacted]"}`},
		{"redact array whole", []string{"a=redact"}, `{"a":[1,2,3]}`, `{"a":"[redacted]"}`},
		{"redact null", []string{"a=redact"}, `{"a":null}`, `{"a":"[redacted]"}`},

		// Nested objects.
		{"nested keep", []string{"addr.city=keep"}, `{"addr":{"city":"Lyon","street":"rue X"}}`, `{"addr":{"city":"Lyon"}}`},
		{"keep subtree", []string{"addr=keep"}, `{"addr":{"city":"Lyon","geo":{"lat":1}}}`, `{"addr":{"city":"Lyon","geo":{"lat":1}}}`},
		{"specific rule beats ancestor", []string{"addr=keep", "addr.street=drop"}, `{"addr":{"city":"Lyon","street":"rue X"}}`, `{"addr":{"city":"Lyon"}}`},
		{"ancestor rule inherited below", []string{"addr=redact", "addr.city=keep"}, `{"addr":{"city":"Lyon","street":"rue X"}}`, `{"addr":{"city":"Lyon","street":"[redacted]"}}`},
		{"ancestor drop, child keep", []string{"addr=drop", "addr.city=keep"}, `{"addr":{"city":"Lyon","street":"rue X"}}`, `{"addr":{"city":"Lyon"}}`},
		{"empty implicit object omitted", []string{"addr.city=keep"}, `{"addr":{"street":"rue X"}}`, `{}`},
		{"rule path through a scalar", []string{"a.b=keep"}, `{"a":"secret"}`, `{}`},
		{"deep path", []string{"a.b.c.d=keep"}, `{"a":{"b":{"c":{"d":4,"e":5}}}}`, `{"a":{"b":{"c":{"d":4}}}}`},
		{"dotted key not addressable", []string{"a.b=keep"}, `{"a.b":"secret","a":{"b":1}}`, `{"a":{"b":1}}`},

		// Arrays: a rule applies to each element.
		{"array of objects", []string{"items.price=keep"}, `{"items":[{"price":1,"sku":"x"},{"price":2,"sku":"y"}]}`, `{"items":[{"price":1},{"price":2}]}`},
		{"array element without the field", []string{"items.price=keep"}, `{"items":[{"sku":"x"},{"price":2}]}`, `{"items":[{"price":2}]}`},
		{"array keep", []string{"tags=keep"}, `{"tags":["a","b"]}`, `{"tags":["a","b"]}`},
		{"array drop", []string{"tags=drop"}, `{"tags":["a","b"]}`, `{}`},
		{"nested arrays", []string{"m.v=keep"}, `{"m":[[{"v":1,"w":0}],[{"v":2}]]}`, `{"m":[[{"v":1}],[{"v":2}]]}`},
		{"array generalize each", []string{"ages=generalize:10"}, `{"ages":[37,41,"x"]}`, `{"ages":[30,40]}`},
		{"array with scalars under implicit path", []string{"a.b=keep"}, `{"a":["secret",{"b":1}]}`, `{"a":[{"b":1}]}`},

		// generalize: numbers to a step (floor).
		{"step 10", []string{"n=generalize:10"}, `{"n":37}`, `{"n":30}`},
		{"step 10 negative", []string{"n=generalize:10"}, `{"n":-37}`, `{"n":-40}`},
		{"step 10 exact", []string{"n=generalize:10"}, `{"n":40}`, `{"n":40}`},
		{"step 0.5", []string{"n=generalize:0.5"}, `{"n":3.74}`, `{"n":3.5}`},
		{"step 0.1 exact decimal", []string{"n=generalize:0.1"}, `{"n":0.3}`, `{"n":0.3}`},
		{"step on exponent number", []string{"n=generalize:100"}, `{"n":1.234e3}`, `{"n":1200}`},
		{"step on huge exponent dropped", []string{"n=generalize:100"}, `{"n":1e999}`, `{}`},
		{"step on a string dropped", []string{"n=generalize:10"}, `{"n":"37"}`, `{}`},
		{"step on a bool dropped", []string{"n=generalize:10"}, `{"n":true}`, `{}`},
		{"null stays null", []string{"n=generalize:10"}, `{"n":null}`, `{"n":null}`},
		// generalize: coordinates to N decimals.
		{"2dp", []string{"lat=generalize:2dp"}, `{"lat":48.85661}`, `{"lat":48.85}`},
		{"2dp negative", []string{"lon=generalize:2dp"}, `{"lon":-2.35222}`, `{"lon":-2.36}`},
		{"0dp", []string{"lat=generalize:0dp"}, `{"lat":48.9}`, `{"lat":48}`},
		{"2dp over an object sends no key", []string{"geo=generalize:2dp"}, `{"geo":{"lat":48.85661,"lon":2.35222,"name":"home"}}`, `{"geo":{}}`},
		{"2dp over named fields", []string{"geo.lat=generalize:2dp", "geo.lon=generalize:2dp"}, `{"geo":{"lat":48.85661,"lon":2.35222,"name":"home"}}`, `{"geo":{"lat":48.85,"lon":2.35}}`},
		{"2dp over GeoJSON pair", []string{"coordinates=generalize:1dp"}, `{"coordinates":[2.3522,48.8566]}`, `{"coordinates":[2.3,48.8]}`},
		// generalize: times.
		{"hour", []string{"at=generalize:hour"}, `{"at":"2026-03-04T17:20:31.5Z"}`, `{"at":"2026-03-04T17:00:00Z"}`},
		{"day converts to UTC", []string{"at=generalize:day"}, `{"at":"2026-03-04T00:30:00+01:00"}`, `{"at":"2026-03-03T00:00:00Z"}`},
		{"month", []string{"at=generalize:month"}, `{"at":"2026-03-04T17:20:00Z"}`, `{"at":"2026-03-01T00:00:00Z"}`},
		{"year", []string{"at=generalize:year"}, `{"at":"2026-03-04T17:20:00Z"}`, `{"at":"2026-01-01T00:00:00Z"}`},
		{"minute", []string{"at=generalize:minute"}, `{"at":"2026-03-04T17:20:59Z"}`, `{"at":"2026-03-04T17:20:00Z"}`},
		{"date only to month", []string{"d=generalize:month"}, `{"d":"2026-03-04"}`, `{"d":"2026-03-01"}`},
		{"not a time dropped", []string{"at=generalize:day"}, `{"at":"yesterday"}`, `{}`},
		{"time unit on a number dropped", []string{"at=generalize:day"}, `{"at":1700000000}`, `{}`},
		// generalize: string prefix.
		{"prefix3", []string{"zip=generalize:prefix3"}, `{"zip":"69007"}`, `{"zip":"690"}`},
		{"prefix counts characters", []string{"s=generalize:prefix2"}, `{"s":"éàü"}`, `{"s":"éà"}`},
		{"prefix of a short string", []string{"s=generalize:prefix5"}, `{"s":"ab"}`, `{"s":"ab"}`},
		{"prefix on a number dropped", []string{"s=generalize:prefix2"}, `{"s":12345}`, `{}`},

		// generalize: object keys are not sent unless a rule path names them, since a key
		// can be the data itself ({"alice@example.com": 3}).
		{"key is an email", []string{"counts=generalize:10"}, `{"counts":{"alice@example.com":37}}`, `{"counts":{}}`},
		{"key is an email, time values", []string{"log=generalize:day"}, `{"log":{"bob@example.com":"2026-03-04T17:20:00Z"}}`, `{"log":{}}`},
		{"key of an object in an array", []string{"xs=generalize:10"}, `{"xs":[{"alice@example.com":37},41]}`, `{"xs":[{},40]}`},
		{"key of a nested object", []string{"a=generalize:prefix2"}, `{"a":{"b":{"alice@example.com":"xyz"}}}`, `{"a":{}}`},
		{"unnamed key beside a named one", []string{"counts=generalize:10", "counts.total=generalize:10"}, `{"counts":{"total":37,"alice@example.com":12}}`, `{"counts":{"total":30}}`},
		{"unnamed key below a named one", []string{"counts=generalize:10", "counts.by.day=keep"}, `{"counts":{"by":{"day":1,"carol@example.com":2}}}`, `{"counts":{"by":{"day":1}}}`},

		// Output is canonical.
		{"sorted keys, no HTML escaping", []string{"b=keep", "a=keep"}, `{ "b" : "<x&y>" , "a" : 1 }`, `{"a":1,"b":"<x&y>"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := testGrant(t, tc.rules...)
			got, err := Apply(g, []byte(tc.doc), testKey)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Apply(%s)\n got  %s\n want %s", tc.doc, got, tc.want)
			}
		})
	}
}

func TestApplyPseudonymize(t *testing.T) {
	doc := []byte(`{"user":"alice@example.org","tags":["x","y"],"obj":{"k":"v"},"n":null,"num":42}`)
	rules := []string{"user=pseudonymize", "tags=pseudonymize", "obj=pseudonymize", "n=pseudonymize", "num=pseudonymize"}
	g := testGrant(t, rules...)
	out1, err := Apply(g, doc, testKey)
	if err != nil {
		t.Fatal(err)
	}
	out2, _ := Apply(g, doc, testKey)
	if string(out1) != string(out2) {
		t.Fatalf("pseudonyms not stable for one destination:\n%s\n%s", out1, out2)
	}
	for _, secret := range []string{"alice", "example", `"x"`, `"v"`, "42"} {
		if strings.Contains(string(out1), secret) {
			t.Errorf("output %s holds %s", out1, secret)
		}
	}
	v, _ := decodeJSON(out1)
	m := v.(map[string]any)
	p, _ := m["user"].(string)
	if len(p) != 24 || strings.Trim(p, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Errorf("pseudonym %q: want 24 base32 characters", p)
	}
	if tags := m["tags"].([]any); len(tags) != 2 || tags[0] == tags[1] {
		t.Errorf("array elements pseudonymized each: %v", tags)
	}
	if m["n"] != nil {
		t.Errorf("null pseudonymized to %v, want null", m["n"])
	}

	// The same value in another record gets the same pseudonym (joinable for this destination).
	other, _ := Apply(g, []byte(`{"user":"alice@example.org"}`), testKey)
	if !strings.Contains(string(other), p) {
		t.Errorf("same value, other record: %s lacks %s", other, p)
	}

	// Another destination: unrelated pseudonyms.
	g2 := g
	g2.Destination = peerB
	outB, _ := Apply(g2, doc, testKey)
	if strings.Contains(string(outB), p) {
		t.Errorf("destination B got A's pseudonym %s: %s", p, outB)
	}
	// Another consent key (another mesh): unrelated pseudonyms.
	k2 := append([]byte(nil), testKey...)
	k2[0] ^= 1
	outK, _ := Apply(g, doc, k2)
	if strings.Contains(string(outK), p) {
		t.Errorf("another key gave the same pseudonym")
	}
	// A string and a number with the same text differ.
	sn, _ := Apply(testGrant(t, "a=pseudonymize", "b=pseudonymize"), []byte(`{"a":"42","b":42}`), testKey)
	m2, _ := decodeJSON(sn)
	if mm := m2.(map[string]any); mm["a"] == mm["b"] {
		t.Errorf("\"42\" and 42 share a pseudonym")
	}
}

func TestApplyErrors(t *testing.T) {
	g := testGrant(t, "a=keep")
	for _, doc := range []string{`[1,2]`, `"x"`, `12`, `null`, `{"a":1`, `{"a":1} {}`, ``, `{"a":1}x`} {
		if _, err := Apply(g, []byte(doc), testKey); !errors.Is(err, ErrNotObject) {
			t.Errorf("Apply(%q) = %v, want ErrNotObject", doc, err)
		}
	}
	big := make([]byte, MaxDocSize+1)
	if _, err := Apply(g, big, testKey); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized doc: %v", err)
	}
	// Pseudonymize without a key is refused, not done with an empty key.
	if _, err := Apply(testGrant(t, "a=pseudonymize"), []byte(`{"a":1}`), nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v", err)
	}
	// Other rules need no key.
	if out, err := Apply(g, []byte(`{"a":1}`), nil); err != nil || string(out) != `{"a":1}` {
		t.Errorf("keep without key: %s %v", out, err)
	}
	// Invalid rules in a hand-made grant are refused.
	bad := g
	bad.Fields = []FieldRule{{Path: "a", Action: "share"}}
	if _, err := Apply(bad, []byte(`{"a":1}`), testKey); !errors.Is(err, ErrBadRule) {
		t.Errorf("bad rule: %v", err)
	}
}
