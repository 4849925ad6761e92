package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "delayfwd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("delayfwd", flag.ContinueOnError)
	listen := fs.String("listen", ":4700", "TCP address to accept connections on")
	to := fs.String("to", "", "forward every connection here (default: its original destination, SO_ORIGINAL_DST)")
	delay := fs.Duration("delay", 100*time.Millisecond, "one-way delay added in each direction")
	queue := fs.Int("queue", 256, "chunks (up to 32 KiB each) buffered per direction")
	verbose := fs.Bool("v", false, "log every connection (source and destination) to standard error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *delay < 0 || *queue < 1 {
		return errors.New("-delay must be ≥ 0 and -queue ≥ 1")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := log.New(os.Stderr, "delayfwd: ", 0)
	f := &forwarder{delay: *delay, queue: *queue, dial: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}
	if *verbose {
		f.logConn = logger
	}
	if *to != "" {
		f.target = func(net.Conn) (string, error) { return *to, nil }
	} else {
		f.target = originalDst
	}
	fmt.Println("listening", ln.Addr())
	return f.serve(ctx, ln, logger)
}

// chunkSize is the most one read takes from a connection.
const chunkSize = 32 << 10

// forwarder accepts connections and copies each, delayed, to its target.
type forwarder struct {
	delay  time.Duration
	queue  int
	target func(net.Conn) (string, error)
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	// logConn, when set, logs every forwarded connection.
	logConn *log.Logger
}

// serve accepts connections on ln until ctx ends.
func (f *forwarder) serve(ctx context.Context, ln net.Listener, logger *log.Logger) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go func() {
			if err := f.handle(ctx, c); err != nil {
				logger.Print(err)
			}
		}()
	}
}

// handle forwards one accepted connection.
func (f *forwarder) handle(ctx context.Context, c net.Conn) error {
	defer c.Close()
	addr, err := f.target(c)
	if err != nil {
		return fmt.Errorf("%s: destination: %w", c.RemoteAddr(), err)
	}
	d, err := f.dial(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: dial %s: %w", c.RemoteAddr(), addr, err)
	}
	defer d.Close()
	if f.logConn != nil {
		f.logConn.Printf("conn %s -> %s", c.RemoteAddr(), addr)
	}
	stop := context.AfterFunc(ctx, func() { c.Close(); d.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	go func() { f.pipe(d, c); done <- struct{}{} }()
	go func() { f.pipe(c, d); done <- struct{}{} }()
	<-done
	<-done
	return nil
}

// chunk is data read at one moment, due to be written at due.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst through the delay line until src ends (then it half-closes dst)
// or either side fails (then it closes both).
func (f *forwarder) pipe(dst, src net.Conn) {
	q := make(chan chunk, f.queue)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, chunkSize)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{data: buf[:n], due: time.Now().Add(f.delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		if wait := time.Until(ch.due); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := dst.Write(ch.data); err != nil {
			src.Close()
			dst.Close()
			for range q { // let the reader finish
			}
			return
		}
	}
	// src ended: pass the end on (a half-close), or close when the connection cannot.
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}
