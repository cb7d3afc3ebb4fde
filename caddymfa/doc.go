// Package caddymfa is the http.handlers.mfa Caddy module: it lets a
// request through only with a valid MFA session, and serves the sign-in
// flow (pages and JSON) under path_prefix.
//
// # Flow
//
// A request without a session is sent to the flow. The flow cookie holds
// a signed flow ID and the first-factor user; everything else (the
// challenge of an emailed code, attempt counts, the user's enrolled app)
// is in the store, keyed by HMACs of bearer secrets so a copy of the
// database yields no usable cookie. Every verification, whatever the
// method, goes through verifyFactor, which counts the attempt in the
// user's lockout before anything is compared.
//
// # Authenticator apps
//
// A user's app lives in their record (user/<name>): the secret sealed
// with a key derived from secret_key, the time step of the last accepted
// code (the replay guard, moved in the same atomic update that accepts a
// code), and the keyed hashes of the unused recovery codes. Who may add
// an app is the enroll policy:
//
//   - verified: a session made less than 15 minutes ago, i.e. a user who
//     just passed another factor (the emailed code);
//   - first_login: during sign-in, after the first factor alone, for a
//     user who has no app yet (trust on first use); never in standalone
//     mode, which has no first factor;
//   - off: nobody by themselves; an administrator enrolls a user through
//     the admin API (caddy mfa enroll).
//
// The secret shown on the enrollment page waits server-side, bound to the
// flow or session that saw it, until a valid code confirms it. Replacing
// or removing an app and renewing recovery codes need a code of the
// current app or a recovery code. Recovery codes are made with the app,
// shown once, single use, and renewed as a set; each use, and each added
// or removed app, is notified to the user by email and written to the
// audit log.
//
// # Links instead of codes
//
// With send link, an email or text carries a single-use link instead of a
// code: base_url, path_prefix, then /link?token=, never built from the
// request's Host (provision refuses link mode without base_url). The token
// is the challenge ID followed by 256 bits from crypto/rand; the challenge
// keeps only an HMAC of it, as it would of a code, so one store record
// still holds the attempts and the state. GET /link only shows a confirm
// button (mail scanners fetch links) and looks nothing up; POST /link,
// with a CSRF token bound to the link token because the confirming
// browser may have no flow cookie, counts the attempt in the user's
// lockout and in the challenge's attempts before it compares, and
// consumes the token in the same atomic update. Confirmed in the browser
// that asked, it signs in; confirmed elsewhere, the challenge becomes
// verified, and the browser that asked, whose waiting page refreshes
// itself (the pages allow no scripts) or polls GET /status, signs in on
// its next request, once, within five minutes.
package caddymfa
