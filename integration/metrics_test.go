package integration

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// metricsSite is alice's site behind basic_auth, with send caps out of
// the way except two sends per user an hour; extra is appended to the
// Caddyfile.
func metricsSite(dir string, srv *smtptest.Server, up *upstream, hash, extra string) string {
	return site{
		basicAuth: hash,
		upstream:  up.addr(),
		mfa: `		storage badger ` + dir + `
		secret_key ` + testSecret + `
		users {
			alice email alice@example.com
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			throttle {
				per_hour 1000
				per_5m 1000
				per_ip_per_hour 1000
				per_user_per_hour 2
				per_destination_per_hour 1000
				cooldown off
			}
		}`,
	}.caddyfile() + extra
}

// TestMetricsOnAdminEndpoint signs alice in through a real Caddy and
// reads the counters from /metrics on the admin endpoint: a code sent and
// delivered, a wrong and a right code. A reload to a config with a second
// mfa site succeeds, and the counters go on from where they were: a
// second sign-in adds to them, and a third send hits the per-user cap.
func TestMetricsOnAdminEndpoint(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	hash := bcryptHash(t, alicePassword)
	dir, bobDir := t.TempDir(), t.TempDir() // removed after Caddy unloads
	startCaddy(t, metricsSite(dir, srv, up, hash, ""))

	before := scrapeMetrics(t)
	if before["caddy_mfa_lockouts_total"] == nil {
		t.Fatal("/metrics has no caddy_mfa_lockouts_total")
	}

	c := newClient(t).withBasicAuth("alice", alicePassword)
	code := sendCode(t, c, srv, 1)
	if r := verify(t, c, otherCode(code)); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong code: status %d, want 401: %s", r.StatusCode, r.body)
	}
	if r := verify(t, c, code); r.StatusCode != http.StatusOK {
		t.Fatalf("right code: status %d: %s", r.StatusCode, r.body)
	}

	type want struct {
		name   string
		labels map[string]string
		delta  float64
	}
	check := func(when string, wants []want) {
		t.Helper()
		after := scrapeMetrics(t)
		for _, w := range wants {
			got := metricValue(after, w.name, w.labels) - metricValue(before, w.name, w.labels)
			if got != w.delta {
				t.Errorf("%s: %s moved by %v, want %v", when, seriesName(w.name, w.labels), got, w.delta)
			}
		}
	}
	email := map[string]string{"method": "email"}
	check("after one sign-in", []want{
		{"caddy_mfa_challenges_sent_total", email, 1},
		{"caddy_mfa_delivery_attempts_total", map[string]string{"method": "email", "result": "ok"}, 1},
		{"caddy_mfa_delivery_attempts_total", map[string]string{"method": "email", "result": "failed"}, 0},
		{"caddy_mfa_delivery_duration_seconds", email, 1},
		{"caddy_mfa_verifications_total", map[string]string{"method": "email", "result": "success"}, 1},
		{"caddy_mfa_verifications_total", map[string]string{"method": "email", "result": "failure"}, 1},
		{"caddy_mfa_throttled_total", map[string]string{"scope": "user"}, 0},
		{"caddy_mfa_lockouts_total", nil, 0},
	})

	// A reload to a config with two mfa sites: the new handlers are
	// provisioned, and register their metrics, while the old one runs.
	second := `
http://127.0.0.1:9080 {
	mfa {
		storage badger ` + bobDir + `
		secret_key ` + testSecret + `
		users {
			bob email bob@example.com
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
		}
	}
	respond "bob's site"
}
`
	if err := loadCaddyfile(metricsSite(dir, srv, up, hash, second)); err != nil {
		t.Fatalf("reloading with a second mfa site: %v", err)
	}

	signIn(t, newClient(t).withBasicAuth("alice", alicePassword), srv, 2)
	r := newClient(t).withBasicAuth("alice", alicePassword).postJSON("/.mfa/send", map[string]string{"method": "email"})
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third send within the hour: status %d, want 429: %s", r.StatusCode, r.body)
	}
	check("after the reload and a second sign-in", []want{
		{"caddy_mfa_challenges_sent_total", email, 2},
		{"caddy_mfa_delivery_attempts_total", map[string]string{"method": "email", "result": "ok"}, 2},
		{"caddy_mfa_delivery_attempts_total", map[string]string{"method": "email", "result": "failed"}, 0},
		{"caddy_mfa_delivery_duration_seconds", email, 2},
		{"caddy_mfa_verifications_total", map[string]string{"method": "email", "result": "success"}, 2},
		{"caddy_mfa_verifications_total", map[string]string{"method": "email", "result": "failure"}, 1},
		{"caddy_mfa_throttled_total", map[string]string{"scope": "user"}, 1},
		{"caddy_mfa_lockouts_total", nil, 0},
	})
}

// otherCode is a code of the same shape that is not code.
func otherCode(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%0*d", len(code), (n+1)%1000000)
}

// scrapeMetrics reads /metrics from the admin endpoint.
func scrapeMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// metricValue is the value of a counter, or the sample count of a
// histogram, with exactly these labels; 0 when there is no such series.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
next:
	for _, m := range fams[name].GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	return 0
}

// seriesName writes a series the way /metrics does.
func seriesName(name string, labels map[string]string) string {
	pairs := make([]string, 0, len(labels))
	for k, v := range labels {
		pairs = append(pairs, k+"="+strconv.Quote(v))
	}
	sort.Strings(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}
