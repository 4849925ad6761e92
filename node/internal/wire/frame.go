package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Type tags a frame.
type Type byte

// Frame types. A stream carries frames of one protocol; each protocol documents the order.
const (
	TypeHello    Type = 'H' // sync: Hello
	TypeMerkle   Type = 'M' // sync: one merkle.Session message
	TypeBatch    Type = 'E' // sync and push: a Batch of envelopes
	TypeEnd      Type = 'Z' // sync: End, the sender has sent everything
	TypeDone     Type = 'D' // sync: Done, the receiver applied everything
	TypePushOpen Type = 'O' // push: PushOpen, first frame of a push stream
	TypeAck      Type = 'A' // push: Ack of one Batch
	TypePair     Type = 'P' // pairing: a JSON pairing message
	TypeMembers  Type = 'L' // members: the device list a device tells a blind replica (JSON)
)

// Hard caps.
const (
	// MaxFrame is the largest frame (type byte and body) any meshsync stream accepts.
	MaxFrame = 4 << 20
	// MaxPairFrame is the largest frame of the pairing protocol, which is open to
	// strangers while an invite is out.
	MaxPairFrame = 64 << 10
	// MaxBatchEnvelopes is the most envelopes one Batch may carry.
	MaxBatchEnvelopes = 16384
)

// Errors returned by the decoders.
var (
	// ErrTooLarge means a frame or a field exceeds its hard cap.
	ErrTooLarge = errors.New("wire: too large")
	// ErrMalformed means bytes that do not decode as the expected message.
	ErrMalformed = errors.New("wire: malformed message")
)

// WriteFrame writes one frame: a 4-byte big-endian length of what follows, the type byte
// and the body.
func WriteFrame(w io.Writer, t Type, body []byte) error {
	if len(body)+1 > MaxFrame {
		return fmt.Errorf("write frame %c of %d bytes: %w", t, len(body), ErrTooLarge)
	}
	buf := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)+1))
	buf[4] = byte(t)
	buf = append(buf, body...)
	_, err := w.Write(buf)
	return err
}

// WriteFramed writes a frame already encoded with its length prefix and type (as
// BatchFrame.Frame returns it), checking its length against MaxFrame.
func WriteFramed(w io.Writer, frame []byte) error {
	if len(frame) < 5 || int(binary.BigEndian.Uint32(frame)) != len(frame)-4 {
		return fmt.Errorf("write frame: %w: length prefix does not match", ErrMalformed)
	}
	if len(frame)-4 > MaxFrame {
		return fmt.Errorf("write frame %c of %d bytes: %w", frame[4], len(frame)-5, ErrTooLarge)
	}
	_, err := w.Write(frame)
	return err
}

// initialFrameBuf is the first allocation for a frame body; it doubles as bytes arrive.
const initialFrameBuf = 64 << 10

// ReadFrame reads one frame whose length is at most max (and never more than MaxFrame).
// A larger length prefix is refused before its body is read or allocated.
func ReadFrame(r io.Reader, limit int) (Type, []byte, error) {
	return ReadFrameAfter(r, limit, 0)
}

// ReadFrameAfter is ReadFrame on a stream that already delivered a frame of proven
// bytes in full: the first allocation may be that large, since the peer has shown it
// sends what it announces (memory pinned by a stalled frame stays within what the stream
// carried). A bulk transfer then reads each batch into one allocation, without the
// copies of growing it.
func ReadFrameAfter(r io.Reader, limit, proven int) (Type, []byte, error) {
	return ReadFrameInto(r, limit, proven, nil)
}

// ReadFrameInto is ReadFrameAfter that reads the body into spare when it has the room
// (the body returned is then spare[:len]): a receiver hands back the bodies of frames
// it is done with, so that a bulk transfer reads into the same few buffers instead of
// allocating (and zeroing) each batch anew. spare is memory already held, so it is used
// whatever the length announced; a frame that does not fit is read as ReadFrameAfter
// reads it, and spare is left alone.
func ReadFrameInto(r io.Reader, limit, proven int, spare []byte) (Type, []byte, error) {
	limit = min(limit, MaxFrame)
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, nil, fmt.Errorf("read frame: empty frame: %w", ErrMalformed)
	}
	if uint64(n) > uint64(limit) {
		return 0, nil, fmt.Errorf("read frame of %d bytes, cap %d: %w", n, limit, ErrTooLarge)
	}
	if cap(spare) > 0 && int(n)-1 <= cap(spare) {
		var t [1]byte
		body := spare[:n-1]
		if _, err := io.ReadFull(r, t[:]); err != nil {
			return 0, nil, fmt.Errorf("read frame body: %w", unexpectedEOF(err))
		}
		if _, err := io.ReadFull(r, body); err != nil {
			return 0, nil, fmt.Errorf("read frame body: %w", unexpectedEOF(err))
		}
		return Type(t[0]), body, nil
	}
	// Memory grows with the bytes that actually arrive, not with the length announced: a
	// peer that announces 4 MiB and sends a byte now and then pins only what it sent (or,
	// past proven, what the stream carried before).
	// Each step at most doubles what arrived, or takes the short rest with it (then up to
	// 2.5 times): a 1 MiB batch costs 0.9 MiB of copies on its way up, not 2.
	buf := make([]byte, 0, min(int(n), max(initialFrameBuf, proven)))
	for len(buf) < int(n) {
		if len(buf) == cap(buf) {
			next := min(2*cap(buf), int(n))
			if int(n)-next < cap(buf)/2 {
				next = int(n)
			}
			buf = append(make([]byte, 0, next), buf...)
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), int(n))])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < int(n) {
			return 0, nil, fmt.Errorf("read frame body: %w", unexpectedEOF(err))
		}
	}
	return Type(buf[0]), buf[1:], nil
}

// unexpectedEOF is err, with an EOF inside a frame reported as io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadExpect reads one frame and checks its type.
func ReadExpect(r io.Reader, max int, want Type) ([]byte, error) {
	t, body, err := ReadFrame(r, max)
	if err != nil {
		return nil, err
	}
	if t != want {
		return nil, fmt.Errorf("got frame %q, want %q: %w", byte(t), byte(want), ErrMalformed)
	}
	return body, nil
}
