// Package session is one side of a meshsync sync session as a pure state machine: it
// takes the peer's frames, the store's answers and the caller's apply reports, and
// returns frames to write and groups of envelopes to apply, in the manner of
// merkle.Session and etcd raft's RawNode. It does no I/O, starts no goroutine and reads
// no clock (Config.Now); package node drives it over a libp2p stream (node/sync.go).
//
// # The protocol
//
// A session, on one stream opened by the initiator:
//
//	I → R  Hello      R → I  Hello          (mesh proof, epoch, progress, Merkle root,
//	                                         tombstone horizon, last contact)
//	I ↔ R  Merkle …                          (only when a direction needs it)
//	I ↔ R  Batch … End                       (both ways at once)
//	I ↔ R  Done                              (what each side applied)
//
// Each direction uses the fast path ("every envelope after sequence S of my epoch E")
// when the receiver remembers the sender's epoch or holds nothing yet, and nothing at all
// when the roots are equal. From nothing (S = 0) between two sides of sync version 5,
// the fast path goes in record-id order instead (ordered.go): the sender's records as its
// store held them at its hello, so that the receiver's indexes grow by appends, with a
// cursor that lets an interrupted transfer resume; otherwise both directions use the result of one Merkle
// reconciliation over the stores' summaries. A side whose last contact is older than the
// other's tombstone horizon resyncs fully over that reconciliation (PlanResync).
//
// A receiver takes only what it asked for: after a reconciliation, envelopes of the ids
// it lacks; on the fast path, batches that continue the sequence range from the number it
// remembers up to the LastSeq of the sender's hello, with at most one envelope per
// number; in id order, records of growing ids past its cursor, at most as many as the
// sender's hello counts. Anything else, and any envelope its store refuses as malformed or tampered
// (Applied.Bad), ends the session with ErrProtocol (Result.Violation names the bound). It
// applies every Config.ApplyBatch envelopes or ApplyBytes bytes, at frame boundaries, and
// ends after MaxBytes with ErrSessionCapped, once what arrived is applied. Each group
// carries the progress it earns (Apply.Progress); the last one records that everything
// the peer held at its hello is here. The caller may apply groups while it reads on
// (Ready, InFlight), reporting them in order.
//
// # Usage
//
//	s := session.New(cfg) // cfg.Hello read from the store, cfg.Source over it
//	out, err := s.Start()
//	for err == nil && !out.Done {
//		write(out.Send...)
//		if out.Transfer {
//			go run(s.Sender()) // write each Sender.Next frame until End
//		}
//		switch {
//		case out.Apply != nil:
//			out, err = s.Applied(apply(out.Apply, out.Apply.Progress(held)))
//		case out.Received:
//			out, err = s.Sent(waitSender()) // then Done goes out
//		default:
//			out, err = s.Step(read())
//		}
//	}
//
// The Sender and the Session run at once (both directions travel together, or two
// stores with a lot to send would block each other's writes), share nothing mutable, and
// each belongs to one goroutine. Both read the Source; the Sender only after Transfer.
//
// # Caveats
//
//   - On an error the caller still writes Output.Send (a responder's hello goes out
//     before it finds the store rolled back), then resets the stream.
//   - The rollback check reads the store's position again (Source.Position): a push may
//     have taken it past the hello's number since.
//   - A peer can always claim to hold a different set than it does; a session only
//     guarantees that what it receives is what it asked for, within the byte cap.
package session
