package sms

import (
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// A notice is told in the language its context carries: Arabic here, with
// the site name where the Arabic text puts it and no English left.
func TestNotifyInUsersLanguage(t *testing.T) {
	s := twiliotest.NewServer(t)
	c := &Config{ProviderRaw: twilioJSON(s, nil)}
	provision(t, c, nil)
	ar := i18n.Builtin().Lookup("ar")
	n := authenticators.Notice{User: "john", To: testTo, Site: "app.example.com", Event: authenticators.NoticeFactorAdded, Factor: "totp", Time: time.Now()}
	if err := c.Notify(i18n.WithLang(t.Context(), ar), n); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	want := "تنبيه أمني: أُضيف تطبيق مصادقة إلى حسابك على app.example.com. إذا لم تكن أنت، فاتصل بالمسؤول الآن."
	if msgs[0].Body != want {
		t.Errorf("body = %q, want %q", msgs[0].Body, want)
	}
	if strings.Contains(msgs[0].Body, "Security") {
		t.Errorf("English left in %q", msgs[0].Body)
	}
}
