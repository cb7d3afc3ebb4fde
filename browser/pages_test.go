package browser

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// auditLanguages are the languages every page is checked in: English,
// German (long words) and Arabic (right to left).
var auditLanguages = []string{"en", "de", "ar"}

// auditStates are the pages and states TestAccessibility must reach in
// every language; it fails when a walk no longer gets to one.
var auditStates = []string{
	"choose", "registration required", "code sent", "resend too soon", "wrong code", "out of attempts", "throttled",
	"enrollment", "recovery codes", "signed in", "account", "app settings",
	"phone registration info", "phone registration", "phone registration code",
	"404", "405", "signed out", "choose with an app", "app code", "recovery code", "after a recovery code",
	"standalone identify", "standalone code sent", "expired",
	"link waiting", "link confirm", "link confirmed", "link open",
	"passkey sign-in", "choose with a passkey", "passkeys",
	"branded choose", "branded code sent",
}

// auditor walks the pages in one Chromium: each walk gets a tab of its
// own browser context (its own cookies), and each state reached is
// checked by axe-core at every viewport and color scheme, without
// reloading it.
type auditor struct {
	axe     string
	browser context.Context
	// shots is where a screenshot of each check goes
	// ($BROWSER_SCREENSHOTS), or "" for none.
	shots string
	seen  map[string][]string // state → languages
}

// password is the basic_auth password of every user of the audit sites
// (the hash below is of "alice").
const (
	password     = "alice"
	passwordHash = "$2a$14$R6Kogx1hR9xFOSsWit/4.uEYh6CM3QByrxh/f5HDgwESfmV9YBVoy"
)

// tab opens a page in a fresh browser context that sends lang as
// Accept-Language and, if user is set, user's basic_auth credentials.
func (a *auditor) tab(t *testing.T, lang, user string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(a.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	h := network.Headers{"Accept-Language": lang}
	if user != "" {
		h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	}
	if err := chromedp.Do(ctx, headers(h)); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return ctx
}

// do runs actions in the tab, failing the test after a minute.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// check runs axe-core over the page the tab shows at every viewport in
// light and dark, and keeps a screenshot of each when asked to.
func (a *auditor) check(t *testing.T, ctx context.Context, lang, state string) {
	t.Helper()
	first := true
	for _, vp := range viewports {
		for _, scheme := range []string{"light", "dark"} {
			at := fmt.Sprintf("%s (%s, %s, %s)", state, lang, vp.name, scheme)
			err := chromedp.Do(ctx,
				chromedp.EmulateViewport(int64(vp.width), int64(vp.height)),
				colorScheme(scheme),
				axeRun(t, a.axe, at, first),
				noOverflow(t, at),
				switcherInOneRow(t, at),
				a.shot(t, fmt.Sprintf("%s-%s-%s-%s", state, lang, vp.name, scheme)),
			)
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			first = false
		}
	}
	a.seen[state] = append(a.seen[state], lang)
}

func (a *auditor) shot(t *testing.T, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if a.shots == "" {
			return nil
		}
		png, err := chromedp.CaptureScreenshot()(ctx, tg)
		if err != nil {
			return err
		}
		name = strings.NewReplacer(" ", "-", "/", "-").Replace(name)
		return os.WriteFile(filepath.Join(a.shots, name+".png"), png, 0o644)
	})
}

// noOverflow reports a page wider than the viewport: something sticks
// out sideways, or is cut off, at that size.
func noOverflow(t *testing.T, what string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		wide, err := chromedp.Evaluate[[]string](`(() => {
			const vw = document.documentElement.clientWidth;
			if (document.documentElement.scrollWidth <= vw) return [];
			return [...document.querySelectorAll("body *")].filter(e => {
				const r = e.getBoundingClientRect();
				return r.width > 0 && (r.right > vw + 1 || r.left < -1);
			}).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "")).slice(0, 5);
		})()`)(ctx, tg)
		if err != nil {
			return err
		}
		if len(wide) > 0 {
			t.Errorf("%s: the page is wider than the viewport: %v", what, wide)
		}
		return nil
	})
}

// switcherInOneRow reports a language switcher whose button wrapped onto
// a line of its own, away from the list it applies: on a phone the label
// goes above, the list and the button stay side by side.
func switcherInOneRow(t *testing.T, what string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		apart, err := chromedp.Evaluate[bool](`(() => {
			const s = document.querySelector("footer.languages select");
			const b = document.querySelector("footer.languages button");
			if (!s || !b) return false;
			const mid = e => { const r = e.getBoundingClientRect(); return r.top + r.height / 2; };
			return Math.abs(mid(s) - mid(b)) > 2;
		})()`)(ctx, tg)
		if err != nil {
			return err
		}
		if apart {
			t.Errorf("%s: the language switcher's button is not beside its list", what)
		}
		return nil
	})
}

// layoutRules are the axe-core rules whose result can change with the
// viewport or the color scheme of a page that is not reloaded: colors,
// and sizes and overflow. The pages' markup is the same at every size
// and scheme (the stylesheet hides nothing by media query), so every
// other rule would find what it found at the first look.
const layoutRules = `["color-contrast", "link-in-text-block", "target-size", "scrollable-region-focusable", "meta-viewport"]`

// axeRun injects axe-core into the page unless it is there already and
// reports every violation of WCAG 2.0, 2.1 and 2.2 A and AA and of
// axe's best practices (all those rules when all is set, else
// layoutRules).
func axeRun(t *testing.T, src, what string, all bool) chromedp.Action[chromedp.Void] {
	opts := `{resultTypes: ["violations"], runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]}}`
	if !all {
		opts = `{resultTypes: ["violations"], runOnly: {type: "rule", values: ` + layoutRules + `}}`
	}
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		loaded, err := chromedp.Evaluate[bool](`typeof axe === "object"`)(ctx, tg)
		if err != nil {
			return err
		}
		if !loaded {
			if _, err := chromedp.Evaluate[any](src+";0")(ctx, tg); err != nil {
				return err
			}
		}
		found, err := chromedp.Evaluate[[]string](`axe.run(document, `+opts+`).then(r =>
			r.violations.map(v => v.id + " (" + v.impact + "): " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", ")))`,
			chromedp.EvalAwaitPromise)(ctx, tg)
		if err != nil {
			return err
		}
		for _, v := range found {
			t.Errorf("%s: axe: %s", what, v)
		}
		return nil
	})
}

// loads runs a and waits until the page it leads to has loaded.
func loads[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.WaitEvent(page.LoadEventFired, nil, a)(ctx, t)
		return err
	})
}

// postTo sends an empty form with POST to path, as a browser would
// after a form of an earlier release.
func postTo(path string) chromedp.Action[chromedp.Void] {
	return loads(chromedp.Evaluate[any](fmt.Sprintf(`(() => {
		const f = document.createElement("form");
		f.method = "post";
		f.action = %q;
		document.body.append(f);
		f.submit();
		return 0;
	})()`, path)))
}

// mailbox reads the codes and links sent to each address, each once.
type mailbox struct {
	dir  string
	used map[string]bool
}

// next waits for a message to addr not read before and returns it.
func (m *mailbox) next(t *testing.T, addr string) examples.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		names, err := examples.Outbox(m.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if m.used[n] {
				continue
			}
			raw, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := examples.ParseMessage(raw) // a link has no code
			if strings.Contains(msg.To, addr) {
				m.used[n] = true
				return msg
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox %s: no message to %s after 15s", m.dir, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auditSite is a Caddyfile for the audit: every language has its users
// (the language's tag, and the tag with "-f" for the failures), each
// with the address <user>@example.com. {users} and {auth} stand for the
// mfa users and the basic_auth accounts.
func auditSite(caddyfile string) []byte {
	var users, auth strings.Builder
	for _, l := range auditLanguages {
		for _, u := range []string{l, l + "-f"} {
			fmt.Fprintf(&users, "\t\t\t%s email %s@example.com\n", u, u)
			fmt.Fprintf(&auth, "\t\t%s %s\n", u, passwordHash)
		}
	}
	r := strings.NewReplacer("{users}", strings.TrimSpace(users.String()), "{auth}", strings.TrimSpace(auth.String()))
	return []byte(r.Replace(caddyfile))
}

// withBaseURL sets base_url of every mfa handler to where the site
// listens, for links and passkeys.
func withBaseURL(cfg map[string]any) {
	port := ""
	examples.Walk(cfg, func(obj map[string]any) {
		if l, ok := obj["listen"].([]any); ok && len(l) > 0 {
			s, _ := l[0].(string)
			port = s[strings.LastIndexByte(s, ':')+1:]
		}
	})
	eachMFA(cfg, func(h map[string]any) { h["base_url"] = "http://localhost:" + port })
}

// secondFactorSite is behind basic_auth, with emailed codes, an
// authenticator app, recovery codes, a phone added during sign-in, and
// "remember this device"; a new code asked for within ten minutes of
// the last is refused.
const secondFactorSite = `http://localhost:8080 {
	basic_auth {
		{auth}
	}
	mfa {
		storage badger ./.mfa-data
		users {
			{users}
		}
		lockout 100 15m
		remember_device 30d
		email {
			outbox ./mailbox
			# long enough that a slow walk still meets it
			throttle {
				cooldown 10m
			}
		}
		sms {
			provider outbox ./sms-outbox
			registration {
				during_login on
				require email
				show_info on
			}
		}
		totp {
			issuer "Example"
			enroll verified
		}
		recovery_codes 10
	}
	respond "Hello {http.auth.mfa.user}, you passed MFA ({http.auth.mfa.method})."
}
`

// standaloneSite asks who the visitor is; its codes live two seconds, so
// the walk sees one expire.
const standaloneSite = `http://localhost:8080 {
	mfa {
		user ""
		storage badger ./.mfa-data
		allow_emails *@example.com
		email {
			outbox ./mailbox
			code_ttl 2s
		}
	}
	respond "Hello {http.auth.mfa.user}, you passed MFA ({http.auth.mfa.method})."
}
`

// linkSite emails sign-in links instead of codes.
const linkSite = `http://localhost:8080 {
	basic_auth {
		{auth}
	}
	mfa {
		storage badger ./.mfa-data
		users {
			{users}
		}
		email {
			outbox ./mailbox
			send link
		}
	}
	respond "Hello {http.auth.mfa.user}, you passed MFA ({http.auth.mfa.method})."
}
`

// passkeySite is standalone with passkeys, offered on the first page.
const passkeySite = `http://localhost:8080 {
	mfa {
		user ""
		storage badger ./.mfa-data
		users {
			{users}
		}
		email {
			outbox ./mailbox
		}
		passkey {
			passwordless on
		}
	}
	respond "Hello {http.auth.mfa.user}, you passed MFA ({http.auth.mfa.method})."
}
`

// TestAccessibility visits every page and state of the sign-in in
// English, German and Arabic, and axe-core checks each at desktop and
// phone sizes in light and dark: the choose page, a code sent, a new
// code asked for too soon, a wrong code, no attempts left, a throttled
// send, an expired code, enrollment of an app with its QR code, the
// recovery codes, the signed-in page, the account page, the app
// settings, adding a phone, 404 and 405, signing out, the app and
// recovery code pages, standalone sign-in, sign-in links, passkeys and
// examples/branding. A wrong, an expired and a used-up code answer the
// same at the form (SECURITY.md A7); the expired state is the page a
// reload shows after the code's lifetime.
//
// One Chromium serves the whole walk; each state is reached once per
// language and checked at every size and scheme in place. With
// BROWSER_SCREENSHOTS set, every check leaves a full-page screenshot
// there.
func TestAccessibility(t *testing.T) {
	a := &auditor{axe: axeSource(t), shots: os.Getenv("BROWSER_SCREENSHOTS"), seen: make(map[string][]string)}
	if a.shots != "" {
		if err := os.MkdirAll(a.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := newBrowserFor(t, 10*time.Minute, viewports[0].width, viewports[0].height)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	a.browser = ctx
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}

	sites := []struct {
		name  string
		audit func(*testing.T, *auditor)
	}{
		{"second factor", auditSecondFactor},
		{"standalone", auditStandalone},
		{"link", auditLink},
		{"passkeys", auditPasskeys},
		{"branding", func(t *testing.T, a *auditor) {
			auditBranding(t, a, filepath.Join(here, "..", "examples", "branding"))
		}},
	}
	ran := 0
	for _, site := range sites {
		t.Run(site.name, func(t *testing.T) {
			ran++
			site.audit(t, a)
		})
	}
	if ran < len(sites) {
		return // -run picked some sites: the list is not for them
	}
	for _, state := range auditStates {
		if got := a.seen[state]; !slices.Equal(got, auditLanguages) {
			t.Errorf("state %q checked in %v, want %v", state, got, auditLanguages)
		}
	}
	for state := range a.seen {
		if !slices.Contains(auditStates, state) {
			t.Errorf("state %q is checked but not listed in auditStates", state)
		}
	}
}

func auditSecondFactor(t *testing.T, a *auditor) {
	srv := examples.StartCaddyfile(t, "second factor", auditSite(secondFactorSite), examples.Options{})
	mail := &mailbox{dir: filepath.Join(srv.Dir, "mailbox"), used: map[string]bool{}}
	for _, lang := range auditLanguages {
		t.Run(lang, func(t *testing.T) {
			// The failures, as <lang>-f.
			ctx := a.tab(t, lang, lang+"-f")
			step := func(state string, actions ...chromedp.Action[chromedp.Void]) {
				t.Helper()
				do(t, ctx, state, actions...)
				a.check(t, ctx, lang, state)
			}
			var dir string
			step("choose",
				chromedp.Navigate(srv.URL("/")),
				chromedp.WaitVisible(sendButton),
				store(&dir, chromedp.Evaluate[string](`document.documentElement.dir`)))
			if want := map[bool]string{true: "rtl", false: "ltr"}[lang == "ar"]; dir != want {
				t.Errorf("%s page dir = %q, want %q", lang, dir, want)
			}
			step("registration required",
				chromedp.Navigate(srv.URL("/.mfa/register/phone")),
				chromedp.WaitVisible(`.choices form[action="/.mfa/send"] button`))
			step("code sent",
				chromedp.Navigate(srv.URL("/")),
				chromedp.WaitVisible(sendButton),
				submit(sendButton),
				chromedp.WaitVisible(`#code`))
			var alert string
			step("resend too soon",
				submit(`form[action="/.mfa/resend"] button`),
				chromedp.WaitVisible(`p[role="alert"]`),
				store(&alert, chromedp.Text(`p[role="alert"]`)))
			if lang == "en" && !strings.Contains(alert, "Try again in") {
				t.Errorf("a new code asked for too soon: the page says %q", alert)
			}
			wrong := chromedp.Steps(
				chromedp.SendKeys(`#code`, "000000"),
				submit(`form[action="/.mfa/verify"] button`),
				chromedp.WaitVisible(`p[role="alert"]`))
			step("wrong code", wrong)
			var disabled bool
			step("out of attempts", wrong, wrong,
				store(&disabled, chromedp.Evaluate[bool](`document.querySelector("#code").disabled && document.querySelector('form[action="/.mfa/verify"] button').disabled`)))
			if !disabled {
				t.Errorf("%s: the code field or Verify is enabled with no attempt left", lang)
			}
			// A new code within the cooldown of the first, whose code is
			// used up: refused, with the wait.
			step("throttled",
				submit(sendButton),
				chromedp.WaitVisible(`p[role="alert"]`),
				store(&alert, chromedp.Text(`p[role="alert"]`)))
			if lang == "en" && !regexp.MustCompile(`Try again in \d+ (seconds?|minutes?)\.`).MatchString(alert) {
				t.Errorf("a throttled send: the page says %q", alert)
			}

			// A sign-in, the app set up, and the pages of a signed-in
			// user, as <lang>.
			ctx = a.tab(t, lang, lang)
			do(t, ctx, "asking for a code",
				chromedp.Navigate(srv.URL("/")),
				chromedp.WaitVisible(sendButton),
				submit(sendButton),
				chromedp.WaitVisible(`#code`),
			)
			msg := mail.next(t, lang+"@example.com")
			var secret string
			step("enrollment",
				chromedp.SendKeys(`#code`, msg.Code),
				submit(`form[action="/.mfa/verify"] button`),
				chromedp.WaitVisible(`img.qr`),
				store(&secret, chromedp.Text(`code.secret`)))
			var codes []string
			step("recovery codes",
				chromedp.SendKeys(`#code`, totpref.Code(strings.ReplaceAll(secret, " ", ""), time.Now(), 0)),
				submit(`form[action="/.mfa/enroll/totp"] button`),
				chromedp.WaitVisible(`ol.codes`),
				store(&codes, chromedp.Evaluate[[]string](`[...document.querySelectorAll("ol.codes code")].map(c => c.textContent)`)))
			if len(codes) == 0 {
				t.Fatal("no recovery codes on the page")
			}
			step("signed in",
				chromedp.Navigate(srv.URL("/.mfa/")),
				chromedp.WaitVisible(`form[action="/.mfa/logout"]`))
			step("account",
				chromedp.Navigate(srv.URL("/.mfa/account")),
				chromedp.WaitVisible(`section[aria-labelledby="sessions"] li.item`))
			step("app settings",
				chromedp.Navigate(srv.URL("/.mfa/enroll/totp")),
				chromedp.WaitVisible(`#current_code`))
			step("phone registration info",
				chromedp.Navigate(srv.URL("/.mfa/register/phone")),
				chromedp.WaitVisible(`main a.button`))
			step("phone registration",
				submit(`main a.button`),
				chromedp.WaitVisible(`#address`))
			step("phone registration code",
				// A number of its own for each language: sends to one
				// number are throttled.
				chromedp.SendKeys(`#address`, "+1 201 555 01"+strconv.Itoa(10+slices.Index(auditLanguages, lang))),
				submit(`form[action="/.mfa/register/phone"] button`),
				chromedp.WaitVisible(`#code`))
			step("404",
				chromedp.Navigate(srv.URL("/.mfa/nowhere")),
				chromedp.WaitVisible(`main a`))
			step("405",
				postTo("/.mfa/"),
				chromedp.WaitVisible(`main a`))
			step("signed out",
				chromedp.Navigate(srv.URL("/.mfa/")),
				chromedp.WaitVisible(`form[action="/.mfa/logout"] button`),
				submit(`form[action="/.mfa/logout"] button`),
				chromedp.WaitVisible(`main`))
			step("choose with an app",
				chromedp.Navigate(srv.URL("/")),
				chromedp.WaitVisible(`a[href="/.mfa/?method=totp"]`))
			step("app code",
				submit(`a[href="/.mfa/?method=totp"]`),
				chromedp.WaitVisible(`#code`))
			step("recovery code",
				chromedp.Navigate(srv.URL("/.mfa/?method=recovery")),
				chromedp.WaitVisible(`#code`))
			step("after a recovery code",
				chromedp.SendKeys(`#code`, codes[0]),
				submit(`form[action="/.mfa/verify"] button`),
				chromedp.WaitVisible(`main`))
		})
	}
}

func auditStandalone(t *testing.T, a *auditor) {
	srv := examples.StartCaddyfile(t, "standalone", auditSite(standaloneSite), examples.Options{})
	for _, lang := range auditLanguages {
		t.Run(lang, func(t *testing.T) {
			ctx := a.tab(t, lang, "")
			step := func(state string, actions ...chromedp.Action[chromedp.Void]) {
				t.Helper()
				do(t, ctx, state, actions...)
				a.check(t, ctx, lang, state)
			}
			step("standalone identify",
				chromedp.Navigate(srv.URL("/")),
				chromedp.WaitVisible(`#username`))
			sent := time.Now()
			step("standalone code sent",
				chromedp.SendKeys(`#username`, lang+"@example.com"),
				submit(`form[action="/.mfa/identify"] button`),
				chromedp.WaitVisible(`#code`))
			// The code lives two seconds; a reload after that says it
			// expired.
			time.Sleep(time.Until(sent.Add(2 * time.Second)))
			var alert string
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				var n int
				do(t, ctx, "reloading after the code's lifetime",
					chromedp.Navigate(srv.URL("/.mfa/")),
					chromedp.WaitVisible(`main`),
					store(&n, chromedp.Evaluate[int](`document.querySelectorAll('p[role="alert"]').length`)))
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the code did not expire")
				}
			}
			step("expired", store(&alert, chromedp.Text(`p[role="alert"]`)))
			if lang == "en" && !strings.Contains(alert, "expired") {
				t.Errorf("after the code's lifetime the page says %q", alert)
			}
		})
	}
}

func auditLink(t *testing.T, a *auditor) {
	srv := examples.StartCaddyfile(t, "link", auditSite(linkSite), examples.Options{Rewrite: withBaseURL})
	mail := &mailbox{dir: filepath.Join(srv.Dir, "mailbox"), used: map[string]bool{}}
	for _, lang := range auditLanguages {
		t.Run(lang, func(t *testing.T) {
			ctx := a.tab(t, lang, lang)
			do(t, ctx, "asking for a link",
				chromedp.Navigate(srv.URL("/")),
				chromedp.WaitVisible(sendButton),
				submit(sendButton),
				chromedp.WaitVisible(`.match-number`),
				// The waiting page reloads itself every few seconds;
				// stop that while it is checked.
				store(new(any), chromedp.Evaluate[any](`window.stop(), 0`)),
			)
			a.check(t, ctx, lang, "link waiting")
			var number string
			if err := chromedp.Do(ctx, store(&number, chromedp.Text(`.match-number`))); err != nil {
				t.Fatal(err)
			}
			link := linkInMail.FindString(mail.next(t, lang+"@example.com").Text)
			if link == "" {
				t.Fatal("no link in the message")
			}
			// The link opened on another device.
			other := a.tab(t, lang, lang)
			do(t, other, "opening the link",
				chromedp.Navigate(link),
				chromedp.WaitVisible(`.numbers button`),
			)
			a.check(t, other, lang, "link confirm")
			do(t, other, "picking the number",
				submit(fmt.Sprintf(`.numbers button[value="%s"]`, number)),
				chromedp.WaitVisible(`main h1`),
			)
			a.check(t, other, lang, "link confirmed")
			// A link whose token did not come through: the page asks for it.
			do(t, other, "opening a link without its token",
				chromedp.Navigate(srv.URL("/.mfa/link")),
				chromedp.WaitVisible(`#token`),
			)
			a.check(t, other, lang, "link open")
		})
	}
}

func auditPasskeys(t *testing.T, a *auditor) {
	srv := examples.StartCaddyfile(t, "passkeys", auditSite(passkeySite), examples.Options{Rewrite: withBaseURL})
	mail := &mailbox{dir: filepath.Join(srv.Dir, "mailbox"), used: map[string]bool{}}
	for _, lang := range auditLanguages {
		t.Run(lang, func(t *testing.T) {
			ctx := a.tab(t, lang, "")
			do(t, ctx, "opening the sign-in",
				chromedp.Navigate(srv.URL("/")),
				chromedp.WaitVisible(`[data-passkey-login]`),
			)
			a.check(t, ctx, lang, "passkey sign-in")
			do(t, ctx, "asking for a code",
				chromedp.SendKeys(`#username`, lang),
				submit(`form[action="/.mfa/identify"] button`),
				chromedp.WaitVisible(sendButton))
			a.check(t, ctx, lang, "choose with a passkey")
			do(t, ctx, "asking for a code",
				submit(sendButton),
				chromedp.WaitVisible(`#code`),
			)
			code := mail.next(t, lang+"@example.com").Code
			do(t, ctx, "opening the passkey page",
				chromedp.SendKeys(`#code`, code),
				submit(`form[action="/.mfa/verify"] button`),
				chromedp.Navigate(srv.URL("/.mfa/passkey/register")),
				chromedp.WaitVisible(`form[data-passkey-register] button`),
			)
			a.check(t, ctx, lang, "passkeys")
		})
	}
}

func auditBranding(t *testing.T, a *auditor, dir string) {
	srv := examples.Start(t, "branding", examples.Options{Rewrite: func(cfg map[string]any) {
		// The Caddyfile names its files relative to its folder.
		eachMFA(cfg, func(h map[string]any) {
			for _, k := range []string{"logo", "css"} {
				h[k] = filepath.Join(dir, h[k].(string))
			}
		})
	}})
	for _, lang := range auditLanguages {
		t.Run(lang, func(t *testing.T) {
			ctx := a.tab(t, lang, "alice")
			do(t, ctx, "opening the sign-in",
				chromedp.Navigate(srv.URL("/")),
				chromedp.WaitVisible(`header.brand img`),
			)
			a.check(t, ctx, lang, "branded choose")
			do(t, ctx, "asking for a code",
				submit(sendButton),
				chromedp.WaitVisible(`#code`),
			)
			a.check(t, ctx, lang, "branded code sent")
		})
	}
}
