package delivery

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

// TestChannelLogsEachAttemptOnce checks that every attempt is logged once,
// at the level its outcome deserves, and reported once to the receiver:
// a failed delivery is one error entry, not one per layer.
func TestChannelLogsEachAttemptOnce(t *testing.T) {
	errBad := Permanent(errors.New("550 no such user"))
	tests := []struct {
		name   string
		script []error
		want   []zapcore.Level
		msgs   []string
	}{
		{name: "sent", want: []zapcore.Level{zapcore.DebugLevel}, msgs: []string{"email sent"}},
		{name: "retried then sent", script: []error{errTransient},
			want: []zapcore.Level{zapcore.WarnLevel, zapcore.DebugLevel},
			msgs: []string{"email delivery attempt failed, retrying", "email sent"}},
		{name: "permanent failure", script: []error{errBad},
			want: []zapcore.Level{zapcore.ErrorLevel}, msgs: []string{"email delivery failed"}},
		{name: "retries exhausted", script: []error{errTransient, errTransient},
			want: []zapcore.Level{zapcore.WarnLevel, zapcore.ErrorLevel},
			msgs: []string{"email delivery attempt failed, retrying", "email delivery failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				core, logs := observer.New(zapcore.DebugLevel)
				h := &harness{script: tt.script}
				ch := &Channel[string]{Logger: zap.New(core)}
				if err := ch.Start(&Config{Workers: 1, Retries: 1}, h.options()); err != nil {
					t.Fatal(err)
				}
				defer ch.Stop()
				_ = ch.Send(t.Context(), Job[string]{ChallengeID: "c1", User: "alice", To: "a***@e***.com", Payload: "m"})
				synctest.Wait()

				entries := logs.All()
				results, _ := h.snapshot()
				if len(entries) != len(tt.want) || len(results) != len(tt.want) {
					t.Fatalf("%d log entries and %d reports for %d attempts: %v", len(entries), len(results), len(tt.want), entries)
				}
				for i, e := range entries {
					if e.Level != tt.want[i] || e.Message != tt.msgs[i] {
						t.Errorf("entry %d = %s %q, want %s %q", i, e.Level, e.Message, tt.want[i], tt.msgs[i])
					}
					f := e.ContextMap()
					if f["challenge_id"] != "c1" || f["to"] != "a***@e***.com" || f["attempt"] != int64(i+1) {
						t.Errorf("entry %d fields = %v", i, f)
					}
				}
			})
		})
	}
}

// A success below the logger's level, the usual case of a site whose log
// is at INFO, is logged at no cost: no fields, no message built. A
// failure's entry carries the error.
func TestChannelLogCostsNothingWhenQuiet(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	ch := &Channel[string]{Logger: zap.New(core), method: "email"}
	sent := authenticators.DeliveryResult{ChallengeID: "c1", To: "a***@e***.com", Attempt: 1, OK: true}
	if n := testing.AllocsPerRun(100, func() { ch.log(sent) }); n != 0 {
		t.Errorf("a quiet success allocates %v times, want 0", n)
	}
	ch.log(authenticators.DeliveryResult{ChallengeID: "c1", To: "a***@e***.com", Attempt: 2, Error: "451 try later"})
	all := logs.All()
	if len(all) != 1 || all[0].Level != zapcore.WarnLevel || all[0].ContextMap()["error"] != "451 try later" {
		t.Errorf("log = %v, want one warning with the error", all)
	}
}

// TestChannelFail checks a failure found before the queue: reported and
// logged once as permanent, and returned wrapped.
func TestChannelFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zapcore.DebugLevel)
		h := &harness{}
		opts := h.options()
		opts.Method = "sms"
		ch := &Channel[string]{Logger: zap.New(core)}
		if err := ch.Start(nil, opts); err != nil {
			t.Fatal(err)
		}
		defer ch.Stop()
		errInvalid := errors.New("invalid number")
		err := ch.Fail("c2", "bob", "+1*******23", errInvalid)
		if !errors.Is(err, authenticators.ErrDeliveryFailed) || !errors.Is(err, errInvalid) {
			t.Errorf("Fail() = %v, want it to wrap ErrDeliveryFailed and the cause", err)
		}
		results, calls := h.snapshot()
		if len(calls) != 0 {
			t.Errorf("the worker was called %d times", len(calls))
		}
		want := authenticators.DeliveryResult{ChallengeID: "c2", Method: "sms", User: "bob", To: "+1*******23", Permanent: true, Error: "invalid number"}
		if len(results) != 1 {
			t.Fatalf("results = %+v, want one", results)
		}
		got := results[0]
		if got.Time.IsZero() {
			t.Error("result has no time")
		}
		got.Time = time.Time{}
		if got != want {
			t.Errorf("result = %+v, want %+v", got, want)
		}
		if all := logs.All(); len(all) != 1 || all[0].Level != zapcore.ErrorLevel || all[0].Message != "sms delivery failed" {
			t.Errorf("log = %v, want one error entry", all)
		}
	})
}

// TestChannelNotStarted checks that a channel that was not started sends
// nothing and says why.
func TestChannelNotStarted(t *testing.T) {
	var ch Channel[string]
	for name, err := range map[string]error{
		"Ready": ch.Ready(),
		"Send":  ch.Send(t.Context(), Job[string]{Payload: "m"}),
	} {
		if !errors.Is(err, authenticators.ErrDeliveryFailed) || !errors.Is(err, ErrNotProvisioned) {
			t.Errorf("%s() = %v, want ErrDeliveryFailed and ErrNotProvisioned", name, err)
		}
	}
	if err := ch.Fail("", "", "", errors.New("x")); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Errorf("Fail() = %v", err)
	}
	ch.Stop() // no panic
}

// TestStartTakesConfig checks that the delivery config tunes the queue.
func TestStartTakesConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &harness{script: []error{errTransient, errTransient}}
		var ch Channel[string] // no logger: a quiet one
		if err := ch.Start(&Config{Retries: -1}, h.options()); err != nil {
			t.Fatal(err)
		}
		defer ch.Stop()
		if err := ch.Send(t.Context(), Job[string]{Payload: "m"}); err == nil {
			t.Fatal("Send() = nil, want a failure with retries off")
		}
		if _, calls := h.snapshot(); len(calls) != 1 {
			t.Errorf("%d attempts with retries off, want 1", len(calls))
		}
	})
}
