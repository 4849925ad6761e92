//go:build !linux

package main

import (
	"errors"
	"net"
)

// originalDst needs SO_ORIGINAL_DST (Linux); elsewhere use -to.
func originalDst(net.Conn) (string, error) {
	return "", errors.New("transparent mode needs Linux (SO_ORIGINAL_DST); use -to")
}
