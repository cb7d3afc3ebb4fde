//go:build unix

package email

import (
	"errors"
	"net"
	"syscall"
)

// peerClosedConn reports whether the server closed c or sent something
// unasked while it was idle, without waiting: a peek at the socket that
// finds an end of stream or bytes.
func peerClosedConn(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var buf [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			closed = true // 0 bytes: end of stream; more: unasked bytes
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		default:
			closed = true
		}
		return true
	})
	return closed
}
