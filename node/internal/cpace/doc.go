// Package cpace implements CPace, the CFRG's balanced password-authenticated key
// exchange (draft-irtf-cfrg-cpace), with the cipher suite CPACE-RISTR255-SHA512:
// the group ristretto255 (RFC 9496) and the hash SHA-512, in the
// initiator-responder setting. meshsync runs it to pair two devices from a short
// code a person reads aloud: an eavesdropper learns nothing it could test guesses
// against offline, and an active attacker gets one guess per run.
//
// It is a pure core: no I/O beyond the io.Reader of randomness it is handed, no
// goroutine, no clock. The caller carries the two messages.
//
// # Protocol
//
// Both parties hold the password-related string PRS, the channel identifier CI and
// the session id sid. Each derives the secret generator g from
// SHA-512(generator_string("CPaceRistretto255", PRS, CI, sid, 128)) through the
// ristretto255 element derivation function, samples a secret scalar y and sends
// Y = y·g with its associated data AD. On receipt each computes K = y·Y_peer,
// aborts if the peer's Y does not decode or K is the identity, and outputs
//
//	ISK = SHA-512(lv_cat("CPaceRistretto255_ISK", sid, K) || lv_cat(Ya, ADa) || lv_cat(Yb, ADb))
//
// where a and b are the initiator and the responder, whichever side computes it
// (transcript_ir). Every step follows the draft, including its prepend_len
// (LEB128 length prefix) and lv_cat encodings; the draft's test vectors for this
// suite are in testdata and checked value by value.
//
// # Wire format
//
// A message is lv_cat(Y, AD) — exactly the party's half of the transcript:
//
//	0x20 || Y (32 bytes, canonical ristretto255 encoding) || LEB128(len(AD)) || AD
//
// with AD at most MaxADLen bytes. DecodeMessage accepts only this form (minimal
// lengths, no trailing bytes), so an accepted message re-encodes to itself.
//
// # Usage
//
//	b := cpace.Bind(proto, []byte(joinerID), []byte(inviterID), nil) // same on both sides
//	st, msg, err := cpace.Start(cpace.Initiator, cpace.Inputs{PRS: code, CI: b.CI, SID: b.SID}, rand.Reader)
//	// send msg, receive peerMsg
//	isk, peerAD, err := st.Finish(peerMsg)
//	// derive keys from isk with HKDF, then confirm them (see Caveats)
//
// The responder does the same with cpace.Responder; either side may send first on
// the wire, the roles only fix the transcript order.
//
// # Caveats
//
//   - Finish does not tell a wrong password: both sides simply get unrelated ISKs.
//     The caller MUST confirm the key before trusting the peer or sending it
//     anything secret, for instance by MACs over each side's message under a key
//     derived from ISK, and count a failed confirmation as a failed attempt. The
//     draft asks that ISK go through a KDF (HKDF) before use; never use it raw.
//   - A State serves one Finish. A failed attempt costs the attacker one guess
//     only if every retry starts afresh; limiting the number of attempts (three
//     per short code) is the caller's job.
//   - Constant time where the draft requires it: the element derivation from the
//     password hash and the scalar multiplications are the library's
//     constant-time code, the secret scalar is loaded without a variable-time
//     check, and K is compared with the identity by crypto/subtle. Decoding the
//     peer's public share is variable time, which is fine for public data.
//   - K and the secret scalar never leave the package, as the draft requires.
//   - The group comes from github.com/gtank/ristretto255 v0.1.2 (its only tagged
//     release); the draft's generator and protocol vectors confirm that its
//     element derivation, encoding and decoding are RFC 9496's.
package cpace
