package wire

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/meshsync/meshsync/internal/vectors"
)

var seq = vectors.Counting

func arr32(start byte) (a [32]byte) { copy(a[:], seq(start, 32)); return }
func arr16(start byte) (a [16]byte) { copy(a[:], seq(start, 16)); return }

// wireVectors are the committed frames of every sync and push message: the fields, and the
// whole frame (length, type byte, body) that WriteFrame makes of them.
var wireVectors = []struct {
	name    string
	comment string
	typ     Type
	msg     interface{ Marshal() []byte }
	decode  func([]byte) (any, error)
}{
	{"hello_v5", "sync Hello, version 5: version, proof, epoch, known epoch, known seq, last seq, root count, root fingerprint, horizon, last contact, resume snapshot, resume after (id), scope (all flag, tags), collection roots (tag, count, fingerprint)",
		TypeHello, &Hello{Version: Version, Proof: arr32(0x10), Epoch: arr16(0x40), KnownEpoch: arr16(0x50), KnownSeq: 0, LastSeq: 1234,
			RootCount: 99, RootFP: arr32(0x60), Horizon: 1767323045000, LastContact: 1767323046000, ResumeSnap: 900, ResumeAfter: arr32(0xa0),
			Scope: [][8]byte{{0x11, 1}}, Roots: []TagRoot{{Tag: [8]byte{0x11, 1}, Count: 90, FP: arr32(0x70)}, {Tag: [8]byte{0x81, 2}, Count: 9, FP: arr32(0x90)}}},
		func(b []byte) (any, error) { return UnmarshalHello(b) }},
	{"hello", "sync Hello, version 4: version, proof, epoch, known epoch, known seq, last seq, root count, root fingerprint, horizon, last contact, scope (all flag, tags), collection roots (tag, count, fingerprint)",
		TypeHello, &Hello{Version: 4, Proof: arr32(0x10), Epoch: arr16(0x40), KnownEpoch: arr16(0x50), KnownSeq: 1000, LastSeq: 1234,
			RootCount: 99, RootFP: arr32(0x60), Horizon: 1767323045000, LastContact: 1767323046000,
			Scope: [][8]byte{{0x11, 1}}, Roots: []TagRoot{{Tag: [8]byte{0x11, 1}, Count: 90, FP: arr32(0x70)}, {Tag: [8]byte{0x81, 2}, Count: 9, FP: arr32(0x90)}}},
		func(b []byte) (any, error) { return UnmarshalHello(b) }},
	{"hello_v3", "sync Hello, version 3 (before scopes): still decodes so that a node can name an old peer's version",
		TypeHello, &Hello{Version: 3, Proof: arr32(0x10), Epoch: arr16(0x40), KnownEpoch: arr16(0x50), KnownSeq: 1000, LastSeq: 1234,
			RootCount: 99, RootFP: arr32(0x60), Horizon: 1767323045000, LastContact: 1767323046000},
		func(b []byte) (any, error) { return UnmarshalHello(b) }},
	{"hello_v1", "sync Hello, version 1 (no horizon, no last contact): still decodes so that a node can name an old peer's version",
		TypeHello, &Hello{Version: 1, Proof: arr32(0x10), Epoch: arr16(0x40), KnownSeq: 7, LastSeq: 8, RootCount: 3, RootFP: arr32(0x60)},
		func(b []byte) (any, error) { return UnmarshalHello(b) }},
	{"batch", "Batch of two envelopes for the sequence range (100, 102]: from, to, uvarint count, uvarint length and bytes of each",
		TypeBatch, &Batch{From: 100, To: 102, Envelopes: [][]byte{seq(0xa0, 5), seq(0x00, 200)}},
		func(b []byte) (any, error) { return UnmarshalBatch(b) }},
	{"batch_unordered", "Batch outside sequence order (after a Merkle reconciliation): from and to are zero",
		TypeBatch, &Batch{Envelopes: [][]byte{seq(0xe0, 3)}},
		func(b []byte) (any, error) { return UnmarshalBatch(b) }},
	{"end", "End: envelopes sent in the session",
		TypeEnd, &End{Sent: 4242},
		func(b []byte) (any, error) { return UnmarshalEnd(b) }},
	{"done", "Done: applied, stale, rejected, conflicts",
		TypeDone, &Done{Applied: 10, Stale: 2, Rejected: 1, Conflicts: 3},
		func(b []byte) (any, error) { return UnmarshalDone(b) }},
	{"push_open", "PushOpen: the sender's store epoch",
		TypePushOpen, &PushOpen{Epoch: arr16(0x70)},
		func(b []byte) (any, error) { return UnmarshalPushOpen(b) }},
	{"ack", "Ack of a pushed Batch: its To, envelopes applied",
		TypeAck, &Ack{To: 77, Applied: 5},
		func(b []byte) (any, error) { return UnmarshalAck(b) }},
}

// TestWireVectors: each committed frame decodes to its fields, and the fields encode to
// the committed bytes. A failure means the wire format changed: peers of the same protocol
// version would no longer understand each other.
func TestWireVectors(t *testing.T) {
	for _, v := range wireVectors {
		t.Run(v.name, func(t *testing.T) {
			path := "testdata/vectors/" + v.name + ".hex"
			var frame bytes.Buffer
			if err := WriteFrame(&frame, v.typ, v.msg.Marshal()); err != nil {
				t.Fatal(err)
			}
			vectors.Check(t, path, v.comment+"\nframe: 4-byte big-endian length, type byte '"+string(rune(v.typ))+"', body", frame.Bytes())

			typ, body, err := ReadFrame(bytes.NewReader(vectors.Read(t, path)), MaxFrame)
			if err != nil {
				t.Fatal(err)
			}
			if typ != v.typ {
				t.Errorf("frame type %q, want %q", byte(typ), byte(v.typ))
			}
			got, err := v.decode(body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, v.msg) {
				t.Errorf("decoded %+v\nwant    %+v", got, v.msg)
			}
			// The paths a sync stream takes: a sender builds a batch in place, a receiver
			// that already carried a frame as large reads it in one allocation.
			if b, ok := v.msg.(*Batch); ok {
				var bf BatchFrame
				for _, e := range b.Envelopes {
					bf.Add(e)
				}
				if built := bf.Frame(b.From, b.To); !bytes.Equal(built, vectors.Read(t, path)) {
					t.Errorf("batch built in place: %x\nwant %x", built, vectors.Read(t, path))
				}
			}
			typ, again, err := ReadFrameAfter(bytes.NewReader(vectors.Read(t, path)), MaxFrame, MaxFrame)
			if err != nil || typ != v.typ || !bytes.Equal(again, body) {
				t.Errorf("read after a proven frame: %q %x, %v", byte(typ), again, err)
			}
			// A bulk transfer's receiver reads into the body of a frame it is done with.
			spare := bytes.Repeat([]byte{0xee}, len(body)+16)
			typ, again, err = ReadFrameInto(bytes.NewReader(vectors.Read(t, path)), MaxFrame, 0, spare)
			if err != nil || typ != v.typ || !bytes.Equal(again, body) {
				t.Errorf("read into a used body: %q %x, %v", byte(typ), again, err)
			}
		})
	}
}

// TestInviteVector: the committed invite (binary and the code a person pastes) decodes to
// its fields, and the fields encode to it.
func TestInviteVector(t *testing.T) {
	inv := testInvite(t)
	bin, err := inv.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	code, err := inv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	vectors.Check(t, "testdata/vectors/invite.hex", "invite, binary: format, expiry, secret, peer id, addresses, checksum (testInvite's fields)", bin)
	vectors.Check(t, "testdata/vectors/invite.txt", "", []byte(code+"\n"))

	fromBin, err := UnmarshalInvite(vectors.Read(t, "testdata/vectors/invite.hex"))
	if err != nil {
		t.Fatal(err)
	}
	fromCode, err := ParseInvite(strings.TrimSpace(string(vectors.Read(t, "testdata/vectors/invite.txt"))))
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*Invite{fromBin, fromCode} {
		if got.Peer != inv.Peer || got.Secret != inv.Secret || !got.Expires.Equal(inv.Expires) || len(got.Addrs) != len(inv.Addrs) {
			t.Fatalf("decoded %+v, want %+v", got, inv)
		}
		for i := range got.Addrs {
			if !got.Addrs[i].Equal(inv.Addrs[i]) {
				t.Errorf("address %d: %s, want %s", i, got.Addrs[i], inv.Addrs[i])
			}
		}
	}
}
