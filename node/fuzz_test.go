package node

import (
	"encoding/json"
	"testing"
)

// FuzzPairMsg feeds arbitrary bytes to the pairing message decoder (the one decoder open
// to strangers); what decodes must encode and decode to the same message.
func FuzzPairMsg(f *testing.F) {
	f.Add([]byte(`{"proof":"AAEC","name":"phone"}`))
	f.Add([]byte(`{"mesh_key":"AAAA","devices":[{"id":"x","peer":"12D3KooWGJL2VrN2rTjU6jPwXBWyt3uDQbXCr6XKbn6Fs2sGKhsE"}]}`))
	f.Add([]byte(`{"ok":true}`))
	f.Add([]byte(`{"nonce":"AAECAwQFBgcICQoLDA0ODw==","pake":"IOLaGOIK","confirm":"AAEC"}`))
	f.Add([]byte(`{"devices":[{"peer":"not a peer"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodePairMsg(b)
		if err != nil {
			return
		}
		re, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		m2, err := decodePairMsg(re)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		re2, _ := json.Marshal(m2)
		if string(re) != string(re2) {
			t.Fatalf("not stable:\n%s\n%s", re, re2)
		}
	})
}
