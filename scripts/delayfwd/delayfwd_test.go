package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"log"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// start runs a forwarder with the given delay in front of target and returns its address.
func start(t *testing.T, delay time.Duration, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &forwarder{delay: delay, queue: 4, dial: (&net.Dialer{}).DialContext,
		target: func(net.Conn) (string, error) { return target, nil }}
	done := make(chan error, 1)
	go func() { done <- f.serve(ctx, ln, log.New(io.Discard, "", 0)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// echoServer echoes every connection back until the client half-closes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

// A megabyte crosses both ways intact and in order, and the end of the stream (a
// half-close) is passed on both ways.
func TestForwardIntact(t *testing.T) {
	addr := start(t, 5*time.Millisecond, echoServer(t))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := make([]byte, 1<<20)
	rand.Read(want)
	go func() {
		c.Write(want)
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(c) // ends only when the echo's half-close came back
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echoed %d bytes, differ from the %d sent", len(got), len(want))
	}
}

// No byte arrives before the delay has passed, in either direction: an echo takes at
// least twice the delay.
func TestForwardDelays(t *testing.T) {
	const delay = 150 * time.Millisecond
	addr := start(t, delay, echoServer(t))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	for i := range 3 {
		t0 := time.Now()
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(t0); rtt < 2*delay || b[0] != byte(i) {
			t.Fatalf("echo %d: got %d after %v, want %d after at least %v", i, b[0], rtt, i, 2*delay)
		}
	}
}

// A target that refuses closes the accepted connection: the client sees the end.
func TestForwardTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	c, err := net.Dial("tcp", start(t, 0, dead))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a connection whose target is down succeeded")
	}
}

func TestParseSockaddrIn(t *testing.T) {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint16(b, unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], 4747)
	copy(b[4:], []byte{10, 78, 2, 2})
	got, err := parseSockaddrIn(b)
	if want := netip.MustParseAddrPort("10.78.2.2:4747"); err != nil || got != want {
		t.Fatalf("parseSockaddrIn = %v, %v; want %v", got, err, want)
	}
	binary.NativeEndian.PutUint16(b, unix.AF_INET6)
	if _, err := parseSockaddrIn(b); err == nil {
		t.Error("an AF_INET6 address parsed as sockaddr_in")
	}
	if _, err := parseSockaddrIn(b[:5]); err == nil {
		t.Error("a 5-byte sockaddr_in parsed")
	}
}
