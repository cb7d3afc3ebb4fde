package caddymfa

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
	"github.com/caddymfa/caddy-mfa/internal/mailtest"
)

// speaking sends every request of b with the Accept-Language header lang.
func (b *browser) speaking(lang string) func(request) *http.Response {
	return func(rq request) *http.Response {
		b.e.t.Helper()
		if rq.header == nil {
			rq.header = http.Header{}
		}
		rq.header.Set("Accept-Language", lang)
		return b.do(rq)
	}
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A sign-in in German or Swedish, chosen by Accept-Language: the pages,
// the JSON messages and the email are in that language.
func TestSignInInUserLanguage(t *testing.T) {
	for _, tt := range []struct {
		accept, tag, title, subject, wrong string
	}{
		{"de-DE,de;q=0.9,en;q=0.5", "de", "Bestätigen Sie, dass Sie es sind", "Ihr Anmeldecode für", "Dieser Code ist ungültig."},
		{"sv-SE", "sv", "Bekräfta att det är du", "Din inloggningskod för", "Koden är inte giltig."},
		{"ar", "ar", "تأكيد هويتك", "رمز تسجيل الدخول إلى", "هذا الرمز غير صالح."},
	} {
		t.Run(tt.tag, func(t *testing.T) {
			h, outbox := testConfig(t)
			e := newEnv(t, h, outbox)
			b := e.browser("alice")
			do := b.speaking(tt.accept)
			page := body(t, do(request{target: "/.mfa/"}))
			dir := "ltr"
			if tt.tag == "ar" {
				dir = "rtl"
			}
			if !strings.Contains(page, `<html lang="`+tt.tag+`" dir="`+dir+`">`) || !strings.Contains(page, tt.title) {
				t.Fatalf("choose page not in %s:\n%s", tt.tag, page)
			}
			csrf := b.state()["csrf_token"].(string)
			resp := do(request{method: http.MethodPost, target: "/.mfa/send", form: url.Values{"method": {"email"}, "csrf_token": {csrf}}})
			resp.Body.Close()
			page = body(t, do(request{target: resp.Header.Get("Location")}))
			if !strings.Contains(page, e.h.catalog.Lookup(tt.tag).T("verify.title")) {
				t.Errorf("code page not in %s:\n%s", tt.tag, page)
			}
			raw, err := os.ReadFile(e.outboxFiles()[0])
			if err != nil {
				t.Fatal(err)
			}
			m, err := mailtest.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(m.Subject, tt.subject) || !strings.Contains(m.HTML, `lang="`+tt.tag+`" dir="`+dir+`"`) {
				t.Errorf("email not in %s: subject %q\n%s", tt.tag, m.Subject, m.HTML)
			}
			v := decodeJSON(t, do(request{method: http.MethodPost, target: "/.mfa/verify",
				header: http.Header{"Accept": {"application/json"}}, json: map[string]string{"method": "email", "code": "000000", "csrf_token": csrf}}))
			if v["message"] != tt.wrong {
				t.Errorf("wrong code message %q, want %q", v["message"], tt.wrong)
			}
		})
	}
}

// The JSON refusals outside the sign-in pages speak the user's language
// too: the 401 a script gets from a protected URL without a session, the
// 401 of a page that asks for a step-up, and the waiting page's poll
// without a first-factor user. Their error codes stay the same in every
// language.
func TestJSONRefusalsInUserLanguage(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	const accept = "de-DE,de;q=0.9"
	de := e.h.catalog.Lookup("de")
	get := func(user, target string) *http.Response {
		return e.browser(user).speaking(accept)(request{target: target, header: http.Header{"Accept": {"application/json"}}})
	}
	for _, tt := range []struct {
		name      string
		answer    func() *http.Response
		code, key string
	}{
		{"protected URL", func() *http.Response { return get("alice", "/app") }, "mfa_required", "msg.mfa_required"},
		{"status poll", func() *http.Response { return get("", "/.mfa/status") }, errCodeNoUser, "msg.first_factor"},
		{"step-up", func() *http.Response {
			r := httptest.NewRequest(http.MethodGet, "/admin", nil)
			r.Header.Set("Accept", "application/json")
			r.Header.Set("Accept-Language", accept)
			w := httptest.NewRecorder()
			if err := e.h.stepUp(w, r); err != nil {
				t.Fatal(err)
			}
			return w.Result()
		}, errCodeStepUp, "msg.step_up_required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.answer()
			v := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusUnauthorized || v["error"] != tt.code {
				t.Fatalf("status %d, %v; want 401 %s", resp.StatusCode, v, tt.code)
			}
			if want := de.T(tt.key); v["message"] != want || want == i18n.Builtin().English().T(tt.key) {
				t.Errorf("message %q, want the German %q", v["message"], want)
			}
		})
	}
}

// The text messages follow the user's language: the built-in link text
// in German, and the operator's own Swedish code text for a user who
// picked Swedish with the switcher, whatever the browser asks for.
func TestTextMessageInUserLanguage(t *testing.T) {
	e, tw := smsEnv(t, func(h *Handler) {
		h.BaseURL = testBaseURL
		h.SMS.Send = sms.SendLink
		h.SMS.Messages = nil
	})
	b := e.browser("alice")
	do := b.speaking("de")
	csrf := b.state()["csrf_token"].(string)
	do(request{method: http.MethodPost, target: "/.mfa/send", json: map[string]string{"method": "sms", "csrf_token": csrf}}).Body.Close()
	msgs := tw.Messages()
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0].Body, "Zum Anmelden tippen: "+testBaseURL) {
		t.Errorf("German link text: %v", msgs)
	}

	e, tw = smsEnv(t)
	b = e.browser("alice")
	do = b.speaking("de")
	resp := do(request{method: http.MethodPost, target: "/.mfa/language", form: url.Values{"language": {"sv"}, "return": {"/.mfa/?method=choose"}}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/?method=choose" {
		t.Fatalf("switcher: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	csrf = b.state()["csrf_token"].(string)
	do(request{method: http.MethodPost, target: "/.mfa/send", json: map[string]string{"method": "sms", "csrf_token": csrf}}).Body.Close()
	if msgs := tw.Messages(); len(msgs) != 1 || !strings.HasPrefix(msgs[0].Body, "Din kod: ") {
		t.Errorf("Swedish code text: %v", msgs)
	}
}

// The switcher keeps the picked language in a cookie, which wins over
// Accept-Language, and goes back only to a page of the flow.
func TestLanguageSwitcher(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	do := b.speaking("de")
	for _, tt := range []struct{ ret, want string }{
		{"/.mfa/?method=totp", "/.mfa/?method=totp"},
		{"https://evil.example/", "/.mfa/"},
		{"//evil.example/", "/.mfa/"},
		{"/app", "/.mfa/"},
		{"/.mfa/?x=\\evil", "/.mfa/"},
	} {
		resp := do(request{method: http.MethodPost, target: "/.mfa/language", form: url.Values{"language": {"ja"}, "return": {tt.ret}}})
		resp.Body.Close()
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != tt.want {
			t.Errorf("return %q: %d to %q, want %q", tt.ret, resp.StatusCode, got, tt.want)
		}
	}
	page := body(t, do(request{target: "/.mfa/"}))
	if !strings.Contains(page, `<html lang="ja"`) || !strings.Contains(page, `<option value="ja" lang="ja" selected>日本語</option>`) {
		t.Errorf("after picking Japanese:\n%s", page)
	}
	// An unknown language leaves the choice as it was.
	do(request{method: http.MethodPost, target: "/.mfa/language", form: url.Values{"language": {"xx"}}}).Body.Close()
	if page := body(t, do(request{target: "/.mfa/"})); !strings.Contains(page, `<html lang="ja"`) {
		t.Error("an unknown language changed the choice")
	}
	// A cross-site form is refused (SECURITY.md G35).
	resp := do(request{method: http.MethodPost, target: "/.mfa/language", form: url.Values{"language": {"fr"}}, header: http.Header{"Sec-Fetch-Site": {"cross-site"}}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site switch: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// A GET goes back to the flow.
	resp = do(request{target: "/.mfa/language"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /language: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

// An operator's translations directory adds a language and overrides a
// text; a file that does not parse fails at provision.
func TestOperatorTranslations(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nl.txt"), []byte("language.name = Nederlands\nchoose.title = Bevestig dat u het bent\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "de.txt"), []byte("choose.title = Sind Sie es?\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, outbox := testConfig(t)
	h.Translations = dir
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	if page := body(t, b.speaking("nl-BE")(request{target: "/.mfa/"})); !strings.Contains(page, "Bevestig dat u het bent") || !strings.Contains(page, "Email me a code") {
		t.Errorf("Dutch page (English where Dutch has no text):\n%s", page)
	}
	if page := body(t, b.speaking("de")(request{target: "/.mfa/"})); !strings.Contains(page, "Sind Sie es?") || !strings.Contains(page, "Code per E-Mail senden") {
		t.Errorf("German page with an override:\n%s", page)
	}

	if err := os.WriteFile(filepath.Join(dir, "de.txt"), []byte("choose.titel = Sind Sie es?\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, _ = testConfig(t)
	h.Translations = dir
	if err := provisionOnly(t, h); err == nil || !strings.Contains(err.Error(), "choose.titel") {
		t.Errorf("provision with an unknown key: %v", err)
	}
}

// Every message the code says is in the English catalog, so it is
// translated: a string literal given to errorView or accountRefusal,
// assigned to a view's Message or to msg (the account page's answer), or
// returned as a problem with an address must be the English text of a
// msg.* key.
func TestMessagesTranslatable(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	idx := englishIndex()
	fset := token.NewFileSet()
	check := func(e ast.Expr) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil || s == "" {
			return
		}
		if _, ok := idx[s]; !ok {
			t.Errorf("%s: message %q is not in the English catalog (internal/i18n/translations/en.txt, msg.*)", fset.Position(lit.Pos()), s)
		}
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && (id.Name == "errorView" && len(n.Args) == 3 || id.Name == "invalid" && len(n.Args) == 2) {
					check(n.Args[len(n.Args)-1])
				}
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "accountRefusal" && len(n.Args) == 6 {
					check(n.Args[5])
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					if sel, ok := lhs.(*ast.SelectorExpr); ok && sel.Sel.Name == "Message" && i < len(n.Rhs) {
						check(n.Rhs[i])
					}
					if id, ok := lhs.(*ast.Ident); ok && id.Name == "msg" && i < len(n.Rhs) {
						check(n.Rhs[i])
					}
				}
			case *ast.KeyValueExpr:
				if id, ok := n.Key.(*ast.Ident); ok && id.Name == "Message" {
					check(n.Value)
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if strings.HasPrefix(id.Name, "msg") && i < len(n.Values) {
						check(n.Values[i])
					}
				}
			}
			return true
		})
	}
	// The problems of a new address, said by the channels.
	for _, s := range []string{"Enter a valid email address.", "Codes cannot be sent to numbers in that country.",
		"Enter the number in international form, starting with + and the country code.", "Unknown method."} {
		if _, ok := idx[s]; !ok {
			t.Errorf("address problem %q is not in the English catalog", s)
		}
	}
	if got := localize(i18n.Builtin().Lookup("fr"), "Sign in first, then change {what}.", []string{"what", "thing.phone"}); got != "Connectez-vous d’abord pour changer votre numéro de téléphone." {
		t.Errorf("localize with a key argument: %q", got)
	}
}

// provisionOnly provisions h and cleans it up, returning the error.
func provisionOnly(t *testing.T, h *Handler) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	_ = h.Cleanup()
	return err
}

// languageChoice reads the switcher's cookie as r.Cookie does, whatever
// else the Cookie header holds, and parses nothing when it is absent.
func TestLanguageChoiceMatchesRequestCookie(t *testing.T) {
	for _, lines := range [][]string{
		nil,
		{"theme=dark"},
		{"mfa_lang=ja"},
		{"a=1; mfa_lang=de; b=2"},
		{`mfa_lang="fr"`},
		{"mfa_lang=a b; mfa_lang=fr"},
		{"theme=dark", "mfa_lang=pt-BR"},
		{"xmfa_lang=ja; mfa_langx=de"},
		{"mfa_flow-1=v; mfa_session-1=w"},
		{"mfa_lang="},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if lines != nil {
			r.Header["Cookie"] = lines
		}
		want := ""
		if c, err := r.Cookie(languageCookie); err == nil {
			want = c.Value
		}
		if got := languageChoice(r); got != want {
			t.Errorf("Cookie %q: %q, want %q", lines, got, want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header["Cookie"] = []string{"theme=dark; mfa_flow-1=v"}
	if n := testing.AllocsPerRun(100, func() { languageChoice(r) }); n != 0 {
		t.Errorf("languageChoice without the cookie allocates %v times", n)
	}
}
