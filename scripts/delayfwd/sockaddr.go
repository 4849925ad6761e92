package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// parseSockaddrIn decodes a struct sockaddr_in: family (2 bytes, host order), port (2
// bytes, network order), IPv4 address (4 bytes).
func parseSockaddrIn(b []byte) (netip.AddrPort, error) {
	if len(b) < 8 {
		return netip.AddrPort{}, errors.New("sockaddr_in: too short")
	}
	fam := binary.NativeEndian.Uint16(b[0:2])
	if fam != unix.AF_INET {
		return netip.AddrPort{}, fmt.Errorf("sockaddr_in: family %d, want AF_INET", fam)
	}
	port := binary.BigEndian.Uint16(b[2:4])
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), nil
}
