package caddymfa

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A wrong code is tied to the code field (aria-invalid, aria-describedby
// naming the error and the attempts left, which sit next to it); with no
// attempt left, the field and its button are disabled and a new code is
// offered.
func TestWrongCodeTiedToInput(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	csrf := b.state()["csrf_token"].(string)
	b.do(request{method: http.MethodPost, target: "/.mfa/send", form: url.Values{"method": {"email"}, "csrf_token": {csrf}}}).Body.Close()
	var page string
	for i := 0; i < 3; i++ {
		resp := b.follow(b.do(request{method: http.MethodPost, target: "/.mfa/verify", form: url.Values{"method": {"email"}, "code": {"000000"}, "csrf_token": {csrf}}}))
		page = body(t, resp)
		if i == 0 {
			for _, want := range []string{`aria-invalid="true" aria-describedby="error attempts"`, `<p id="error" class="error" role="alert">`, `<p class="hint" id="attempts">2 attempts left.</p>`} {
				if !strings.Contains(page, want) {
					t.Errorf("first wrong code: no %s in\n%s", want, page)
				}
			}
			if strings.Contains(page, " disabled") {
				t.Errorf("the field is disabled with attempts left:\n%s", page)
			}
		}
	}
	for _, want := range []string{`required disabled aria-invalid="true"`, `<button type="submit" disabled>Verify</button>`, `action="/.mfa/send"`, "0 attempts left."} {
		if !strings.Contains(page, want) {
			t.Errorf("out of attempts: no %s in\n%s", want, page)
		}
	}
}
