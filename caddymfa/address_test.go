package caddymfa

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

// The address option (Curity's intermediate attribute) takes the address
// from the first factor, and only from a trusted hop when it reads a
// request header.
func TestAddressFromFirstFactor(t *testing.T) {
	h, outbox := testConfig(t)
	h.Email.Address = "{http.request.header.Remote-Email}"
	e := newEnv(t, h, outbox)
	hdr := http.Header{"Remote-Email": {"erin@example.net"}, "Accept": {"application/json"}}

	// From a client: the header is ignored, and erin has no address on file.
	st := decodeJSON(t, e.serve(request{target: "/.mfa/", user: "erin", header: hdr}, nil))
	if st["error"] != errCodeNoMethod {
		t.Fatalf("untrusted address header: %v", st)
	}
	// From a trusted proxy: the address is used.
	b := e.browser("erin")
	do := func(target string, body map[string]string) map[string]any {
		rq := request{target: target, trusted: true, header: hdr.Clone()}
		if body != nil {
			rq.json = body
		}
		return decodeJSON(t, b.do(rq))
	}
	st = do("/.mfa/", nil)
	if st["step"] != "choose" || st["destination"] != "e***@e***.net" {
		t.Fatalf("trusted address header: %v", st)
	}
	do("/.mfa/send", map[string]string{"csrf_token": st["csrf_token"].(string)})
	msgs := e.outboxMessages()
	if len(msgs) != 1 || !strings.Contains(msgs[0], "erin@example.net") {
		t.Fatalf("outbox: %q", msgs)
	}
}

// The delivery log keeps at most its bound, newest first.
func TestDeliveryLogIsBounded(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	l := &deliveryLog{store: e.h.store, logger: e.h.logger, max: 10}
	start := time.Now()
	for i := range 25 {
		l.record(authenticators.DeliveryResult{Time: start.Add(time.Duration(i) * time.Millisecond), Method: "email", To: "a***@e***.com", Attempt: 1, OK: i%2 == 0, Error: fmt.Sprint(i)})
	}
	got, err := l.entries(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || got[0].Error != "24" || got[9].Error != "15" {
		t.Fatalf("log holds %d entries, newest %q", len(got), got[0].Error)
	}
}
