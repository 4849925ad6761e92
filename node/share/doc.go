// Package share is the libp2p protocol that carries a consented share to its destination:
// /meshsync/share/1.0.0.
//
// A device of the mesh (the sender) opens one stream to the destination, a peer that is
// not a device of the mesh, and sends the anonymized documents of one grant; the
// destination answers with a signed receipt (package consent) that says what it received,
// under which grant and purpose. Deciding whether a share may happen, anonymizing the
// documents and auditing are package consent's and the node's work; this package only
// moves bytes, in bounded frames, with a deadline on every step.
//
// # Wire format
//
// Frames are those of package node/internal/wire: a 4-byte big-endian length of what
// follows, a type byte, the body. One stream carries one share:
//
//	sender → destination   'H' header: canonical JSON {"grant":ID,"purpose":P,"fields":[…],"count":N}
//	                       'B' batch, any number: u32 n, then n × (u32 len, document)
//	                       'Z' end (empty body)
//	destination → sender   'R' the signed receipt (consent.SignedReceipt.Marshal)
//	                    or 'X' a refusal: a short UTF-8 reason
//
// Fields are the grant's rules that send something, in the CLI syntax, sorted
// (consent.FieldsSent). Every document is a compact JSON object (the canonical output of
// consent.Apply); the header's count must match the documents that follow. Record keys,
// record ids, the collection name and every key of the mesh never cross this protocol.
//
// # Usage
//
// The destination (what `meshsync receive` runs):
//
//	r := share.NewReceiver(h, &share.Options{OnShare: func(s share.Share) error { … write s.Docs … }})
//	defer r.Close()
//
// The sender (what node.Node.Share runs after consent.Registry.Authorize):
//
//	res, err := share.Send(ctx, h, dest, share.Outgoing{Grant: g.ID, Purpose: g.Purpose,
//		Fields: consent.FieldsSent(g.Fields), Docs: docs})
//	rcpt, err := consent.ParseSignedReceipt(res.Receipt)
//
// # Caveats
//
//   - The destination holds a whole share in memory (Options.MaxBytes, 256 MiB by default)
//     before it signs the receipt, because the receipt covers the digest of every document.
//     A frame that would pass MaxBytes, or what is left of MaxTotalBytes, is refused from
//     its announced length, before its body is read.
//   - By default a receiver takes shares from any peer that can connect; Options.Allow
//     narrows that to the senders it names (`meshsync receive --allow`). A sender it
//     refuses reads why, and nothing it sent is kept.
//   - A share that breaks off midway may have delivered some documents: Result.Started says
//     that bytes of documents may have left, and the sender must audit the share then.
//   - The protocol authenticates both ends through the libp2p secure channel only; the
//     receipt signature is what makes the destination's acknowledgement checkable later.
package share
