// Package caddymfa is the http.handlers.mfa Caddy module: it lets a
// request through only with a valid MFA session, and serves the sign-in
// flow (pages and JSON) under path_prefix.
//
// The package has two layers. The HTTP layer (Handler and its pages)
// reads requests, cookies and forms and writes answers; the state
// services hold the rules and own their store keys, and none of them sees
// an *http.Request, so the admin API and the CLI use the same ones. The
// sections below follow a request from the top; each names the file where
// its rule lives.
//
// # The protected path
//
// ServeHTTP (handler.go) works out the first-factor user (firstFactor:
// an unresolved placeholder or an untrusted identity header denies), asks
// sessions.check (session.go) about the session cookie, sets the
// placeholders and strips our cookies before calling the next handler.
// One cookie read, one cached lookup, no allocation. Without a session,
// policy.skip (policy.go) may let the request through (trusted networks,
// policy never, a remembered device, a known IP or country); otherwise
// browsers are redirected to the sign-in page and other clients get a
// 401 in JSON.
//
// # Realms and the handler's own rules
//
// Every handler has a realm (realm.go): its configured name, or one
// derived at provision from the listen ports of its server and the host
// and path matchers of the routes leading to it. Sessions, flows,
// challenges (and so links), remembered devices and pending enrollments
// record their realm and are refused outside it; the realm is mixed into
// the cookie names and the session cookie's signature. Each request is
// then authorized by the handler it reaches (authorize.go): the gate
// works out, in memory when a session is loaded into the handler's
// cache, whether the config still admits its user and until when its
// verifications satisfy methods and max_age; a session that falls short
// is sent to a step-up (step_up_required for scripts).
//
// # The flow endpoints
//
// Under path_prefix, serveFlow (routes.go) routes to:
//
//   - steps.go: GET / shows the current step (identify, choose, verify,
//     link_sent, done). stepView builds it from the flow cookie, the
//     user's account (read once per request) and the flow's challenge;
//     views.go turns those into the view, the JSON answer or the HTML
//     page (pages.go, assets/).
//   - signin.go: the POST actions identify, send, resend, verify and
//     logout, after the size limit, the same-origin check and the CSRF
//     token (forms.go). A success starts a session (startSession; a
//     code's check writes it in its own store operation, verifier.signIn)
//     and says where the browser goes next.
//   - link.go: the landing page of a sign-in link, its confirmation, and
//     GET /status, the poll of the waiting page.
//   - enroll.go: adding, replacing and removing an authenticator app,
//     and renewing recovery codes.
//   - register.go: adding or changing a phone number or email address.
//   - deadends.go: what no endpoint takes. A GET on a POST-only path (a
//     reload after a form) goes back to the current step; an unknown path
//     or a method an endpoint refuses answers a 404 or 405 page (or JSON)
//     that leads back to the sign-in, instead of Caddy's empty answer.
//
// The flow cookie (flow.go) holds a signed flow ID, the first-factor user
// and where to return; everything else is in the store, keyed by HMACs of
// bearer secrets (keys.go) so a copy of the database yields no usable
// cookie.
//
// # State services
//
// Handler.wire builds them at provision, over the store, the keys and
// the clock:
//
//   - lockout (lockout.go, lock/<user>, and lock/<user>/<network> in
//     standalone mode): consecutive failures per canonical user across
//     every method, and in standalone mode per user and client network
//     (IPv4 /24, IPv6 /56) under a higher user-wide cap; count, clear,
//     locked, report and unlock.
//   - challenges (challenges.go, chal/<id>): the codes and links sent to
//     users. issue applies the send caps (throttle.go, thr/) and
//     max_sends and hands the message to delivery; verifyCode and
//     verifyLink count the attempt and compare in one atomic update;
//     pickUp completes a link confirmed on another device. A challenge
//     belongs to a challengeSlot: a sign-in flow, or a session
//     registering an address.
//   - throttle (throttle.go, thr/): the send caps and cooldowns. A
//     refused send takes its counts back; a name that gets no message
//     uses up no site-wide cap; in standalone mode the caps of users and
//     addresses count per client network, and what belongs to the address
//     on file is refused silently, so no limit tells who exists. A used
//     code ends its cooldowns. The admin API reports and clears a user's.
//   - verifier (verify.go): the one count-compare-clear path. Every
//     verification, whatever the method (emailed or texted codes, links,
//     authenticator apps, recovery codes), goes through verifier.run,
//     which counts the attempt in the user's lockout before anything is
//     compared, never compares for a locked user, and clears the count on
//     success. A guess at a challenge with no delivered code counts in no
//     lockout. In second-factor mode the attempt that locks a user ends
//     their sessions and forgets their devices; in standalone mode, where
//     anybody can cause a lock, it ends nothing.
//   - sessions (session.go, sess/ and the index sidx/<user>): create,
//     check (with the in-memory cache of the hot path), end, revoke a
//     user's, list them for the admin API.
//   - devices (device.go, dev/ and udev/<user>/): remembered devices.
//   - users (userrecord.go, user/<user>): the durable record of a user's
//     factors, registered addresses and known places. An account is a
//     principal (the first-factor identity and the canonical user, plus
//     the address the first factor supplies) with its record, read at
//     most once; account.destination says where a code goes, never to an
//     address from the request. The directory (users.go) holds the users
//     of the config and allow_emails.
//   - pendingApps (enroll.go, enroll/) and registrations (register.go,
//     reg/): what waits for its first code. The address a registration
//     confirms is the one its challenge holds with the code.
//   - policy (policy.go): when the challenge may be skipped, and the
//     places users passed it from. Every address it sees, like the per-IP
//     caps and the audit lines, comes from clientIP (clientaddr.go): the
//     connection, or behind trusted_proxies the rightmost forwarded entry
//     that is not a trusted proxy, never one the client wrote.
//   - notices (notify.go): security notices and audit lines for changes
//     to a user's factors; factorchange.go applies a change (sessions
//     end, devices are forgotten, the user is told).
//
// methods (channels.go) is the configuration as the flow sees it: the
// message channels and their limits, link mode, registration, the issuer
// of authenticator apps. The admin API (admin.go) and the caddy mfa
// command (command.go) act on a running handler through the services.
//
// # Authenticator apps
//
// A user's app lives in their record (user/<name>): the secret sealed
// with a key derived from secret_key, the time step of the last accepted
// code (the replay guard, moved in the same atomic update that accepts a
// code), and the keyed hashes of the unused recovery codes. Who may add
// an app is the enroll policy:
//
//   - verified: a session made by a factor less than 15 minutes ago, i.e.
//     a user who just passed another factor (the emailed code). A session
//     made by a policy exemption (a known place, a remembered device)
//     passed no factor (session.factorWithin, records.go): it may neither
//     add nor change an app, nor register an address, and is asked for a
//     code first (confirmFirst, register.go);
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
// browser may have no flow cookie, goes through verifier.run like a code:
// the attempt counts in the user's lockout and in the challenge's
// attempts before it compares, and the token is consumed in the same
// atomic update. Confirmed in the browser that asked, it signs in;
// confirmed elsewhere, the challenge becomes verified, and the browser
// that asked, whose waiting page refreshes itself (the pages allow no
// scripts) or polls GET /status, signs in on its next request, once,
// within five minutes. Only link mode looks for such a sign-in.
//
// # Passkeys
//
// With a passkey block, passkeys (WebAuthn) are a factor (passkey.go,
// passkey_routes.go; the relying party is authenticators/passkey, built
// at provision from base_url only). The passkeys service owns the
// ceremonies waiting for an authenticator's answer (pkch/<hash of kind
// and binding>, five minutes, taken by the first answer), the index of
// user handles for passwordless sign-in (pkh/) and the owner of each
// credential ID (pkc/); the credentials, their names, counters and last
// use live in the user's record with the other factors. A passkey is
// added from a session made by another factor in the last 15 minutes
// (or during sign-in with enroll first_login), like an app; every
// sign-in goes through verifier.run, so it counts in the lockout like a
// code; a signature counter that does not go up refuses the sign-in and
// writes an audit line. The pages load assets/passkey.js, the only
// script they run, under a CSP that allows scripts and requests to the
// site itself only.
package caddymfa
