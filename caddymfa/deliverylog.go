package caddymfa

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/storage"
)

// Delivery log bounds: entries live a week, and at most maxLogEntries are
// kept.
const (
	maxLogEntries = 1000
	logTTL        = 7 * 24 * time.Hour
	logTrimEvery  = 64
)

// deliveryLog keeps every delivery attempt in the store (the seeds' async
// log) so an operator can see why a message did not arrive.
type deliveryLog struct {
	store  storage.Store
	logger *zap.Logger
	max    int
	writes atomic.Int64
	// failed learns of every challenge whose message will not arrive.
	failed func(ctx context.Context, challengeID string)
	// metrics counts the attempts and their latency.
	metrics *metricSet
}

// record stores one attempt. Addresses arrive masked; codes never arrive.
func (l *deliveryLog) record(res authenticators.DeliveryResult) {
	ctx := context.Background()
	if res.Time.IsZero() {
		res.Time = time.Now()
	}
	fields := []zap.Field{zap.String("method", res.Method), zap.String("to", res.To), zap.Int("attempt", res.Attempt), zap.Bool("ok", res.OK), zap.Duration("latency", res.Latency)}
	if res.Error != "" {
		fields = append(fields, zap.String("error", res.Error), zap.Bool("permanent", res.Permanent))
		l.logger.Warn("delivery attempt failed", fields...)
	} else {
		l.logger.Info("delivery attempt", fields...)
	}
	l.metrics.delivery(res.Method, res.OK, res.Latency)
	if !res.OK && res.Permanent && res.ChallengeID != "" && l.failed != nil {
		l.failed(ctx, res.ChallengeID)
	}
	b, err := encodeRecord(res)
	if err != nil {
		return
	}
	id, err := randomID()
	if err != nil {
		return
	}
	key := fmt.Sprintf("%s%020d/%s", keyLog, res.Time.UnixNano(), id[:8])
	if err := l.store.Put(ctx, key, b, res.Time.Add(logTTL), false); err != nil {
		if errors.Is(err, storage.ErrClosed) {
			// A result that arrives while the config is being unloaded.
			l.logger.Debug("delivery log closed; entry not kept", zap.String("method", res.Method), zap.Bool("ok", res.OK))
			return
		}
		l.logger.Error("writing delivery log", zap.Error(err))
		return
	}
	if l.writes.Add(1)%logTrimEvery == 0 {
		l.trim(ctx)
	}
}

// trim deletes the oldest entries beyond max.
func (l *deliveryLog) trim(ctx context.Context) {
	recs, err := l.store.List(ctx, keyLog, 0, true)
	if err != nil || len(recs) <= l.max {
		return
	}
	for _, rec := range recs[l.max:] {
		_ = l.store.Delete(ctx, rec.Key)
	}
}

// entries returns the newest entries, newest first.
func (l *deliveryLog) entries(ctx context.Context, limit int) ([]authenticators.DeliveryResult, error) {
	recs, err := l.store.List(ctx, keyLog, limit, true)
	if err != nil {
		return nil, err
	}
	out := make([]authenticators.DeliveryResult, 0, len(recs))
	for _, rec := range recs {
		if res, err := decodeRecord[authenticators.DeliveryResult](rec.Value); err == nil {
			out = append(out, res)
		}
	}
	return out, nil
}
