// Package wire holds the byte formats of meshsync's libp2p protocols: the length-prefixed
// frames every stream carries, the messages of the sync and push protocols, the pairing
// messages and the invite code.
//
// It is internal plumbing of package node, kept apart so that every decoder of outside
// bytes sits in one place with its fuzz target. It does no I/O beyond the io.Reader and
// io.Writer it is handed, starts no goroutine and reads no clock.
//
// # Usage
//
//	if err := wire.WriteFrame(w, wire.TypeHello, hello.Marshal()); err != nil { … }
//	t, body, err := wire.ReadFrame(r, wire.MaxFrame)
//	h, err := wire.UnmarshalHello(body)
//
//	code := inv.Encode()             // compact: "3QQ1K6evhtY8HyuT5GS8k…" (compact.go)
//	inv, err := wire.ParseInvite(code) // compact or long; errors.Is(err, wire.ErrBadInvite) on a typo
//	sc, err := wire.ParseShortCode("4-garden-orbit-pencil") // shortcode.go
//
// # Caveats
//
// Every length is checked against a hard cap before anything is allocated; a frame
// larger than its cap is refused with ErrTooLarge without reading its body. The formats
// are versioned by the protocol ids (/meshsync/sync/1.0.0 …), not by fields inside them,
// with one exception: the sync Hello carries Version (2 since it gained the tombstone
// horizon and last contact), and a version-1 Hello still decodes so that a node can tell
// its peer which version it speaks.
package wire
