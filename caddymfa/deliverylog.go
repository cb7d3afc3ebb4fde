package caddymfa

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
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
)

// keyLogSeq counts every entry ever written; entry n lives in slot
// n mod max of the log (keyLog + slot), overwriting the entry written max
// entries before it. The log is bounded by its keys alone: no write lists
// it, so a delivery costs the same after a million sign-ins as after one.
const keyLogSeq = "meta/log_seq"

// deliveryLog keeps every delivery attempt in the store (the seeds' async
// log) so an operator can see why a message did not arrive. It is a ring of
// max slots, shared by every handler on the store.
type deliveryLog struct {
	store  storage.Store
	logger *zap.Logger
	max    int
	// failed learns of every challenge whose message will not arrive.
	failed func(ctx context.Context, challengeID string)
	// metrics counts the attempts and their latency.
	metrics *metricSet
}

// logEntry is one slot of the ring: the attempt and its sequence number,
// by which a reader tells it from an older entry the slot held before.
type logEntry struct {
	Seq int64 `json:"seq"`
	authenticators.DeliveryResult
}

// slotKey names the slot of entry seq.
func (l *deliveryLog) slotKey(seq int64) string {
	return keyLog + strconv.FormatInt((seq-1)%int64(l.max), 10)
}

// record stores one attempt. Addresses arrive masked; codes never arrive.
func (l *deliveryLog) record(res authenticators.DeliveryResult) {
	ctx := context.Background()
	if res.Time.IsZero() {
		res.Time = time.Now()
	}
	// The channel logs failures (error, or warn before a retry); a
	// success it logs only at debug, so the info line is here.
	if res.OK {
		if ce := l.logger.Check(zap.InfoLevel, "delivery attempt"); ce != nil {
			ce.Write(zap.String("method", res.Method), zap.String("to", res.To), zap.Int("attempt", res.Attempt), zap.Duration("latency", res.Latency))
		}
	}
	l.metrics.delivery(res.Method, res.OK, res.Latency)
	if !res.OK && res.Permanent && res.ChallengeID != "" && l.failed != nil {
		l.failed(ctx, res.ChallengeID)
	}
	seq, err := l.store.Incr(ctx, keyLogSeq, 1, time.Time{})
	if err == nil {
		var b []byte
		if b, err = encodeRecord(logEntry{Seq: seq, DeliveryResult: res}); err == nil {
			err = l.store.Put(ctx, l.slotKey(seq), b, res.Time.Add(logTTL), false)
		}
	}
	if err != nil {
		if errors.Is(err, storage.ErrClosed) {
			// A result that arrives while the config is being unloaded.
			l.logger.Debug("delivery log closed; entry not kept", zap.String("method", res.Method), zap.Bool("ok", res.OK))
			return
		}
		l.logger.Error("writing delivery log", zap.Error(err))
	}
}

// entries returns the newest entries (at most limit; limit <= 0: all),
// newest first. It walks the ring back from the newest sequence number,
// skipping slots that expired or were overwritten out of order.
func (l *deliveryLog) entries(ctx context.Context, limit int) ([]authenticators.DeliveryResult, error) {
	newest, err := l.newestSeq(ctx)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > l.max {
		limit = l.max
	}
	var out []authenticators.DeliveryResult
	for seq := newest; seq > 0 && seq > newest-int64(l.max) && len(out) < limit; seq-- {
		rec, err := l.store.Get(ctx, l.slotKey(seq))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if e, err := decodeRecord[logEntry](rec.Value); err == nil && e.Seq == seq {
			out = append(out, e.DeliveryResult)
		}
	}
	return out, nil
}

// newestSeq is the sequence number of the newest entry, 0 when none was
// ever written. It only reads: the log stays readable when the store
// refuses writes (a full disk), which is when an operator looks at it. A
// counter reads as 8 bytes, big-endian (storage.Store.Incr).
func (l *deliveryLog) newestSeq(ctx context.Context) (int64, error) {
	rec, err := l.store.Get(ctx, keyLogSeq)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(rec.Value) != 8 {
		return 0, fmt.Errorf("%w: log sequence of %d bytes", errBadRecord, len(rec.Value))
	}
	return int64(binary.BigEndian.Uint64(rec.Value)), nil
}
