// Package delivery is the plumbing the message channels (email, SMS)
// share: the delivery queue, its configuration and Caddyfile block, the
// report and the log of every attempt, and the errors that tell a queue
// whether to retry.
//
// A request hands a message to Queue.Deliver and waits a short while for the
// outcome; a fixed pool of workers sends the messages. Each worker owns a
// Worker value, so a transport can keep state between messages (an SMTP
// worker keeps its connection open). A Worker that is also a BatchWorker
// is handed the messages already waiting in the queue together with the
// one it took, up to a bound, without waiting for more, and sends them in
// one go (an SMTP worker pipelines them in one write); each message still
// has its own outcome, retries and report. Transient failures are retried
// with exponential backoff; failures marked with Permanent are not. Every
// attempt is reported to a callback, which feeds the delivery log. The
// queue is bounded: when it is full, Deliver fails at once instead of
// piling up work.
//
// A Channel wraps the queue of one method, started from its Config (the
// delivery block): it logs each attempt once, at a level that says whether
// it will be retried, hands it on to the handler's delivery log, and turns
// failures found before the queue (an invalid destination) into the same
// report and the same error as failures of the queue.
//
// The backoff has no jitter: the number of workers is small and fixed, so
// synchronized retries cannot grow into a storm, and no random source is
// needed.
package delivery
