package consent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"
)

// receiptContext prefixes the signed bytes of a receipt, so that a signature over a receipt
// is never a valid signature over anything else the destination's key signs.
const receiptContext = "meshsync/v1/share-receipt\n"

// MaxReceiptSize bounds an encoded receipt or signed receipt.
const MaxReceiptSize = 64 << 10

// MaxSignatureSize bounds a receipt signature (libp2p RSA keys sign with up to 512 bytes).
const MaxSignatureSize = 1024

// Digest is a SHA-256 digest, written in hex in JSON.
type Digest [32]byte

// MarshalText writes the digest in hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d[:])), nil }

// UnmarshalText reads 64 hex characters.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("digest: want 64 hex characters, got %d", len(b))
	}
	_, err := hex.Decode(d[:], b)
	return err
}

// IsZero reports whether the digest is unset.
func (d Digest) IsZero() bool { return d == Digest{} }

// DigestDocs is the digest of the documents of one share, in the order sent: SHA-256 over
// each document's length (8 bytes, big endian) followed by its bytes. Sender and receiver
// compute it over the exact bytes that crossed the wire.
func DigestDocs(docs [][]byte) Digest {
	h := sha256.New()
	var n [8]byte
	for _, d := range docs {
		binary.BigEndian.PutUint64(n[:], uint64(len(d)))
		h.Write(n[:])
		h.Write(d)
	}
	var out Digest
	h.Sum(out[:0])
	return out
}

// Receipt is what a destination acknowledges having received: under which grant and
// purpose, from which sender, how many documents with which fields, and their digest.
type Receipt struct {
	GrantID     string `json:"grant"`
	Purpose     string `json:"purpose"`
	Destination string `json:"destination"`
	// Sender is the peer id of the device that sent the share.
	Sender string `json:"sender"`
	Count  int    `json:"count"`
	// Fields are the rules that sent something, in the CLI syntax, sorted (FieldsSent).
	Fields     []string `json:"fields"`
	DocsDigest Digest   `json:"docs_digest"`
	// Time is when the destination received the share (UTC, set by the destination).
	Time time.Time `json:"time"`
}

// NewReceipt describes a share: the sender builds one for what it sends (to compare with the
// receipt it gets back) and the destination one for what it received (to sign).
func NewReceipt(g Grant, sender string, docs [][]byte, now time.Time) Receipt {
	return Receipt{
		GrantID: g.ID, Purpose: g.Purpose, Destination: g.Destination, Sender: sender,
		Count: len(docs), Fields: FieldsSent(g.Fields), DocsDigest: DigestDocs(docs),
		Time: now.UTC().Round(0),
	}
}

func (r *Receipt) validate() error {
	switch {
	case checkID(r.GrantID) != nil:
		return fmt.Errorf("bad grant id %q", r.GrantID)
	case CheckPurpose(r.Purpose) != nil:
		return fmt.Errorf("bad purpose")
	case CheckPeerID(r.Destination) != nil, CheckPeerID(r.Sender) != nil:
		return fmt.Errorf("bad destination or sender peer id")
	case r.Count < 0 || r.Count > 1<<40:
		return fmt.Errorf("count %d out of range", r.Count)
	case len(r.Fields) > MaxRules:
		return fmt.Errorf("%d fields (max %d)", len(r.Fields), MaxRules)
	case r.Time.IsZero() || r.Time.Location() != time.UTC:
		return fmt.Errorf("time must be set, in UTC")
	}
	if r.Fields == nil {
		return fmt.Errorf("fields missing")
	}
	for i, f := range r.Fields {
		if _, err := ParseRule(f); err != nil {
			return err
		}
		if i > 0 && f <= r.Fields[i-1] {
			return fmt.Errorf("fields not sorted and unique")
		}
	}
	return nil
}

// Marshal returns the canonical encoding of the receipt: the bytes that are signed (after a
// fixed context string).
func (r Receipt) Marshal() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("encode receipt: %w: %v", ErrBadReceipt, err)
	}
	return encodeJSON(r)
}

// ParseReceipt decodes a receipt and refuses any encoding that is not canonical (what
// Marshal would write), so one receipt has exactly one encoding.
func ParseReceipt(b []byte) (Receipt, error) {
	if len(b) > MaxReceiptSize {
		return Receipt{}, fmt.Errorf("receipt of %d bytes: %w", len(b), ErrTooLarge)
	}
	var r Receipt
	if err := strictUnmarshal(b, &r); err != nil {
		return Receipt{}, fmt.Errorf("decode receipt: %w: %v", ErrBadReceipt, err)
	}
	enc, err := r.Marshal()
	if err != nil {
		return Receipt{}, err
	}
	if !bytes.Equal(enc, b) {
		return Receipt{}, fmt.Errorf("decode receipt: %w: not in canonical form", ErrBadReceipt)
	}
	return r, nil
}

// Signer signs a message with the destination's key (for libp2p, crypto.PrivKey.Sign).
type Signer func(msg []byte) ([]byte, error)

// Verifier checks a signature by the destination's key (for libp2p, the public key taken
// from the destination peer id); it returns an error when the signature is bad.
type Verifier func(msg, sig []byte) error

// Ed25519Signer signs with an Ed25519 private key.
func Ed25519Signer(priv ed25519.PrivateKey) Signer {
	return func(msg []byte) ([]byte, error) {
		if len(priv) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("ed25519 private key of %d bytes", len(priv))
		}
		return ed25519.Sign(priv, msg), nil
	}
}

// Ed25519Verifier verifies with an Ed25519 public key.
func Ed25519Verifier(pub ed25519.PublicKey) Verifier {
	return func(msg, sig []byte) error {
		if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, sig) {
			return fmt.Errorf("ed25519 signature does not verify")
		}
		return nil
	}
}

// SignedReceipt is a receipt with the destination's signature over receiptContext followed
// by the receipt's canonical encoding.
type SignedReceipt struct {
	Receipt   Receipt `json:"receipt"`
	Signature []byte  `json:"sig"`
}

// SignReceipt signs a receipt; the destination calls it with its libp2p key.
func SignReceipt(r Receipt, sign Signer) (SignedReceipt, error) {
	enc, err := r.Marshal()
	if err != nil {
		return SignedReceipt{}, err
	}
	sig, err := sign(append([]byte(receiptContext), enc...))
	if err != nil {
		return SignedReceipt{}, fmt.Errorf("sign receipt: %w", err)
	}
	if len(sig) == 0 || len(sig) > MaxSignatureSize {
		return SignedReceipt{}, fmt.Errorf("sign receipt: signature of %d bytes", len(sig))
	}
	return SignedReceipt{Receipt: r, Signature: sig}, nil
}

// Marshal encodes the signed receipt canonically (for the wire and the audit log).
func (s SignedReceipt) Marshal() ([]byte, error) {
	if _, err := s.Receipt.Marshal(); err != nil {
		return nil, err
	}
	if len(s.Signature) == 0 || len(s.Signature) > MaxSignatureSize {
		return nil, fmt.Errorf("encode receipt: %w: signature of %d bytes", ErrBadReceipt, len(s.Signature))
	}
	return encodeJSON(s)
}

// ParseSignedReceipt decodes a signed receipt, refusing non-canonical encodings. It does not
// verify the signature: VerifyReceipt does.
func ParseSignedReceipt(b []byte) (SignedReceipt, error) {
	if len(b) > MaxReceiptSize {
		return SignedReceipt{}, fmt.Errorf("receipt of %d bytes: %w", len(b), ErrTooLarge)
	}
	var s SignedReceipt
	if err := strictUnmarshal(b, &s); err != nil {
		return SignedReceipt{}, fmt.Errorf("decode receipt: %w: %v", ErrBadReceipt, err)
	}
	enc, err := s.Marshal()
	if err != nil {
		return SignedReceipt{}, err
	}
	if !bytes.Equal(enc, b) {
		return SignedReceipt{}, fmt.Errorf("decode receipt: %w: not in canonical form", ErrBadReceipt)
	}
	return s, nil
}

// VerifyReceipt checks the destination's signature and that the receipt acknowledges what
// was sent: grant, purpose, destination, sender, count, fields and digest of want (from
// NewReceipt on the sender; its Time is ignored). Any failure is ErrBadReceipt.
func VerifyReceipt(s SignedReceipt, want Receipt, verify Verifier) error {
	if verify == nil {
		return fmt.Errorf("%w: no verifier for the destination's key", ErrBadReceipt)
	}
	enc, err := s.Receipt.Marshal()
	if err != nil {
		return err
	}
	if err := verify(append([]byte(receiptContext), enc...), s.Signature); err != nil {
		return fmt.Errorf("%w: signature: %v", ErrBadReceipt, err)
	}
	got := s.Receipt
	switch {
	case got.GrantID != want.GrantID:
		return fmt.Errorf("%w: acknowledges grant %s, sent under %s", ErrBadReceipt, got.GrantID, want.GrantID)
	case got.Purpose != want.Purpose:
		return fmt.Errorf("%w: acknowledges purpose %q, sent for %q", ErrBadReceipt, got.Purpose, want.Purpose)
	case got.Destination != want.Destination:
		return fmt.Errorf("%w: names destination %s, sent to %s", ErrBadReceipt, got.Destination, want.Destination)
	case got.Sender != want.Sender:
		return fmt.Errorf("%w: names sender %s, sent by %s", ErrBadReceipt, got.Sender, want.Sender)
	case got.Count != want.Count:
		return fmt.Errorf("%w: acknowledges %d documents, sent %d", ErrBadReceipt, got.Count, want.Count)
	case !slices.Equal(got.Fields, want.Fields):
		return fmt.Errorf("%w: acknowledges other fields than were sent", ErrBadReceipt)
	case got.DocsDigest != want.DocsDigest:
		return fmt.Errorf("%w: digest differs from the documents sent", ErrBadReceipt)
	}
	return nil
}
