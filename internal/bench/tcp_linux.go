package bench

import (
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// tcpBytes sums, over this process's established TCP connections between a node listening
// on ours and a node listening on theirs, the payload bytes our side sent (and the peer
// acknowledged) and received, as the kernel counts them (TCP_INFO). It sees everything on
// the wire above TCP: Noise, yamux, multistream and meshsync frames.
func tcpBytes(ours, theirs []int) (sent, received int64, conns int, err error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, 0, 0, err
	}
	port := func(sa unix.Sockaddr) int {
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			return a.Port
		case *unix.SockaddrInet6:
			return a.Port
		}
		return -1
	}
	for _, e := range fds {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.HasPrefix(link, "socket:") {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		info, err := unix.GetsockoptTCPInfo(fd, unix.SOL_TCP, unix.TCP_INFO)
		if err != nil || info.State != 1 { // 1: ESTABLISHED
			continue
		}
		la, err1 := unix.Getsockname(fd)
		ra, err2 := unix.Getpeername(fd)
		if err1 != nil || err2 != nil {
			continue
		}
		lp, rp := port(la), port(ra)
		if slices.Contains(ours, lp) || (slices.Contains(theirs, rp) && !slices.Contains(theirs, lp)) {
			sent += int64(info.Bytes_acked)
			received += int64(info.Bytes_received)
			conns++
		}
	}
	return sent, received, conns, nil
}
