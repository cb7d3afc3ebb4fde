package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// httpConn is a keep-alive HTTP/1.1 connection to Caddy, used by one
// sign-in at a time. A request is one write and its answer is read
// straight from the connection. The tool shares two cores with the Caddy
// it measures, and net/http's client costs, per request, about as much
// CPU as the handler being measured: two goroutines a connection and a
// handoff between them each way. Caddy sees the same requests either way:
// HTTP/1.1 on kept connections, as a browser without HTTP/2 sends them.
type httpConn struct {
	addr string // host:port to dial
	host string // the Host header
	c    net.Conn
	r    *bufio.Reader
	req  []byte
	// reused is set once an answer was read: a kept connection that
	// fails before its answer starts may have been closed by the server
	// while idle, and the request is sent again on a new one.
	reused bool
}

// httpAnswer is what the sign-in reads of an answer.
type httpAnswer struct {
	status  int
	body    *bytes.Buffer
	cookies func(setCookie string) // called for each Set-Cookie line
}

// maxAnswer bounds an answer's body; the flow's answers are a few hundred
// bytes.
const maxAnswer = 1 << 20

// roundTrip sends a request and reads its answer into ans. cookie is the
// Cookie header's value ("" for none); a body is sent as JSON.
func (h *httpConn) roundTrip(ctx context.Context, method, path, cookie string, body []byte, ans *httpAnswer) error {
	h.req = append(h.req[:0], method...)
	h.req = append(h.req, ' ')
	h.req = append(h.req, path...)
	h.req = append(h.req, " HTTP/1.1\r\nHost: "...)
	h.req = append(h.req, h.host...)
	h.req = append(h.req, "\r\nAccept: application/json\r\n"...)
	if body != nil {
		h.req = append(h.req, "Content-Type: application/json\r\nContent-Length: "...)
		h.req = strconv.AppendInt(h.req, int64(len(body)), 10)
		h.req = append(h.req, "\r\n"...)
	}
	if cookie != "" {
		h.req = append(h.req, "Cookie: "...)
		h.req = append(h.req, cookie...)
		h.req = append(h.req, "\r\n"...)
	}
	h.req = append(h.req, "\r\n"...)
	h.req = append(h.req, body...)
	for try := 0; ; try++ {
		reused := h.reused
		started, err := h.exchange(ctx, ans)
		if err == nil {
			return nil
		}
		h.close()
		if started || !reused || try > 0 || ctx.Err() != nil {
			return err
		}
	}
}

// exchange writes the prepared request and reads the answer; started
// reports whether any of the answer arrived.
func (h *httpConn) exchange(ctx context.Context, ans *httpAnswer) (started bool, err error) {
	if h.c == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", h.addr)
		if err != nil {
			return false, err
		}
		h.c = c
		if h.r == nil {
			h.r = bufio.NewReaderSize(c, 4096)
		} else {
			h.r.Reset(c)
		}
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	if err := h.c.SetDeadline(deadline); err != nil {
		return false, err
	}
	if _, err := h.c.Write(h.req); err != nil {
		return false, err
	}
	line, err := h.r.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return true, fmt.Errorf("not an HTTP/1.x status line: %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return true, fmt.Errorf("status line %q: %w", line, err)
	}
	ans.status = status
	length, chunked, closing := -1, false, false
	for {
		line, err := h.r.ReadSlice('\n')
		if err != nil {
			return true, fmt.Errorf("reading headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return true, fmt.Errorf("header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return true, fmt.Errorf("Content-Length %q", value)
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "Connection"):
			closing = asciiEqualFold(value, "close")
		case asciiEqualFold(name, "Set-Cookie"):
			if ans.cookies != nil {
				ans.cookies(string(value))
			}
		}
	}
	ans.body.Reset()
	switch {
	case chunked:
		err = readChunked(h.r, ans.body)
	case length >= 0:
		if length > maxAnswer {
			return true, fmt.Errorf("answer of %d bytes", length)
		}
		_, err = io.CopyN(ans.body, h.r, int64(length))
	case status == 204 || status == 304 || status/100 == 1:
	default:
		// No length: the body ends with the connection.
		_, err = ans.body.ReadFrom(io.LimitReader(h.r, maxAnswer))
		closing = true
	}
	if err != nil {
		return true, fmt.Errorf("reading the body: %w", err)
	}
	if closing {
		h.close()
	} else {
		h.reused = true
	}
	return true, nil
}

// readChunked reads a chunked body into dst; trailers are skipped.
func readChunked(r *bufio.Reader, dst *bytes.Buffer) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("chunk size %q", line)
		}
		if n == 0 {
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if dst.Len()+int(n) > maxAnswer {
			return errors.New("answer too long")
		}
		if _, err := io.CopyN(dst, r, n); err != nil {
			return err
		}
		if crlf, err := r.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return fmt.Errorf("chunk not followed by CRLF: %v", err)
		}
	}
}

// close drops the connection; the next request dials a new one.
func (h *httpConn) close() {
	if h.c != nil {
		_ = h.c.Close()
		h.c = nil
	}
	h.reused = false
}

// asciiEqualFold compares a header name or token with s, ignoring ASCII
// case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
