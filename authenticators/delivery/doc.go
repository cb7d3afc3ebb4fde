// Package delivery is the asynchronous delivery queue shared by the
// one-time-code channels (email now, SMS later).
//
// A request hands a message to Queue.Deliver and waits a short while for the
// outcome; a fixed pool of workers sends the messages. Each worker owns a
// Worker value, so a transport can keep state between messages (an SMTP
// worker keeps its connection open). Transient failures are retried with
// exponential backoff; failures marked with Permanent are not. Every attempt
// is reported to a callback, which feeds the delivery log. The queue is
// bounded: when it is full, Deliver fails at once instead of piling up work.
//
// The backoff has no jitter: the number of workers is small and fixed, so
// synchronized retries cannot grow into a storm, and no random source is
// needed.
package delivery
