package email

import (
	"fmt"
	"sync"

	"github.com/wneessen/go-mail/log"
	"go.uber.org/zap"
)

// transcript writes go-mail's SMTP debug log to zap at debug level, with
// the code of the message being sent replaced by "******" and every
// address masked. Each SMTP worker has its own transcript, set to the code
// of its current message.
type transcript struct {
	logger *zap.Logger

	mu   sync.Mutex
	code string
}

// setCode sets the code to mask in the lines that follow.
func (t *transcript) setCode(code string) {
	t.mu.Lock()
	t.code = code
	t.mu.Unlock()
}

func (t *transcript) write(l log.Log) {
	t.mu.Lock()
	code := t.code
	t.mu.Unlock()
	if ce := t.logger.Check(zap.DebugLevel, "smtp transcript"); ce != nil {
		from := "client"
		if l.Direction == log.DirServerToClient {
			from = "server"
		}
		line := maskText(fmt.Sprintf(l.Format, l.Messages...), code)
		ce.Write(zap.String("from", from), zap.String("line", line))
	}
}

// Debugf, Infof, Warnf and Errorf implement go-mail's log.Logger. Every
// line of the transcript is a debug entry whatever go-mail's level.
func (t *transcript) Debugf(l log.Log) { t.write(l) }
func (t *transcript) Infof(l log.Log)  { t.write(l) }
func (t *transcript) Warnf(l log.Log)  { t.write(l) }
func (t *transcript) Errorf(l log.Log) { t.write(l) }

var _ log.Logger = (*transcript)(nil)
