package email

import (
	"fmt"
	"strings"
	"sync"

	"github.com/wneessen/go-mail/log"
	"go.uber.org/zap"
)

// transcript writes go-mail's SMTP debug log to zap at debug level, with
// the code of the message being sent (or the codes of the batch being
// sent) replaced by "******" and every address masked. Each SMTP worker
// has its own transcript, set to the codes of its current messages.
type transcript struct {
	logger *zap.Logger

	mu    sync.Mutex
	code  string
	codes []string // the codes of a batch
}

// setCode sets the code to mask in the lines that follow.
func (t *transcript) setCode(code string) {
	t.mu.Lock()
	t.code = code
	t.mu.Unlock()
}

// setCodes sets the codes of a batch of messages to mask in the lines
// that follow, beside the one of setCode; nil clears them. The transcript
// keeps codes until then: the caller must not change it.
func (t *transcript) setCodes(codes []string) {
	t.mu.Lock()
	t.codes = codes
	t.mu.Unlock()
}

func (t *transcript) write(l log.Log) {
	t.mu.Lock()
	code, codes := t.code, t.codes
	t.mu.Unlock()
	if ce := t.logger.Check(zap.DebugLevel, "smtp transcript"); ce != nil {
		from := "client"
		if l.Direction == log.DirServerToClient {
			from = "server"
		}
		line := fmt.Sprintf(l.Format, l.Messages...)
		for _, c := range codes {
			if c != "" {
				line = strings.ReplaceAll(line, c, "******")
			}
		}
		line = maskText(line, code)
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
