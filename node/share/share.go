package share

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshsync/meshsync/consent"
	"github.com/meshsync/meshsync/node/internal/wire"
)

// ID is the protocol id of a share.
const ID protocol.ID = "/meshsync/share/1.0.0"

// Frame types of the share protocol (see the package doc).
const (
	typeHeader  wire.Type = 'H'
	typeBatch   wire.Type = 'B'
	typeEnd     wire.Type = 'Z'
	typeReceipt wire.Type = 'R'
	typeRefusal wire.Type = 'X'
)

// Hard caps, checked before anything is allocated.
const (
	// MaxHeader is the largest header frame.
	MaxHeader = 64 << 10
	// MaxBatchDocs is the most documents one batch frame carries.
	MaxBatchDocs = 4096
	// MaxReason is the longest refusal reason, in bytes.
	MaxReason = 256
	// maxBatchBody is how full a sender packs a batch frame.
	maxBatchBody = 1 << 20
	// maxDrain is how much of a refused share a destination reads and discards so that
	// the sender gets to read the refusal; past it the stream is reset.
	maxDrain = 64 << 20
)

// Defaults of Options.
const (
	DefaultMaxDocs        = 1 << 20
	DefaultMaxBytes       = 256 << 20
	DefaultStepTimeout    = 20 * time.Second
	DefaultSessionTimeout = 10 * time.Minute
	DefaultMaxConcurrent  = 4
)

// Errors a caller may branch on.
var (
	// ErrRefused means the destination refused the share; the error says why.
	ErrRefused = errors.New("destination refused the share")
	// ErrProtocol means the other side broke the share protocol; the stream was reset.
	ErrProtocol = errors.New("share protocol violation")
	// ErrTooLarge means a share exceeds a limit (documents, bytes, a frame).
	ErrTooLarge = errors.New("share too large")
)

// Header opens a share: under which grant, for which purpose, with which fields, and how
// many documents follow. It holds nothing about the sender's records.
type Header struct {
	Grant   string   `json:"grant"`
	Purpose string   `json:"purpose"`
	Fields  []string `json:"fields"`
	Count   int      `json:"count"`
}

// rules parses the header's fields and checks they are what consent.FieldsSent writes.
func (h *Header) rules() ([]consent.FieldRule, error) {
	if h.Fields == nil || len(h.Fields) > consent.MaxRules {
		return nil, fmt.Errorf("%w: header fields missing or more than %d", ErrProtocol, consent.MaxRules)
	}
	rules := make([]consent.FieldRule, 0, len(h.Fields))
	for _, f := range h.Fields {
		r, err := consent.ParseRule(f)
		if err != nil {
			return nil, fmt.Errorf("%w: header field: %v", ErrProtocol, err)
		}
		rules = append(rules, r)
	}
	if !slices.Equal(consent.FieldsSent(rules), h.Fields) {
		return nil, fmt.Errorf("%w: header fields not sorted, unique and canonical", ErrProtocol)
	}
	return rules, nil
}

func (h *Header) validate() error {
	switch {
	case h.Grant == "" || len(h.Grant) > 64:
		return fmt.Errorf("%w: grant id of %d bytes", ErrProtocol, len(h.Grant))
	case consent.CheckPurpose(h.Purpose) != nil:
		return fmt.Errorf("%w: bad purpose", ErrProtocol)
	case h.Count < 0 || h.Count > DefaultMaxDocs:
		return fmt.Errorf("%w: count %d out of range", ErrProtocol, h.Count)
	}
	for i := 0; i < len(h.Grant); i++ {
		if c := h.Grant[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '-') {
			return fmt.Errorf("%w: bad grant id", ErrProtocol)
		}
	}
	_, err := h.rules()
	return err
}

func (h Header) marshal() ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(h); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// parseHeader decodes a header frame's body and refuses every encoding that marshal would
// not write.
func parseHeader(b []byte) (Header, error) {
	if len(b) > MaxHeader {
		return Header{}, fmt.Errorf("header of %d bytes: %w", len(b), ErrTooLarge)
	}
	var h Header
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&h); err != nil {
		return Header{}, fmt.Errorf("%w: header: %v", ErrProtocol, err)
	}
	enc, err := h.marshal()
	if err != nil {
		return Header{}, err
	}
	if !bytes.Equal(enc, b) {
		return Header{}, fmt.Errorf("%w: header not in canonical form", ErrProtocol)
	}
	return h, nil
}

// checkDoc accepts a compact JSON object of at most consent.MaxDocSize bytes: what
// consent.Apply writes, and what a JSON-lines file can hold on one line as it is.
func checkDoc(d []byte) error {
	if len(d) > consent.MaxDocSize {
		return fmt.Errorf("document of %d bytes: %w", len(d), ErrTooLarge)
	}
	if len(d) < 2 || d[0] != '{' || !json.Valid(d) {
		return fmt.Errorf("%w: document is not a JSON object", ErrProtocol)
	}
	var c bytes.Buffer
	if err := json.Compact(&c, d); err != nil || !bytes.Equal(c.Bytes(), d) {
		return fmt.Errorf("%w: document is not compact JSON", ErrProtocol)
	}
	return nil
}

// marshalBatch encodes documents as a batch body: u32 count, then u32 length and bytes of
// each.
func marshalBatch(docs [][]byte) ([]byte, error) {
	if len(docs) > MaxBatchDocs {
		return nil, fmt.Errorf("batch of %d documents: %w", len(docs), ErrTooLarge)
	}
	n := 4
	for _, d := range docs {
		if err := checkDoc(d); err != nil {
			return nil, err
		}
		n += 4 + len(d)
	}
	if n+1 > wire.MaxFrame {
		return nil, fmt.Errorf("batch of %d bytes: %w", n, ErrTooLarge)
	}
	out := make([]byte, 4, n)
	binary.BigEndian.PutUint32(out, uint32(len(docs)))
	for _, d := range docs {
		out = binary.BigEndian.AppendUint32(out, uint32(len(d)))
		out = append(out, d...)
	}
	return out, nil
}

// parseBatch decodes a batch body; every length is checked against what remains before
// anything is allocated.
func parseBatch(b []byte) ([][]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: short batch", ErrProtocol)
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if n == 0 || n > MaxBatchDocs || uint64(n)*4 > uint64(len(b)) {
		return nil, fmt.Errorf("%w: batch of %d documents in %d bytes", ErrProtocol, n, len(b))
	}
	docs := make([][]byte, 0, n)
	for range n {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: truncated batch", ErrProtocol)
		}
		l := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(l) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: document length %d past the batch", ErrProtocol, l)
		}
		d := b[:l:l]
		if err := checkDoc(d); err != nil {
			return nil, err
		}
		docs = append(docs, d)
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last document", ErrProtocol, len(b))
	}
	return docs, nil
}

// parseReason decodes a refusal body: 1 to MaxReason bytes of printable UTF-8.
func parseReason(b []byte) (string, error) {
	if len(b) == 0 || len(b) > MaxReason || !utf8.Valid(b) {
		return "", fmt.Errorf("%w: refusal reason of %d bytes", ErrProtocol, len(b))
	}
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: control character in refusal reason", ErrProtocol)
		}
	}
	return string(b), nil
}

// reason cuts an error text down to a valid refusal reason (the sender adds ErrRefused's
// own words).
func reason(err error) []byte {
	s := []rune(strings.TrimPrefix(err.Error(), ErrRefused.Error()+": "))
	var out []byte
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		if len(out)+utf8.RuneLen(r) > MaxReason {
			break
		}
		out = utf8.AppendRune(out, r)
	}
	if len(out) == 0 {
		out = []byte("refused")
	}
	return out
}

// rw writes and reads frames of one stream with a deadline on each step.
type rw struct {
	s    network.Stream
	step time.Duration
}

func (f rw) write(t wire.Type, body []byte) error {
	f.s.SetWriteDeadline(time.Now().Add(f.step))
	return wire.WriteFrame(f.s, t, body)
}

func (f rw) read(max int) (wire.Type, []byte, error) {
	f.s.SetReadDeadline(time.Now().Add(f.step))
	t, b, err := wire.ReadFrame(f.s, max)
	if errors.Is(err, wire.ErrTooLarge) {
		err = fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	return t, b, err
}

// refusalOr returns the destination's refusal if one is waiting on the stream (a
// destination refuses mid-share when a limit is passed), else err.
func (f rw) refusalOr(err error) error {
	f.s.SetReadDeadline(time.Now().Add(min(f.step, time.Second)))
	t, body, rerr := wire.ReadFrame(f.s, MaxReason+1)
	if rerr != nil || t != typeRefusal {
		return err
	}
	why, rerr := parseReason(body)
	if rerr != nil {
		return err
	}
	return fmt.Errorf("%w: %s", ErrRefused, why)
}

// Outgoing is what a sender shares: the grant's id, purpose and fields sent
// (consent.FieldsSent), and the anonymized documents exactly as consent produced them.
type Outgoing struct {
	Grant   string
	Purpose string
	Fields  []string
	Docs    [][]byte
	// StepTimeout bounds every frame written or read. Default DefaultStepTimeout.
	StepTimeout time.Duration
}

// Result is what Send got back.
type Result struct {
	// Started says that bytes of the share were written to the stream: from then on the
	// destination may hold some or all of the documents, so the share must be audited
	// whatever the error.
	Started bool
	// Receipt is the destination's signed receipt, as received (not yet verified: pass it
	// to consent.ParseSignedReceipt and consent.Registry.RecordShare).
	Receipt []byte
}

// Send opens a share stream to dest on h and sends the documents; it returns the
// destination's receipt. The connection to dest must be allowed (the node's gater admits
// destinations of active grants). ctx bounds the whole share; cancelling it resets the
// stream. On error the stream is reset; on success it is closed.
func Send(ctx context.Context, h host.Host, dest peer.ID, out Outgoing) (res Result, err error) {
	hdr := Header{Grant: out.Grant, Purpose: out.Purpose, Fields: out.Fields, Count: len(out.Docs)}
	hb, err := hdr.marshal()
	if err != nil {
		return res, fmt.Errorf("share: %w", err)
	}
	batches, err := batch(out.Docs)
	if err != nil {
		return res, fmt.Errorf("share: %w", err)
	}
	step := out.StepTimeout
	if step <= 0 {
		step = DefaultStepTimeout
	}
	s, err := h.NewStream(ctx, dest, ID)
	if err != nil {
		return res, fmt.Errorf("share: open stream to %s: %w", dest, err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	defer func() {
		if err != nil {
			s.Reset()
		} else {
			s.Close()
		}
	}()
	f := rw{s: s, step: step}
	res.Started = true
	if err := f.write(typeHeader, hb); err != nil {
		return res, fmt.Errorf("share: send header: %w", err)
	}
	for _, b := range batches {
		if err := f.write(typeBatch, b); err != nil {
			return res, fmt.Errorf("share: send documents: %w", f.refusalOr(err))
		}
	}
	if err := f.write(typeEnd, nil); err != nil {
		return res, fmt.Errorf("share: send end: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return res, fmt.Errorf("share: %w", err)
	}
	t, body, err := f.read(consent.MaxReceiptSize + 1)
	if err != nil {
		return res, fmt.Errorf("share: read receipt: %w", err)
	}
	switch t {
	case typeReceipt:
		res.Receipt = body
		return res, nil
	case typeRefusal:
		why, err := parseReason(body)
		if err != nil {
			return res, fmt.Errorf("share: %w", err)
		}
		return res, fmt.Errorf("share: %w: %s", ErrRefused, why)
	}
	return res, fmt.Errorf("share: %w: reply frame %q", ErrProtocol, byte(t))
}

// batch packs documents into batch bodies of about maxBatchBody bytes.
func batch(docs [][]byte) ([][]byte, error) {
	var out [][]byte
	for i := 0; i < len(docs); {
		j, size := i, 4
		for j < len(docs) && j-i < MaxBatchDocs && (j == i || size+4+len(docs[j]) <= maxBatchBody) {
			size += 4 + len(docs[j])
			j++
		}
		b, err := marshalBatch(docs[i:j])
		if err != nil {
			return nil, err
		}
		out = append(out, b)
		i = j
	}
	return out, nil
}

// Share is one share as a destination received it.
type Share struct {
	// Sender is the peer id of the device that sent it (authenticated by the secure channel).
	Sender peer.ID
	Header Header
	// Docs are the documents exactly as received.
	Docs [][]byte
	// Receipt is the signed receipt the destination answers with.
	Receipt consent.SignedReceipt
}

// Options configure a Receiver. A nil *Options, and every zero field, means the default.
type Options struct {
	// OnShare is called with every complete share before its receipt goes back; an error
	// refuses the share (the sender gets no receipt). It must not keep Docs past the call
	// without copying them. Default: accept and keep nothing.
	OnShare func(Share) error
	// Sign signs receipts. Default: the host's own private key (from its peerstore), so the
	// sender can verify with the public key of the peer id it dialled.
	Sign consent.Signer
	// Now is the clock of receipt times. Default time.Now.
	Now func() time.Time
	// MaxDocs and MaxBytes bound one share. Defaults DefaultMaxDocs and DefaultMaxBytes.
	// A frame that would pass MaxBytes is refused before its body is read.
	MaxDocs, MaxBytes int
	// MaxTotalBytes bounds the bytes of every share the receiver keeps, over its life: a
	// frame that would pass what is left is refused before its body is read, and a share
	// that is not kept gives its bytes back. Default: no bound.
	MaxTotalBytes int64
	// Allow says whether a sender may deliver; an error refuses its share (the sender
	// reads the error as the reason) before anything of it is read. Default: every peer
	// that may connect.
	Allow func(sender peer.ID) error
	// OnRefuse is told of every share that was not kept (refused, broken or cut off), and
	// why. Default: nothing.
	OnRefuse func(sender peer.ID, err error)
	// StepTimeout bounds every frame, SessionTimeout a whole share. Defaults
	// DefaultStepTimeout and DefaultSessionTimeout.
	StepTimeout, SessionTimeout time.Duration
	// MaxConcurrent bounds the shares served at once; more are reset. Default
	// DefaultMaxConcurrent.
	MaxConcurrent int
}

// Receiver serves the share protocol on a host: the destination side.
type Receiver struct {
	h      host.Host
	opts   Options
	sem    chan struct{}
	budget *budget // nil: no total bound

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // running handlers

	mu     sync.Mutex
	closed bool
}

// NewReceiver registers the share handler on h and returns the receiver. Close removes it.
func NewReceiver(h host.Host, opts *Options) *Receiver {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Sign == nil {
		if k := h.Peerstore().PrivKey(h.ID()); k != nil {
			o.Sign = k.Sign
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxDocs <= 0 {
		o.MaxDocs = DefaultMaxDocs
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	r := &Receiver{h: h, opts: o, sem: make(chan struct{}, o.MaxConcurrent)}
	if o.MaxTotalBytes > 0 {
		r.budget = &budget{left: o.MaxTotalBytes}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(ID, r.Handler)
	return r
}

// Close removes the handler, resets the shares in progress and waits for their handlers.
func (r *Receiver) Close() error {
	r.stopAccepting()
	r.cancel()
	r.wg.Wait()
	return nil
}

// Shutdown removes the handler and lets the shares in progress finish (their receipts go
// out) until ctx ends; then it closes like Close.
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.stopAccepting()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.Close()
	return err
}

func (r *Receiver) stopAccepting() {
	r.h.RemoveStreamHandler(ID)
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// Handler serves one share stream.
func (r *Receiver) Handler(s network.Stream) {
	select {
	case r.sem <- struct{}{}:
	default:
		s.Reset()
		return
	}
	defer func() { <-r.sem }()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		s.Reset()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.SessionTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	f := rw{s: s, step: r.opts.StepTimeout}
	sh, used, err := r.receive(f)
	if err == nil && r.opts.OnShare != nil {
		if oerr := r.opts.OnShare(sh); oerr != nil {
			err = fmt.Errorf("%w: the destination could not keep the share", ErrRefused)
		}
	}
	if err != nil {
		r.budget.give(used) // a share not kept takes nothing of the total
		if r.opts.OnRefuse != nil {
			r.opts.OnRefuse(s.Conn().RemotePeer(), err)
		}
	}
	if err == nil {
		var b []byte
		if b, err = sh.Receipt.Marshal(); err == nil {
			err = f.write(typeReceipt, b)
		}
	} else if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrRefused) {
		// A refusal is an answer: send it, and drain what the sender is still writing
		// (up to maxDrain) so that its writes end and it reads the refusal.
		if f.write(typeRefusal, reason(err)) == nil && s.CloseWrite() == nil {
			s.SetReadDeadline(time.Now().Add(r.opts.StepTimeout))
			if _, derr := io.CopyN(io.Discard, s, maxDrain); errors.Is(derr, io.EOF) {
				s.Close()
				return
			}
		}
	}
	if err != nil {
		s.Reset()
		return
	}
	s.Close()
}

// receive reads one share and signs its receipt. used is what it took of the total
// budget, also on error.
func (r *Receiver) receive(f rw) (sh Share, used int, err error) {
	sender := f.s.Conn().RemotePeer()
	if r.opts.Allow != nil {
		if err := r.opts.Allow(sender); err != nil {
			return Share{}, 0, fmt.Errorf("%w: %v", ErrRefused, err)
		}
	}
	_, body, err := f.read(MaxHeader)
	if err != nil {
		return Share{}, 0, err
	}
	hdr, err := parseHeader(body)
	if err != nil {
		return Share{}, 0, err
	}
	if hdr.Count > r.opts.MaxDocs {
		return Share{}, 0, fmt.Errorf("%w: %d documents (this destination takes %d)", ErrTooLarge, hdr.Count, r.opts.MaxDocs)
	}
	rules, _ := hdr.rules() // validated by parseHeader
	docs := make([][]byte, 0, min(hdr.Count, MaxBatchDocs))
	total := 0
	for {
		// Reserve what the next frame may hold, so that a frame past a bound is refused
		// from its length alone, before its body is read.
		room := min(r.opts.MaxBytes-total, wire.MaxFrame-1)
		got := r.budget.take(room)
		t, body, err := f.read(got + 1)
		r.budget.give(got - len(body))
		used += len(body)
		if errors.Is(err, ErrTooLarge) {
			switch {
			case got < room:
				return Share{}, used, fmt.Errorf("%w: this destination takes %d bytes in all and has %d left", ErrTooLarge, r.opts.MaxTotalBytes, got)
			case room < wire.MaxFrame-1:
				return Share{}, used, fmt.Errorf("%w: more than %d bytes in one share (this destination's limit)", ErrTooLarge, r.opts.MaxBytes)
			}
		}
		if err != nil {
			return Share{}, used, err
		}
		if t == typeEnd && len(body) == 0 {
			break
		}
		if t != typeBatch {
			return Share{}, used, fmt.Errorf("%w: frame %q in a share", ErrProtocol, byte(t))
		}
		total += len(body)
		batch, err := parseBatch(body)
		if err != nil {
			return Share{}, used, err
		}
		if len(docs)+len(batch) > hdr.Count {
			return Share{}, used, fmt.Errorf("%w: more documents than the header's %d", ErrProtocol, hdr.Count)
		}
		docs = append(docs, batch...)
	}
	if len(docs) != hdr.Count {
		return Share{}, used, fmt.Errorf("%w: %d documents, header said %d", ErrProtocol, len(docs), hdr.Count)
	}
	if r.opts.Sign == nil {
		return Share{}, used, fmt.Errorf("%w: the destination has no key to sign receipts", ErrRefused)
	}
	g := consent.Grant{ID: hdr.Grant, Purpose: hdr.Purpose, Destination: r.h.ID().String(), Fields: rules}
	sr, err := consent.SignReceipt(consent.NewReceipt(g, sender.String(), docs, r.opts.Now()), r.opts.Sign)
	if err != nil {
		return Share{}, used, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return Share{Sender: sender, Header: hdr, Docs: docs, Receipt: sr}, used, nil
}

// budget is the byte allowance that every share of a receiver draws on
// (Options.MaxTotalBytes). A nil *budget has no bound.
type budget struct {
	mu   sync.Mutex
	left int64
}

// take reserves up to want bytes and returns how many it reserved.
func (b *budget) take(want int) int {
	if b == nil {
		return want
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(int64(want), b.left)
	b.left -= n
	return int(n)
}

// give returns n reserved bytes.
func (b *budget) give(n int) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	b.left += int64(n)
	b.mu.Unlock()
}
