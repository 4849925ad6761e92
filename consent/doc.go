// Package consent decides what of a person's data may leave their own devices, and in what
// form: grants, field rules and anonymization, requests for grants, the audit log and
// share receipts.
//
// A [Grant] names one collection, one purpose, one destination (a libp2p peer id that is
// not a device of the mesh), an expiry, and a [FieldRule] per field: keep, drop, redact,
// pseudonymize or generalize. Deny by default everywhere: [Check] refuses unless a grant
// names exactly this collection, purpose and destination and is neither revoked nor
// expired, and [Apply] drops every field that no rule covers. Apply is a pure function of
// the grant, the document and the consent key; the record key and collection are not part
// of the document and never appear in its output.
//
// Pseudonyms are HMAC-SHA256 of the value's canonical JSON under a key derived (HKDF) from
// the consent key with the destination peer id as info: stable for one destination across
// records, shares and devices, unlinkable across destinations.
//
// A [Registry] keeps grants, revocations, requests and the audit log as records of reserved
// collections of a store ([GrantsCollection], [RevocationsCollection],
// [RequestsCollection], [AuditCollection]); they are encrypted and synced like any record,
// so a grant or a revocation made on one device holds on all of them after sync.
//
// # Usage
//
// The CLI and an embedding app:
//
//	reg, err := consent.New(st, consentKey, nil)
//	rules, err := consent.ParseRules([]string{"title=keep", "author=pseudonymize", "at=generalize:day"})
//	g, err := reg.Grant(consent.GrantSpec{Collection: "notes", Purpose: "research",
//		Destination: peerID, Expires: time.Now().Add(30 * 24 * time.Hour), Fields: rules})
//	_, err = reg.Revoke(g.ID) // or a unique prefix of at least 4 characters
//	q, err := reg.Request(consent.RequestSpec{App: "fitness", Collection: "runs", ...})
//	q, err = reg.Wait(ctx, q.ID) // until the person runs Approve or Deny
//
// The share protocol, for every session:
//
//	g, err := reg.Authorize(collection, purpose, dest) // audits a refusal itself
//	var de *consent.DeniedError
//	if errors.As(err, &de) { … print err and de.Hint() … }
//	docs, skipped, err := reg.Documents(g)            // anonymized, without record keys
//	… send docs; the destination answers with consent.SignReceipt(consent.NewReceipt(g, sender, docs, now), sign) …
//	_, err = reg.RecordShare(consent.Sent{Grant: g, Sender: self, Docs: docs}, receipt, verify)
//
// # Caveats
//
//   - Revocation is a write-once record in RevocationsCollection that nothing deletes; grant
//     records are never edited. A revocation therefore dominates every copy of the grant,
//     old or concurrent, on every device that has synced it. Until a device has seen it, that
//     device still shares: revocation takes effect at each device's next session after sync.
//     A denial of a request is also such a record, so it dominates a concurrent approval.
//   - Data already sent cannot be recalled.
//   - Field names that contain a dot cannot be named by a rule path; only a rule on an
//     ancestor covers them. A rule on an object covers the whole subtree: keep sends its
//     field names, redact and pseudonymize hide them, and generalize sends only the field
//     names that a rule path names (see [FieldRule]).
//   - Generalize floors numbers (step 10: 37 → 30, -37 → -40) and drops values it cannot
//     handle instead of sending them; prefixN sends short strings whole.
//   - Pseudonyms of low-entropy values (a yes/no, a small number) can be guessed by a
//     destination that sees many of them in context; generalize or drop such fields.
//   - The consent key must be the same on every device and must not rotate with the mesh
//     key epochs, or pseudonyms change.
//   - The audit log grows by one record per share or refusal and is never pruned yet.
//   - Clocks: expiry is checked against the local clock of the sharing device.
package consent
