//go:build !linux

package bench

import "errors"

// tcpBytes needs Linux's TCP_INFO; elsewhere the bench reports no wire bytes.
func tcpBytes(ours, theirs []int) (sent, received int64, conns int, err error) {
	return 0, 0, 0, errors.New("wire byte counts need Linux")
}
