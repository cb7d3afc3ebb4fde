package caddymfa

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the metrics. Every label takes values from a short,
// fixed list: never a user name, an address or anything else a client
// chooses.
const (
	resultSuccess  = "success"
	resultFailure  = "failure"
	deliveryOK     = "ok"
	deliveryFailed = "failed"
	scopeMaxSends  = "max_sends"
	methodOther    = "other"
)

// processMetrics holds the collectors of every mfa handler in the
// process. Each config load registers them in its own registry (Caddy
// builds a new one per load and serves it on the admin /metrics), so a
// reload, which provisions the new handlers before the old ones are
// cleaned up, meets no duplicate collector, and the counts go on from
// where they were. Several mfa handlers add to the same series.
var processMetrics = newMetricSet()

// metricSet is the Prometheus collectors of the mfa handlers. Its methods
// are safe on a nil *metricSet, which counts nothing.
type metricSet struct {
	challengesSent *prometheus.CounterVec
	verifications  *prometheus.CounterVec
	throttled      *prometheus.CounterVec
	lockouts       prometheus.Counter
	deliveries     *prometheus.CounterVec
	deliveryTime   *prometheus.HistogramVec
	skipped        *prometheus.CounterVec
}

func newMetricSet() *metricSet {
	const ns = "caddy_mfa"
	return &metricSet{
		challengesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Name:      "challenges_sent_total",
			Help:      "Codes issued and handed to delivery, by method.",
		}, []string{"method"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Name:      "verifications_total",
			Help:      "Codes checked, by method and result (success or failure); attempts by a locked user are failures.",
		}, []string{"method", "result"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Name:      "throttled_total",
			Help:      "Sends refused by a cap, by scope (global_hour, global_5m, ip, user, destination, country, cooldown, max_sends).",
		}, []string{"scope"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns,
			Name:      "lockouts_total",
			Help:      "Users locked out after too many failed verifications.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Name:      "delivery_attempts_total",
			Help:      "Delivery attempts of messages, by method and result (ok or failed).",
		}, []string{"method", "result"}),
		deliveryTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns,
			Name:      "delivery_duration_seconds",
			Help:      "Time of one delivery attempt at the transport (SMTP server or SMS provider), by method.",
			Buckets:   []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Name:      "challenges_skipped_total",
			Help:      "Requests without a session let through without a challenge, by policy rule.",
		}, []string{"rule"}),
	}
}

// collectors lists every collector of the set.
func (m *metricSet) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.challengesSent, m.verifications, m.throttled, m.lockouts, m.deliveries, m.deliveryTime, m.skipped}
}

// register adds the set to reg. Collectors reg already holds, from
// another mfa handler of the same config, are not an error; a different
// collector with one of our names is. A nil reg registers nothing.
func (m *metricSet) register(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range m.collectors() {
		err := reg.Register(c)
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) && are.ExistingCollector == c {
			continue
		}
		if err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// registerMetrics registers the process-wide set in reg and returns it.
func registerMetrics(reg *prometheus.Registry) (*metricSet, error) {
	if err := processMetrics.register(reg); err != nil {
		return nil, err
	}
	return processMetrics, nil
}

// sent counts a code handed to delivery.
func (m *metricSet) sent(method string) {
	if m == nil {
		return
	}
	m.challengesSent.WithLabelValues(method).Inc()
}

// verified counts a checked code. The method comes from the request, so
// any name but the known ones is counted as "other".
func (m *metricSet) verified(method string, ok bool) {
	if m == nil {
		return
	}
	switch method {
	case methodEmail, methodSMS, methodTOTP, methodRecovery, methodPasskey:
	default:
		method = methodOther
	}
	result := resultFailure
	if ok {
		result = resultSuccess
	}
	m.verifications.WithLabelValues(method, result).Inc()
}

// throttle counts a send refused by the cap named scope.
func (m *metricSet) throttle(scope string) {
	if m == nil {
		return
	}
	m.throttled.WithLabelValues(scope).Inc()
}

// lockout counts a user locked out.
func (m *metricSet) lockout() {
	if m == nil {
		return
	}
	m.lockouts.Inc()
}

// delivery counts one delivery attempt. A failure found before the
// message reached the transport (a full or stopped queue, a message that
// could not be built) has no latency and is left out of the histogram.
func (m *metricSet) delivery(method string, ok bool, latency time.Duration) {
	if m == nil {
		return
	}
	result := deliveryFailed
	if ok {
		result = deliveryOK
	}
	m.deliveries.WithLabelValues(method, result).Inc()
	if latency > 0 {
		m.deliveryTime.WithLabelValues(method).Observe(latency.Seconds())
	}
}

// skip counts a request let through without a challenge by rule.
func (m *metricSet) skip(rule string) {
	if m == nil {
		return
	}
	m.skipped.WithLabelValues(rule).Inc()
}
