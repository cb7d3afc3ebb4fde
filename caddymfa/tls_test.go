package caddymfa

import (
	"crypto/tls"
	"encoding/base64"
	"io"
)

func tlsConnectionState() tls.ConnectionState {
	return tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}
}

// base64Reader decodes a base64 body; the decoder skips line breaks.
func base64Reader(r io.Reader) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, r)
}
