package main

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// originalDst is the destination a connection had before an nftables redirect brought it
// here (SO_ORIGINAL_DST, IPv4).
func originalDst(c net.Conn) (string, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return "", errors.New("not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return "", err
	}
	var mreq *unix.IPv6Mreq
	var serr error
	err = rc.Control(func(fd uintptr) {
		// SO_ORIGINAL_DST fills a struct sockaddr_in (16 bytes); IPv6Mreq is a 20-byte
		// buffer that getsockopt can fill with it.
		mreq, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return "", fmt.Errorf("SO_ORIGINAL_DST: %w", err)
	}
	ap, err := parseSockaddrIn(mreq.Multiaddr[:])
	if err != nil {
		return "", err
	}
	return ap.String(), nil
}
