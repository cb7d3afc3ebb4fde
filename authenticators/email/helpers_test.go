package email

import "github.com/wneessen/go-mail/log"

func goMailLog(format string, args ...any) log.Log {
	return log.Log{Direction: log.DirServerToClient, Format: format, Messages: args}
}
