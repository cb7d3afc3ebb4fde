package caddymfa

import (
	"bytes"
	"net/http"
	"strconv"
)

// heldDelivery is a standalone send that waits for the HTTP answer to go
// out before it is handed to its channel's queue. Starting it earlier
// would put the work of sending (waking a delivery worker, rendering,
// the SMTP exchange) into the answers to known users alone, which would
// tell them from unknown ones by timing (SECURITY.md H37); starting it
// any later only keeps the user waiting for the code.
type heldDelivery struct {
	deliver func()
}

// start hands the held delivery, if any, to its queue.
func (d *heldDelivery) start() {
	if deliver := d.deliver; deliver != nil {
		d.deliver = nil
		deliver()
	}
}

// heldAnswer collects an answer so that it can be sent whole, with its
// length, and flushed to the client before anything else is done in the
// request: a handler's answer otherwise leaves only after the handler
// returns.
type heldAnswer struct {
	w      http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (a *heldAnswer) Header() http.Header { return a.w.Header() }

func (a *heldAnswer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

func (a *heldAnswer) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.body.Write(p)
}

// send writes the collected answer to the client and flushes it. With its
// Content-Length set, the flush completes the answer, so the client has
// all of it before send returns.
func (a *heldAnswer) send() {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	if a.status >= 200 && a.status != http.StatusNoContent && a.status != http.StatusNotModified {
		a.w.Header().Set("Content-Length", strconv.Itoa(a.body.Len()))
	}
	a.w.WriteHeader(a.status)
	if a.body.Len() > 0 {
		_, _ = a.w.Write(a.body.Bytes())
	}
	// A writer that cannot flush sends the answer when the handler
	// returns, just after the delivery was queued.
	_ = http.NewResponseController(a.w).Flush()
}

// answerThenDeliver writes the answer answer writes, sends it to the
// client, and only then starts the held delivery, on a goroutine of its
// own: over HTTP/2 and HTTP/3 the answer ends only when the handler
// returns, so the request does nothing more for a known name than for an
// unknown one. A nil d means no delivery can be held (one that waits for
// its outcome): the answer is written as usual. An empty d (nothing to
// send, for a name without an address) takes the same way as a full one,
// so the answers to known and unknown names are written alike. When
// answer fails, nothing it wrote is sent (the caller answers the error)
// and the delivery still starts: the code was issued.
func answerThenDeliver(w http.ResponseWriter, d *heldDelivery, answer func(http.ResponseWriter) error) error {
	if d == nil {
		return answer(w)
	}
	defer func() { go d.start() }()
	a := &heldAnswer{w: w}
	if err := answer(a); err != nil {
		return err
	}
	a.send()
	return nil
}
