package caddymfa

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/mailtest"
	"github.com/caddymfa/caddy-mfa/storage"
)

// noticeMail is a security notice in the outbox.
type noticeMail struct {
	subject, text, html string
}

// noticeMails returns the security notices in the outbox, oldest first.
func (e *env) noticeMails() []noticeMail {
	var out []noticeMail
	for _, m := range e.outboxMessages() {
		if parsed, err := mailtest.Parse([]byte(m)); err == nil && isNotice(parsed.Text) {
			out = append(out, noticeMail{parsed.Subject, parsed.Text, parsed.HTML})
		}
	}
	return out
}

// waitNotice waits for the nth notice (counting from 1) and returns it.
func (e *env) waitNotice(n int) noticeMail {
	e.t.Helper()
	waitFor(e.t.(*testing.T), func() bool { return len(e.noticeMails()) >= n })
	return e.noticeMails()[n-1]
}

// userWrites is a store that counts the writes to users' records.
type userWrites struct {
	storage.Store
	mu     sync.Mutex
	writes int
}

func (s *userWrites) Update(ctx context.Context, key string, fn storage.UpdateFunc) error {
	return s.Store.Update(ctx, key, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		v, exp, op, err := fn(cur, found)
		if err == nil && op != storage.Keep && strings.HasPrefix(key, keyUser) {
			s.mu.Lock()
			s.writes++
			s.mu.Unlock()
		}
		return v, exp, op, err
	})
}

func (s *userWrites) UpdateMany(ctx context.Context, keys []string, fn storage.UpdateManyFunc) error {
	return s.Store.UpdateMany(ctx, keys, func(cur []storage.Record, found []bool) ([]storage.Change, error) {
		changes, err := fn(cur, found)
		if err == nil {
			for i, c := range changes {
				if c.Op != storage.Keep && strings.HasPrefix(keys[i], keyUser) {
					s.mu.Lock()
					s.writes++
					s.mu.Unlock()
				}
			}
		}
		return changes, err
	})
}

func (s *userWrites) take() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.writes
	s.writes = 0
	return n
}

// A German user (Accept-Language: de) who adds an app gets the notice in
// German; the account page answers in German, in JSON too; an
// administrator's reset of that user is told in German, the language of
// the user's last sign-in, which the user record keeps; a sign-in in the
// language of the last one writes no user record, and one in English
// switches the notices of later administrator changes to English.
func TestNoticesInUsersLanguage(t *testing.T) {
	e := totpEnv(t, "")
	spy := &userWrites{Store: e.h.store}
	e.h.store = spy
	e.h.wire()

	b := e.browser("alice")
	b.lang = "de-DE,de;q=0.9,en;q=0.5"
	e.signInWith(b)
	if rec, err := e.h.users.load(t.Context(), "alice"); err != nil || rec.Lang != "de" {
		t.Fatalf("user record language %q, %v; want de", rec.Lang, err)
	}
	resp, page := b.enrollPage("")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("enrollment page: %d %v", resp.StatusCode, page)
	}
	if resp, done := b.postEnroll(map[string]string{"code": e.code(page["secret"].(string), 0)}); resp.StatusCode != http.StatusOK {
		t.Fatalf("confirm: %d %v", resp.StatusCode, done)
	}
	added := e.waitNotice(1)
	if want := "Sicherheitshinweis: Ihrem Konto bei app.test wurde eine Authenticator-App hinzugefügt"; added.subject != want {
		t.Errorf("subject %q, want %q", added.subject, want)
	}
	for _, want := range []string{"Ihrem Konto bei app.test wurde eine Authenticator-App hinzugefügt.", "Konto: alice", "IP-Adresse: 192.0.2.10", "Wenn Sie das nicht waren, wenden Sie sich sofort an den Administrator."} {
		if !strings.Contains(added.text, want) {
			t.Errorf("the notice's text lacks %q:\n%s", want, added.text)
		}
	}
	if !strings.Contains(added.html, `<html lang="de" dir="ltr">`) || strings.Contains(added.text, "Security notice") {
		t.Errorf("the notice is not all German:\n%s\n%s", added.text, added.html)
	}

	// The account page's JSON answers in German.
	other := e.browser("alice")
	other.lang = "de"
	e.signInWith(other)
	resp = b.do(request{target: "/.mfa/account", header: http.Header{"Accept": {"application/json"}}})
	acct := decodeJSON(t, resp)
	var otherID string
	for _, s := range acct["sessions"].([]any) {
		if m := s.(map[string]any); m["current"] != true {
			otherID = m["id"].(string)
		}
	}
	resp = b.do(request{method: http.MethodPost, target: "/.mfa/account", json: map[string]string{"action": "end_session", "id": otherID, "csrf_token": acct["csrf_token"].(string)}})
	if v := decodeJSON(t, resp); resp.StatusCode != http.StatusOK || v["message"] != "Diese Sitzung wurde beendet. Der Browser muss sich erneut anmelden." {
		t.Errorf("ending a session: %d, message %q", resp.StatusCode, v["message"])
	}
	resp = b.do(request{method: http.MethodPost, target: "/.mfa/account", json: map[string]string{"action": "end_session", "id": otherID, "csrf_token": acct["csrf_token"].(string)}})
	if v := decodeJSON(t, resp); resp.StatusCode != http.StatusNotFound || v["message"] != "Diese Sitzung oder dieses Gerät ist bereits beendet." || v["error"] != errCodeNotFound {
		t.Errorf("ending it again: %d, error %q, message %q", resp.StatusCode, v["error"], v["message"])
	}
	if ended := e.waitNotice(2); ended.subject != "Sicherheitshinweis: Geräte wurden von Ihrem Konto bei app.test abgemeldet" {
		t.Errorf("sessions ended: subject %q", ended.subject)
	}

	// An administrator's reset is told in the language of the last
	// sign-in.
	if v := e.adminCall(http.MethodPost, "/mfa/users/alice/reset"); v["removed"] != true {
		t.Fatalf("reset: %v", v)
	}
	reset := e.waitNotice(3)
	if !strings.HasPrefix(reset.subject, "Sicherheitshinweis: Aus Ihrem Konto bei ") || !strings.HasSuffix(reset.subject, " wurde eine Authenticator-App entfernt") {
		t.Errorf("admin reset: subject %q, want German", reset.subject)
	}
	if strings.Contains(reset.text, "IP-Adresse") {
		t.Errorf("the administrator's address is in the user's notice:\n%s", reset.text)
	}

	// Signing in again in German writes no user record; in English, the
	// record says so once, and the next administrator change is told in
	// English.
	spy.take()
	e.signInWith(func() *browser { br := e.browser("alice"); br.lang = "de"; return br }())
	if n := spy.take(); n != 0 {
		t.Errorf("a sign-in in the same language wrote the user record %d times", n)
	}
	e.signIn("alice")
	if n := spy.take(); n != 1 {
		t.Errorf("a sign-in in another language wrote the user record %d times, want 1", n)
	}
	if rec, _ := e.h.users.load(t.Context(), "alice"); rec.Lang != "" {
		t.Errorf("after an English sign-in the record keeps %q", rec.Lang)
	}
	app := e.adminCall(http.MethodPost, "/mfa/users/alice/enroll")
	if enrolled := e.waitNotice(4); !strings.HasPrefix(enrolled.subject, "Security notice: an authenticator app was added to your account on ") {
		t.Errorf("admin enroll after an English sign-in: subject %q", enrolled.subject)
	}

	// A sign-in with the app keeps the language in the one write its
	// check makes.
	secret := strings.ReplaceAll(app["secret"].(string), " ", "")
	sv := e.browser("alice")
	sv.lang = "sv"
	spy.take()
	if resp := sv.postJSON("/verify", map[string]string{"method": methodTOTP, "code": e.code(secret, 0)}); resp.StatusCode != http.StatusOK {
		t.Fatalf("app sign-in: %d %v", resp.StatusCode, decodeJSON(t, resp))
	}
	if n := spy.take(); n != 1 {
		t.Errorf("an app sign-in in a new language wrote the user record %d times, want 1", n)
	}
	if rec, _ := e.h.users.load(t.Context(), "alice"); rec.Lang != "sv" {
		t.Errorf("after a Swedish app sign-in the record says %q", rec.Lang)
	}
}

// A notice by text message is in the user's language too: Arabic here,
// for a user with only a phone number who signs out her other browser
// from the account page.
func TestSMSNoticeInArabic(t *testing.T) {
	e, tw := smsEnv(t)
	signIn := func() *browser {
		b := e.browser("erin")
		b.lang = "ar"
		if resp := b.postJSON("/send", map[string]string{"method": "sms"}); resp.StatusCode != http.StatusOK {
			t.Fatalf("send: %d %v", resp.StatusCode, decodeJSON(t, resp))
		}
		code, _ := lastText(t, tw)
		if resp := b.postJSON("/verify", map[string]string{"method": "sms", "code": code}); resp.StatusCode != http.StatusOK {
			t.Fatalf("verify: %d %v", resp.StatusCode, decodeJSON(t, resp))
		}
		return b
	}
	b := signIn()
	signIn()
	resp := b.do(request{target: "/.mfa/account", header: http.Header{"Accept": {"application/json"}}})
	acct := decodeJSON(t, resp)
	resp = b.do(request{method: http.MethodPost, target: "/.mfa/account", json: map[string]string{"action": "end_others", "csrf_token": acct["csrf_token"].(string)}})
	if v := decodeJSON(t, resp); resp.StatusCode != http.StatusOK || v["message"] != "سُجّل خروج جميع الجلسات الأخرى والأجهزة المحفوظة." {
		t.Fatalf("ending the other sessions: %d, message %q", resp.StatusCode, v["message"])
	}
	want := "تنبيه أمني: سُجّل خروج أجهزة من حسابك على app.test. إذا لم تكن أنت، فاتصل بالمسؤول الآن."
	waitFor(t, func() bool {
		msgs := tw.Messages()
		return len(msgs) > 0 && msgs[len(msgs)-1].Body == want
	})
	if last := tw.Messages()[len(tw.Messages())-1]; last.To != "+46701234567" {
		t.Errorf("the notice went to %s", last.To)
	}
}
