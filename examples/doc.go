// Package examples holds the runnable Caddyfiles of caddy-mfa, one folder
// each with a README:
//
//   - quickstart: basic_auth and an emailed code written to ./mailbox,
//     on http://localhost:8080, with nothing else to run;
//   - basic-auth-smtp: basic_auth, codes sent by SMTP with STARTTLS, and
//     an app behind reverse_proxy;
//   - standalone: no first factor; the page asks who you are and emails
//     a code to the address on file;
//   - remember: the emailed code only from a new IP address, and
//     "remember this device";
//   - totp: an authenticator app, set up after a first emailed code;
//   - sms-outbox: a code by text message written to ./sms-outbox, and an
//     authenticator app as the stronger alternative;
//   - sms-twilio: a code by text message through Twilio, an
//     authenticator app, and an app behind reverse_proxy.
//
// The Caddyfiles are embedded in the package, and Start runs one in this
// process the way caddytest does: adapted by Caddy's caddyfile adapter,
// its listeners moved to a free port, its relative paths resolved in a
// temporary working directory, the admin endpoint off. The tests of this
// package sign in through each example, so an example that stops working
// fails the build; the browser tests reuse Start.
//
// Start changes the process' working directory and environment and loads
// a config into the process-wide Caddy instance, so tests that call it
// must not run in parallel.
package examples
