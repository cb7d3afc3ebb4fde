package caddymfa

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
)

// GET / changes nothing in the store, unless a method sends links: then
// it looks for a link confirmed on another device, and only then.
func TestGetStepPicksUpLinksOnlyInLinkMode(t *testing.T) {
	for _, mode := range []string{email.SendCode, email.SendLink} {
		t.Run(mode, func(t *testing.T) {
			s := newServices(t, func(h *Handler) {
				h.PathPrefix = "/.mfa"
				h.Email.Send = mode
				u := defaultUser
				h.User = &u
			})
			e := &env{t: t, h: s.h, clock: s.clock}
			b := e.browser("alice")
			b.state() // starts the flow
			before := s.store.updates.Load()
			if st := b.state(); st["step"] != stepChoose {
				t.Fatalf("step %v", st["step"])
			}
			resp := b.do(request{target: "/.mfa/", header: http.Header{"Accept": {"text/html"}}})
			resp.Body.Close()
			want := int64(0)
			if mode == email.SendLink {
				want = 2
			}
			if n := s.store.updates.Load() - before; n != want {
				t.Fatalf("%d store updates for two page views, want %d", n, want)
			}
		})
	}
}

// query reads as URL.Query does, without a map for a request that has no
// query.
func TestQuery(t *testing.T) {
	for _, target := range []string{"/.mfa/", "/.mfa/?method=totp&return=%2Fapp", "/.mfa/?method", "/.mfa/?"} {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		for _, name := range []string{"method", "return", "x"} {
			if got, want := query(r).Get(name), r.URL.Query().Get(name); got != want {
				t.Errorf("%s: %s = %q, want %q", target, name, got, want)
			}
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/.mfa/", nil)
	if n := testing.AllocsPerRun(100, func() { query(r).Get("method") }); n != 0 {
		t.Errorf("query without a query allocates %v times", n)
	}
}
