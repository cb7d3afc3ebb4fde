package browser

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/caddymfa/caddy-mfa/examples"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// TestTOTPEnrollment sets up an authenticator app in examples/totp with
// Chromium, on a desktop-sized and a phone-sized viewport: the emailed
// code, the enrollment page and its QR code, the recovery codes, then a
// sign-in with the app, and the same code refused the second time.
func TestTOTPEnrollment(t *testing.T) {
	for _, tc := range viewports {
		t.Run(tc.name, func(t *testing.T) {
			testTOTPEnrollment(t, tc.width, tc.height)
		})
	}
}

// qrLayout is where the browser drew the QR code.
type qrLayout struct {
	Complete      bool    `json:"complete"`
	NaturalWidth  float64 `json:"naturalWidth"`
	NaturalHeight float64 `json:"naturalHeight"`
	Left          float64 `json:"left"`
	Right         float64 `json:"right"`
	Width         float64 `json:"width"`
	Height        float64 `json:"height"`
	CardLeft      float64 `json:"cardLeft"`
	CardRight     float64 `json:"cardRight"`
	ClientWidth   float64 `json:"clientWidth"`
	ScrollWidth   float64 `json:"scrollWidth"`
}

const qrLayoutJS = `(() => {
	const img = document.querySelector("img.qr"), r = img.getBoundingClientRect();
	const card = document.querySelector("main").getBoundingClientRect();
	const doc = document.documentElement;
	return {complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
		left: r.left, right: r.right, width: r.width, height: r.height,
		cardLeft: card.left, cardRight: card.right,
		clientWidth: doc.clientWidth, scrollWidth: doc.scrollWidth};
})()`

// codeBox is how the browser laid out one recovery code.
type codeBox struct {
	Text  string  `json:"text"`
	Left  float64 `json:"left"`
	Right float64 `json:"right"`
	Lines int     `json:"lines"`
}

const codesJS = `[...document.querySelectorAll("ol.codes li code")].map(c => {
	const r = c.getBoundingClientRect();
	return {text: c.textContent, left: r.left, right: r.right, lines: c.getClientRects().length};
})`

// choice is one way offered on the choose page.
type choice struct {
	Text string `json:"text"`
	Href string `json:"href"`
}

const choicesJS = `[...document.querySelectorAll(".choices > *")].map(e => ({
	text: e.innerText.trim(), href: e.getAttribute("href") || ""
}))`

// recoveryCode is the shape of a recovery code on the page.
var recoveryCode = regexp.MustCompile(`^[a-z2-7]{4}(-[a-z2-7]{4}){3}$`)

// follow clicks a link and waits until the page it leads to has loaded.
func follow(link string) chromedp.Action[chromedp.Void] {
	return submit(link)
}

// signOut signs out from the signed-in page, waits for the signed-out
// page, and follows its "Sign in again" to the sign-in page.
func signOut() chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(`form[action="/.mfa/logout"] button`),
		submit(`form[action="/.mfa/logout"] button`),
		chromedp.WaitVisible(`#sign-in-again`),
		follow(`#sign-in-again`),
		chromedp.WaitVisible(`.choices`),
	)
}

// decodeQR reads the QR code of a PNG; pure says the image holds nothing
// but the code and its quiet zone.
func decodeQR(t *testing.T, data []byte, pure bool) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	pureHints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true}
	hints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true}
	if pure {
		hints = pureHints
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, hints)
	if err != nil && !pure {
		// gozxing's finder-pattern detector misses some codes that any
		// phone reads; a screenshot of the element at its natural size
		// is the code alone, which the pure decoder reads exactly.
		res, err = qrcode.NewQRCodeReader().Decode(bmp, pureHints)
	}
	if err != nil {
		t.Fatalf("decoding QR code (%v image): %v", img.Bounds().Size(), err)
	}
	return res.GetText()
}

func testTOTPEnrollment(t *testing.T, width, height int) {
	ctx, cancel := newBrowser(t, width, height)
	defer cancel()
	srv := examples.Start(t, "totp", examples.Options{})
	mailbox := filepath.Join(srv.Dir, "mailbox")
	shots := newShooter(t)

	var location, heading, text string
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(int64(width), int64(height)),
		openAsAlice(srv.URL("/")),
		shots.shot("choose"),
		submit(sendButton),
		store(&heading, chromedp.Text("h1")),
		store(&text, chromedp.Text("main")),
	)
	if err != nil {
		t.Fatalf("asking for a code: %v", err)
	}
	if heading != "Enter your code" {
		t.Fatalf("after \"Email me a code\" the page is not the code form; it says:\n%s", text)
	}
	msg := examples.WaitOutbox(t, mailbox, 1)

	// The emailed code signs alice in, and she has no app yet: the
	// enrollment page comes before the protected page.
	var qrSrc, shownSecret string
	var skip chromedp.AttributeResult
	var layout qrLayout
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, msg.Code),
		submit(`form[action="/.mfa/verify"] button`),
		store(&location, chromedp.Location()),
		store(&heading, chromedp.Text("h1")),
		store(&text, chromedp.Text("main")),
	)
	if err != nil {
		t.Fatalf("entering the emailed code: %v", err)
	}
	if heading != "Set up your authenticator app" {
		t.Fatalf("after the emailed code the browser is at %s, not the enrollment page; it says:\n%s", location, text)
	}
	if !strings.HasSuffix(location, "/.mfa/enroll/totp?return=%2F") {
		t.Errorf("enrollment page at %q, want /.mfa/enroll/totp?return=%%2F", location)
	}
	var qrShot []byte
	err = chromedp.Do(ctx,
		chromedp.WaitVisible(`img.qr`),
		store(&layout, chromedp.Evaluate[qrLayout](qrLayoutJS)),
		store(&qrShot, chromedp.Screenshot(`img.qr`)),
		store(&qrSrc, chromedp.Evaluate[string](`document.querySelector("img.qr").getAttribute("src")`)),
		store(&shownSecret, chromedp.Text(`code.secret`)),
		store(&skip, chromedp.AttributeValue(`//a[normalize-space()="Skip for now"]`, "href")),
		shots.shot("enroll"),
		shots.page("enroll-page"),
	)
	if err != nil {
		t.Fatalf("reading the enrollment page: %v", err)
	}
	if skip.Value != "/" {
		t.Errorf(`"Skip for now" leads to %q, want /`, skip.Value)
	}

	// The QR code carries the key shown as text.
	b64, ok := strings.CutPrefix(qrSrc, "data:image/png;base64,")
	if !ok {
		t.Fatalf("QR code src is %.40q..., want a PNG data URI", qrSrc)
	}
	qrPNG, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("QR code src: %v", err)
	}
	uri := decodeQR(t, qrPNG, true)
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("QR code holds %q, want an otpauth://totp/ URI", uri)
	}
	secret := strings.ReplaceAll(shownSecret, " ", "")
	if got := u.Query().Get("secret"); got == "" || got != secret {
		t.Fatalf("QR code carries secret %q, the page shows %q", got, shownSecret)
	}
	if label := strings.TrimPrefix(u.Path, "/"); !strings.HasSuffix(label, "alice") {
		t.Errorf("QR code label %q does not name alice", label)
	}

	// The QR code as drawn: whole, at its own size, inside the card, and
	// still readable from the screen.
	if !layout.Complete || layout.NaturalWidth == 0 || layout.NaturalWidth != layout.NaturalHeight {
		t.Errorf("QR image not loaded or not square: %+v", layout)
	}
	if layout.Width != layout.NaturalWidth || layout.Height != layout.NaturalHeight {
		t.Errorf("QR code drawn at %gx%g, its image is %gx%g: scaled, so blurred or uneven",
			layout.Width, layout.Height, layout.NaturalWidth, layout.NaturalHeight)
	}
	if layout.Left < layout.CardLeft || layout.Right > layout.CardRight || layout.ScrollWidth > layout.ClientWidth {
		t.Errorf("QR code sticks out of the card or the page: %+v", layout)
	}
	if got := decodeQR(t, qrShot, false); got != uri {
		t.Errorf("the QR code on screen holds %q, its image %q", got, uri)
	}

	// The app's code confirms it; the recovery codes come next.
	var codes []codeBox
	var cardLeft, cardRight float64
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, totpref.Code(secret, time.Now(), 0)),
		submit(`form[action="/.mfa/enroll/totp"] button`),
		store(&heading, chromedp.Text("h1")),
		store(&text, chromedp.Text("main")),
	)
	if err != nil {
		t.Fatalf("confirming the app: %v", err)
	}
	if heading != "Save your recovery codes" {
		t.Fatalf("after confirming the app the page is not the recovery codes; it says:\n%s", text)
	}
	err = chromedp.Do(ctx,
		store(&codes, chromedp.Evaluate[[]codeBox](codesJS)),
		store(&cardLeft, chromedp.Evaluate[float64](`document.querySelector("main").getBoundingClientRect().left`)),
		store(&cardRight, chromedp.Evaluate[float64](`document.querySelector("main").getBoundingClientRect().right`)),
		shots.shot("recovery-codes"),
		shots.page("recovery-codes-page"),
	)
	if err != nil {
		t.Fatalf("reading the recovery codes: %v", err)
	}
	if len(codes) != 10 {
		t.Errorf("%d recovery codes, want 10", len(codes))
	}
	seen := make(map[string]bool)
	for _, c := range codes {
		if !recoveryCode.MatchString(c.Text) || seen[c.Text] {
			t.Errorf("recovery code %q: malformed or repeated", c.Text)
		}
		seen[c.Text] = true
		if c.Left < cardLeft || c.Right > cardRight {
			t.Errorf("recovery code %q sticks out of the card (%g..%g, card %g..%g)", c.Text, c.Left, c.Right, cardLeft, cardRight)
		}
		if c.Lines != 1 {
			t.Errorf("recovery code %q is broken over %d lines", c.Text, c.Lines)
		}
	}

	// codes.js, the page's own script, runs under the CSP and shows the
	// copy and print buttons; the download link holds the codes.
	var shown []bool
	var file string
	err = chromedp.Do(ctx,
		store(&shown, chromedp.Evaluate[[]bool](`["codes-copy", "codes-print"].map(id => !document.getElementById(id).hidden && document.getElementById(id).offsetHeight > 0)`)),
		store(&file, chromedp.Evaluate[string](`decodeURIComponent(document.querySelector("a[download]").href.split(",")[1])`)),
	)
	if err != nil {
		t.Fatalf("reading the recovery codes' buttons: %v", err)
	}
	if len(shown) != 2 || !shown[0] || !shown[1] {
		t.Errorf("copy and print buttons shown: %v, want both", shown)
	}
	for _, c := range codes {
		if !strings.Contains(file, c.Text+"\r\n") {
			t.Errorf("the downloaded file lacks recovery code %q: %q", c.Text, file)
		}
	}

	var body string
	err = chromedp.Do(ctx,
		follow(`//a[normalize-space()="I have saved them, continue"]`),
		store(&location, chromedp.Location()),
		store(&body, chromedp.Text("body")),
		shots.shot("protected-page"),
	)
	if err != nil {
		t.Fatalf("continuing after the recovery codes: %v", err)
	}
	if !strings.HasSuffix(location, "/") || strings.Contains(location, "/.mfa/") {
		t.Errorf("after the recovery codes the browser is at %q, want the protected page /", location)
	}
	// The session is still the one the emailed code started.
	if want := "Hello alice, you passed MFA (email)."; strings.TrimSpace(body) != want {
		t.Fatalf("protected page says %q, want %q", body, want)
	}

	// Signed out, alice is offered her app first, then email and a
	// recovery code.
	var choices []choice
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL("/.mfa/")),
		signOut(),
		store(&choices, chromedp.Evaluate[[]choice](choicesJS)),
		shots.shot("choose-app"),
	)
	if err != nil {
		t.Fatalf("signing out: %v", err)
	}
	want := []choice{
		{"Use my authenticator app", "/.mfa/?method=totp"},
		{"Email me a code at a***@e***.com", ""},
		{"Use a recovery code", "/.mfa/?method=recovery"},
	}
	if len(choices) != len(want) {
		t.Fatalf("after signing out the choices are %+v, want %+v", choices, want)
	}
	for i := range want {
		if choices[i] != want[i] {
			t.Errorf("choice %d is %+v, want %+v", i+1, choices[i], want[i])
		}
	}

	// A code of the next time step: the app's first code was spent on
	// the confirmation.
	code := totpref.Code(secret, time.Now(), 1)
	err = chromedp.Do(ctx,
		follow(`//a[normalize-space()="Use my authenticator app"]`),
		store(&heading, chromedp.Text("h1")),
		shots.shot("verify-app"),
		chromedp.SendKeys(`#code`, code),
		submit(`form[action="/.mfa/verify"] button`),
		store(&location, chromedp.Location()),
		store(&body, chromedp.Text("body")),
	)
	if err != nil {
		t.Fatalf("signing in with the app: %v", err)
	}
	if heading != "Enter the code from your app" {
		t.Errorf("app code page heading = %q", heading)
	}
	if !strings.HasSuffix(location, "/") || strings.Contains(location, "/.mfa/") {
		t.Errorf("after the app's code the browser is at %q, want the protected page /", location)
	}
	if want := "Hello alice, you passed MFA (totp)."; strings.TrimSpace(body) != want {
		t.Fatalf("after the app's code the page says %q, want %q", body, want)
	}

	// The same code again is refused.
	var alert string
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL("/.mfa/")),
		signOut(),
		follow(`//a[normalize-space()="Use my authenticator app"]`),
		chromedp.SendKeys(`#code`, code),
		submit(`form[action="/.mfa/verify"] button`),
		chromedp.WaitVisible(`p[role="alert"]`),
		store(&alert, chromedp.Text(`p[role="alert"]`)),
		store(&location, chromedp.Location()),
		shots.shot("replayed-code"),
	)
	if err != nil {
		t.Fatalf("entering the used code again: %v", err)
	}
	if alert != "That code is not valid." {
		t.Errorf("after a used code the page says %q, want \"That code is not valid.\"", alert)
	}
	if !strings.Contains(location, "/.mfa/") {
		t.Errorf("a used code led the browser to %q", location)
	}

	// A recovery code signs in; the page says so and how many are left,
	// and continues to the site.
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL("/.mfa/?method=recovery")),
		chromedp.WaitVisible(`#code`),
		chromedp.SendKeys(`#code`, codes[0].Text),
		submit(`form[action="/.mfa/verify"] button`),
		store(&heading, chromedp.Text("h1")),
		store(&text, chromedp.Text("main")),
		shots.shot("recovery-code-used"),
		follow(`//a[normalize-space()="Continue to the site"]`),
		store(&body, chromedp.Text("body")),
	)
	if err != nil {
		t.Fatalf("signing in with a recovery code: %v", err)
	}
	if heading != "You signed in with a recovery code" || !strings.Contains(text, "That code no longer works. You have 9 unused recovery codes.") || !strings.Contains(text, "Set up a new app") {
		t.Errorf("after a recovery code the page says %q:\n%s", heading, text)
	}
	if want := "Hello alice, you passed MFA (recovery)."; strings.TrimSpace(body) != want {
		t.Errorf("Continue to the site: the page says %q, want %q", body, want)
	}
}
