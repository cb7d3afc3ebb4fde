// Package email is the email one-time-code and sign-in link authenticator:
// the Config the mfa handler embeds (limits, code or link mode, templates,
// delivery tuning), the Sender that renders and queues messages, and the
// transports that carry them, as Caddy guest modules in the
// mfa.email_transports namespace: "smtp" (host, port, optional
// authentication, TLS mode) and "outbox" (development: .eml files).
//
// # Transports
//
// A transport is any module in mfa.email_transports that implements
// Transport: Send makes one attempt to send one Message, which the package
// has rendered and addressed (its From, To, Subject, Text and HTML, and
// WriteTo for the whole RFC 5322 message). A third-party plugin adds a
// transport, such as an HTTP mail API, by registering such a module,
// optionally with a Caddyfile unmarshaler for "transport <name> ...";
// nothing here changes. A transport that keeps a connection per delivery
// worker, as smtp does, implements WorkerTransport too. The Config's
// Caddyfile reader, UnmarshalCaddyfile, lives in caddyfile.go beside the
// transports' own.
//
// Config also implements authenticators.Notifier: Notify sends a user a
// security notice when their second factors change (a factor added or
// removed, a recovery code used, recovery codes renewed). Notices carry no
// code or link, use built-in templates (templates configures the code
// messages only), and go through the same queue and delivery log as codes,
// without a challenge ID.
//
// SMTP is done by github.com/wneessen/go-mail, a maintained client that
// handles what a hand-written one gets wrong: implicit TLS and mandatory or
// opportunistic STARTTLS, SASL negotiation (SCRAM, PLAIN and LOGIN, the
// latter two only over TLS), RFC 2047 header encoding (a CR or LF in a
// subject cannot start a new header), MIME multipart bodies, per-message
// SMTP errors that tell temporary from permanent failures, and a protocol
// debug log. Its types stay inside this package.
//
// Delivery is asynchronous (package authenticators/delivery): a few
// workers each keep an SMTP connection open, transient failures are retried
// with backoff, and a request waits only a bounded time. A worker sends
// the messages waiting in the queue when it is free, up to 16, as one
// pipelined batch.
//
// A code message is written by go-mail once per language, site and
// lifetime, with slots for the code, the recipient, the date and the
// message ID (wire.go); each message then only fills them in. Such a
// message goes to the server in one round trip when it offers PIPELINING
// and CHUNKING (MAIL FROM, RCPT TO and BDAT LAST in one write, RFC 2920
// and RFC 3030), in two with PIPELINING alone (MAIL FROM, RCPT TO and DATA,
// then the message), and command by command through go-mail's SMTP client
// otherwise (smtpwire.go). With PIPELINING and CHUNKING, the code messages
// of a batch go in one write too, their transactions separated by RSET,
// and their replies are read in order: one round trip for the batch, each
// message with its own outcome; without both, the batch goes one message
// at a time. A refused transaction is ended with RSET and the connection
// kept. A message whose reply is lost with the connection may have been
// taken by the server, so it is not sent again on a new connection within
// the attempt. Other messages (links, notices, test messages) are built
// and sent by go-mail. Codes and link
// tokens are never logged and addresses only masked ("j***@e***.com"); at
// debug level the SMTP transcript is logged with the code or token and the
// addresses masked.
//
// In link mode (send link) a
// message carries a single-use link built by the handler instead of a
// code; the built-in templates serve both modes, and configured ones must
// show .Link for link mode to be accepted.
package email
