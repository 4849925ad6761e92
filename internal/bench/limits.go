package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/meshsync/meshsync/internal/storehook"
	"github.com/meshsync/meshsync/merkle"
	"github.com/meshsync/meshsync/store"
)

// This file measures the physical limits the bench prints beside meshsync's own figures:
// a raw libp2p stream, a batched bbolt write in the store's layout, AEAD opening, one
// round trip and one committed transaction. Each runs alone, in the same process and run
// as the figures it is compared with.

const (
	rawProtocol  = "/meshsync-bench/raw/1"
	echoProtocol = "/meshsync-bench/echo/1"
	limitBatch   = 16384 // envelopes per bbolt transaction: node.Config.ApplyBatch's default
)

// limits are the measured ceilings of an initial sync, in records per second.
type limits struct {
	Stream, Bolt, AEAD float64
	Bytes              int64 // envelope bytes carried, written and opened
}

// slowest returns the lowest of the three rates and its name.
func (l limits) slowest() (float64, string) {
	r, name := l.Stream, "libp2p stream"
	if l.Bolt < r {
		r, name = l.Bolt, "bbolt write"
	}
	if l.AEAD < r {
		r, name = l.AEAD, "AEAD open"
	}
	return r, name
}

// rawHosts are two bare libp2p hosts configured like a node's (TCP on loopback, Noise,
// yamux, a resource manager with the node's budget), connected to each other, with a
// discard-and-ack handler and an echo handler on the second.
type rawHosts struct{ a, b host.Host }

func newRawHost() (host.Host, error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	lim := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&lim)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(lim.Scale(128<<20, 256)))
	if err != nil {
		return nil, err
	}
	return libp2p.New(
		libp2p.Identity(sk),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Security(libp2ptls.ID, libp2ptls.New), // as node.baseOptions orders them
		libp2p.Security(noise.ID, noise.New),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ResourceManager(rm),
		libp2p.Ping(false),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
}

func newRawHosts(ctx context.Context) (*rawHosts, error) {
	a, err := newRawHost()
	if err != nil {
		return nil, fmt.Errorf("raw libp2p host: %w", err)
	}
	b, err := newRawHost()
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("raw libp2p host: %w", err)
	}
	b.SetStreamHandler(rawProtocol, func(s network.Stream) {
		n, err := io.CopyBuffer(io.Discard, s, make([]byte, 256<<10))
		if err != nil {
			s.Reset()
			return
		}
		var ack [8]byte
		binary.BigEndian.PutUint64(ack[:], uint64(n))
		s.Write(ack[:])
		s.Close()
	})
	b.SetStreamHandler(echoProtocol, func(s network.Stream) {
		var p [1]byte
		for {
			if _, err := io.ReadFull(s, p[:]); err != nil {
				s.Close()
				return
			}
			if _, err := s.Write(p[:]); err != nil {
				s.Reset()
				return
			}
		}
	})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.Connect(cctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		a.Close()
		b.Close()
		return nil, fmt.Errorf("connect raw hosts: %w", err)
	}
	return &rawHosts{a, b}, nil
}

func (r *rawHosts) Close() {
	r.a.Close()
	r.b.Close()
}

// stream carries total bytes from a to b in 1 MiB writes (a sync session's batch size) and
// returns how long it took until b acknowledged the last byte.
func (r *rawHosts) stream(ctx context.Context, total int64) (time.Duration, error) {
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	start := time.Now()
	s, err := r.a.NewStream(ctx, r.b.ID(), rawProtocol)
	if err != nil {
		return 0, fmt.Errorf("raw stream: %w", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Minute))
	for left := total; left > 0; {
		n := min(left, int64(len(buf)))
		if _, err := s.Write(buf[:n]); err != nil {
			s.Reset()
			return 0, fmt.Errorf("raw stream: %w", err)
		}
		left -= n
	}
	if err := s.CloseWrite(); err != nil {
		return 0, fmt.Errorf("raw stream: %w", err)
	}
	var ack [8]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		return 0, fmt.Errorf("raw stream ack: %w", err)
	}
	if got := int64(binary.BigEndian.Uint64(ack[:])); got != total {
		return 0, fmt.Errorf("raw stream: peer received %d bytes of %d", got, total)
	}
	return time.Since(start), nil
}

// rtt returns the median of n one-byte round trips on one stream.
func (r *rawHosts) rtt(ctx context.Context, n int) (time.Duration, error) {
	s, err := r.a.NewStream(ctx, r.b.ID(), echoProtocol)
	if err != nil {
		return 0, fmt.Errorf("echo stream: %w", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(time.Minute))
	var p [1]byte
	var d []time.Duration
	for i := range n + n/10 {
		t0 := time.Now()
		if _, err := s.Write(p[:]); err != nil {
			return 0, fmt.Errorf("echo: %w", err)
		}
		if _, err := io.ReadFull(s, p[:]); err != nil {
			return 0, fmt.Errorf("echo: %w", err)
		}
		if i >= n/10 { // the first tenth warms up
			d = append(d, time.Since(t0))
		}
	}
	return quantile(d, 0.5), nil
}

// quantile returns the q-quantile of d (nearest rank), sorting d.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

// boltLimit is the store's bulk layout alone (storehook.BulkFile, written by package
// store's own code): envelopes appended under their sequence numbers, the id index in key
// order, a store's bbolt options, nothing parsed, no Merkle tree. measureLimits writes it
// in the order an initial sync between two current devices writes: record-id order
// (node/session/ordered.go), so the id index grows by appends as the receiver's does.
type boltLimit struct{ storehook.BulkFile }

func openBoltLimit(path string) (*boltLimit, error) {
	f, err := storehook.OpenBulkFile(path)
	if err != nil {
		return nil, fmt.Errorf("open limit db: %w", err)
	}
	return &boltLimit{f}, nil
}

// measureLimits replays src's envelopes (every envelope it holds, in record-id order as an
// initial sync sends them, the bytes it carries) through a raw libp2p stream, a raw bbolt
// file and XChaCha20-Poly1305 opening, each alone.
func measureLimits(ctx context.Context, src *store.Store, hosts *rawHosts, db *boltLimit) (limits, error) {
	var l limits
	var boltTime, aeadTime time.Duration
	var records int64
	key := make([]byte, chacha20poly1305.KeySize)
	rand.Read(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return l, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	type box struct{ ct, ad []byte }
	sealed := map[int]box{} // a ciphertext of each length met, with its associated data
	var plain []byte
	upto, err := src.Replication().LastSeq()
	if err != nil {
		return l, fmt.Errorf("read envelopes: %w", err)
	}
	var after merkle.ID
	for first := true; ; first = false {
		var envs [][]byte
		var ids []merkle.ID
		var boxes []box
		last, _, err := src.Replication().OrderedUpTo(after, first, upto, limitBatch, func(r *store.HeldRecord) error {
			for _, raw := range r.Raw {
				e, err := store.UnmarshalEnvelope(raw)
				if err != nil {
					return err
				}
				envs = append(envs, bytes.Clone(raw))
				ids = append(ids, e.ID)
				b, ok := sealed[len(e.Ciphertext)]
				if !ok && len(e.Ciphertext) >= aead.Overhead() {
					// The envelope's clear header stands in for its id and version.
					b.ad = bytes.Clone(raw[:min(len(raw), 128)])
					b.ct = aead.Seal(nil, nonce, make([]byte, len(e.Ciphertext)-aead.Overhead()), b.ad)
					sealed[len(e.Ciphertext)] = b
				}
				boxes = append(boxes, b)
			}
			return nil
		})
		if err != nil {
			return l, fmt.Errorf("read envelopes: %w", err)
		}
		if len(envs) == 0 {
			break
		}
		after = last
		records += int64(len(envs))
		for _, e := range envs {
			l.Bytes += int64(len(e))
		}
		t0 := time.Now()
		if err := db.Write(envs, ids); err != nil {
			return l, fmt.Errorf("bbolt limit: %w", err)
		}
		boltTime += time.Since(t0)
		t0 = time.Now()
		for _, b := range boxes {
			if plain, err = aead.Open(plain[:0], nonce, b.ct, b.ad); err != nil {
				return l, fmt.Errorf("AEAD limit: %w", err)
			}
		}
		aeadTime += time.Since(t0)
		if err := ctx.Err(); err != nil {
			return l, err
		}
	}
	if records == 0 {
		return l, fmt.Errorf("measure limits: the source store holds no envelopes")
	}
	st, err := hosts.stream(ctx, l.Bytes)
	if err != nil {
		return l, err
	}
	rate := func(d time.Duration) float64 { return float64(records) / max(d.Seconds(), 1e-9) }
	l.Stream, l.Bolt, l.AEAD = rate(st), rate(boltTime), rate(aeadTime)
	return l, nil
}

// commitTime returns the median of n committed transactions of one envelope each.
func (r *boltLimit) commitTime(env []byte, n int) (time.Duration, error) {
	var d []time.Duration
	for i := range n {
		var id merkle.ID
		rand.Read(id[:])
		t0 := time.Now()
		if err := r.Write([][]byte{env}, []merkle.ID{id}); err != nil {
			return 0, fmt.Errorf("commit floor: %w", err)
		}
		if i > 0 {
			d = append(d, time.Since(t0))
		}
	}
	return quantile(d, 0.5), nil
}
