package cpace

import "crypto/sha512"

// sidLabel separates meshsync's session ids from any other hash of the same inputs.
const sidLabel = "meshsync/cpace/sid/v1"

// SIDLen is the length of the session id Bind derives.
const SIDLen = 32

// Binding is the channel identifier and session id of one CPace run, both
// derived by Bind from facts both peers know before the run.
type Binding struct {
	// CI is lv_cat(initiator, responder): both peer ids, length-prefixed,
	// initiator first. It is hashed into the password generator and never sent.
	CI []byte
	// SID is SHA-512(lv_cat("meshsync/cpace/sid/v1", protocol, initiator,
	// responder, nonce)) cut to SIDLen bytes. It enters both the generator and
	// the final ISK hash.
	SID []byte
}

// Bind derives the CI and sid with which meshsync runs CPace between two
// libp2p peers. initiator and responder are the two peer ids as bytes
// ([]byte(peer.ID), the multihash of each public key), in role order — in
// pairing by short code the joiner initiates and the inviter responds;
// protocol is the libp2p protocol id the run happens on (for example
// "/meshsync/pair-short/1.0.0"); nonce may be nil, or a fresh value the
// initiator chose and sent in clear before its CPace message.
//
// Why this shape, following the draft's guidance on party identifiers:
//
//   - Both peer ids go into CI, initiator first, so the roles are bound to the
//     identities and a relay that connects A to some C holding the same code
//     gets a different generator, hence no common key. Both parties know both
//     ids from the authenticated libp2p connection before CPace starts (each
//     side uses its own id and the connection's remote id), so nothing extra
//     is sent, and CI stays private. The draft prefers CI over AD for ids:
//     the binding is implicit and no later identity check can be forgotten.
//   - The protocol id goes into sid, so the same code used on another
//     protocol (or another version of this one) yields unrelated keys.
//     The ids are repeated there so that sid alone names the session, and the
//     optional nonce makes it unique per attempt, as the draft recommends for
//     sid ("SHOULD NOT be reused"); without one, two attempts between the same
//     two peers share a sid, which the draft's analysis without a unique sid
//     still covers.
//
// Callers pass the result as Inputs.CI and Inputs.SID on both sides.
func Bind(protocol string, initiator, responder, nonce []byte) Binding {
	h := sha512.Sum512(lvCat([]byte(sidLabel), []byte(protocol), initiator, responder, nonce))
	return Binding{
		CI:  lvCat(initiator, responder),
		SID: h[:SIDLen],
	}
}
