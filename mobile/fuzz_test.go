package mobile

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/meshsync/meshsync/node/view"
)

// FuzzParseOptions: any options string is refused or accepted without panic, and an
// accepted one encodes and decodes to the same options.
func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{"", loopback, `{"debounce_ms":500,"background_sync":true}`, `{"listen":[]}`,
		`{"mdns":null}`, `{"x":1}`, `{} {}`, `{"debounce_ms":-1}`, `[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseOptions(s)
		if err != nil {
			return
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		o2, err := parseOptions(string(b))
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(o, o2) && !(len(o.Listen) == 0 && len(o2.Listen) == 0) {
			t.Fatalf("round trip: %+v → %s → %+v", o, b, o2)
		}
	})
}

// FuzzParsePolicy: an accepted policy document round-trips through its output form.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{`{}`, `{"strategy":"user","fallback":"merge","deadline_seconds":60}`,
		`{"strategy":"priority","priority_field":"a.b","device_rank":{"d1":2}}`, `{"critical":["x"]}`, `{"strategy":1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePolicy(s)
		if err != nil {
			return
		}
		b, err := json.Marshal(view.FromPolicy(p, false))
		if err != nil {
			t.Fatal(err)
		}
		p2, err := parsePolicy(string(b))
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		b2, _ := json.Marshal(view.FromPolicy(p2, false))
		if string(b) != string(b2) {
			t.Fatalf("round trip: %s → %s", b, b2)
		}
	})
}

// FuzzParseConsentRequest: any request document is refused or accepted without panic, and
// an accepted one round-trips.
func FuzzParseConsentRequest(f *testing.F) {
	f.Add(`{"app":"a","collection":"notes","purpose":"p","destination":"x","fields":["a=drop","b=generalize:10"],"for_seconds":60}`)
	f.Add(`{"fields":["=?"]}`)
	f.Fuzz(func(t *testing.T, s string) {
		q, err := parseConsentRequest(s)
		if err != nil {
			return
		}
		d := consentRequestDoc{App: q.App, Collection: q.Collection, Purpose: q.Purpose, Destination: q.Destination,
			Fields: q.Fields, ForSeconds: int64(q.For.Seconds()), Note: q.Note}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		q2, err := parseConsentRequest(string(b))
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(q, q2) && !(len(q.Fields) == 0 && len(q2.Fields) == 0) {
			t.Fatalf("round trip: %+v → %s → %+v", q, b, q2)
		}
	})
}
