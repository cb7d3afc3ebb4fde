//go:build !unix

package email

import "net"

// peerClosedConn cannot look without reading here: a server that closed
// the kept connection is found by the exchange that follows.
func peerClosedConn(net.Conn) bool { return false }
