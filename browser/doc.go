// Package browser holds the browser tests of caddy-mfa: chromedp drives
// Chromium through the sign-in of examples/quickstart, served by a real
// Caddy in the test process, the way a person would: the redirect to the
// sign-in page, "Email me a code", a wrong code, the right one read from
// the outbox, and the protected page. In examples/totp they set up an
// authenticator app: the QR code is read back from the page and from the
// screen, codes come from internal/totpref, and the recovery codes, a
// sign-in with the app and a replayed code follow.
//
// TestAccessibility walks every page and state of the sign-in in
// English, German and Arabic in one Chromium, and axe-core checks each at
// desktop and phone sizes in light and dark.
//
// The tests look for Chromium as $CHROMIUM, then chromium,
// chromium-browser and google-chrome on $PATH. Without one they are
// skipped, except when CI=true, where a missing browser fails the run
// (.ci/run installs Debian's chromium). Each step is captured as a PNG in
// the test's temporary directory; set BROWSER_SCREENSHOTS to a directory
// to keep them:
//
//	BROWSER_SCREENSHOTS=/tmp/shots go test ./browser
package browser
