package consent

import "testing"

// BenchmarkApply anonymizes a typical 400-byte record with five rules.
func BenchmarkApply(b *testing.B) {
	g := testGrant(b, "title=keep", "author.email=redact", "author.id=pseudonymize", "at=generalize:day", "items.price=generalize:10")
	a, err := NewAnonymizer(g, testKey)
	if err != nil {
		b.Fatal(err)
	}
	doc := []byte(`{"title":"shopping list for the weekend","body":"milk, eggs, bread, and something for the party on saturday evening","author":{"email":"alice@example.org","id":"u-1234","name":"Alice"},"at":"2026-03-04T17:20:00+01:00","items":[{"sku":"a1","price":12.5},{"sku":"b2","price":3.99},{"sku":"c3","price":27}],"tags":["home","food"]}`)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Apply(doc); err != nil {
			b.Fatal(err)
		}
	}
}
