package cpace

import (
	"encoding/binary"
	"fmt"
)

// This file holds the draft's string utilities (prepend_len, lv_cat,
// transcript_ir) and the decoder of a peer's message, the only function here
// that reads outside bytes.

// appendPrependLen appends prepend_len(data) to b: the length of data as
// LEB128 (seven bits a byte, least significant group first, bit 7 set while
// more bytes follow), then data itself. encoding/binary's uvarint is exactly
// this encoding.
func appendPrependLen(b, data []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// prependLen returns prepend_len(data).
func prependLen(data []byte) []byte {
	return appendPrependLen(make([]byte, 0, binary.MaxVarintLen64+len(data)), data)
}

// lvCat returns lv_cat(args...): prepend_len of each argument, concatenated.
func lvCat(args ...[]byte) []byte {
	n := 0
	for _, a := range args {
		n += binary.MaxVarintLen64 + len(a)
	}
	b := make([]byte, 0, n)
	for _, a := range args {
		b = appendPrependLen(b, a)
	}
	return b
}

// transcriptIR returns transcript_ir(Ya, ADa, Yb, ADb) = lv_cat(Ya, ADa) ||
// lv_cat(Yb, ADb), the transcript of the initiator-responder setting: the
// initiator's share always comes first, whichever side computes it.
func transcriptIR(ya, ada, yb, adb []byte) []byte {
	return append(lvCat(ya, ada), lvCat(yb, adb)...)
}

// encodeMessage returns the wire form of a CPace message, lv_cat(Y, AD).
func encodeMessage(y, ad []byte) []byte {
	return lvCat(y, ad)
}

// DecodeMessage splits a peer's CPace message into its public share Y (the
// 32-byte encoding of a ristretto255 element, not yet checked to be a valid
// element: Finish does that) and its associated data AD.
//
// The message must be exactly lv_cat(Y, AD) as Start produces it: minimal
// LEB128 lengths, a 32-byte Y, at most MaxADLen bytes of AD and nothing after
// it. Anything else is ErrMalformed, so that every accepted message has exactly
// one encoding and encodes back to the same bytes. The returned slices alias
// msg.
func DecodeMessage(msg []byte) (y, ad []byte, err error) {
	y, rest, err := readLV(msg, ShareLen)
	if err != nil {
		return nil, nil, fmt.Errorf("decode cpace message: share: %w", err)
	}
	if len(y) != ShareLen {
		return nil, nil, fmt.Errorf("decode cpace message: share of %d bytes, want %d: %w", len(y), ShareLen, ErrMalformed)
	}
	ad, rest, err = readLV(rest, MaxADLen)
	if err != nil {
		return nil, nil, fmt.Errorf("decode cpace message: associated data: %w", err)
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("decode cpace message: %d trailing bytes: %w", len(rest), ErrMalformed)
	}
	return y, ad, nil
}

// readLV reads one prepend_len field of at most limit bytes from the front of
// b and returns it and what follows. It refuses a non-minimal length encoding,
// a length over limit and a field that runs past the end of b.
func readLV(b []byte, limit int) (field, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, fmt.Errorf("truncated or overlong length: %w", ErrMalformed)
	}
	if k != uvarintLen(n) {
		return nil, nil, fmt.Errorf("non-minimal length encoding: %w", ErrMalformed)
	}
	if n > uint64(limit) {
		return nil, nil, fmt.Errorf("length %d over the limit of %d: %w", n, limit, ErrMalformed)
	}
	b = b[k:]
	if uint64(len(b)) < n {
		return nil, nil, fmt.Errorf("length %d but %d bytes left: %w", n, len(b), ErrMalformed)
	}
	return b[:n], b[n:], nil
}

// uvarintLen is the length of the minimal LEB128 encoding of n.
func uvarintLen(n uint64) int {
	k := 1
	for n >= 0x80 {
		n >>= 7
		k++
	}
	return k
}
