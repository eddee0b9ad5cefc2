package logging

import (
	"context"
	"fmt"

	"go.uber.org/zap"
)

// RedisLogger sends go-redis's own messages (failed dials and the like) to Log at warn
// level, structured and redacted like every other line, instead of to the standard
// library's logger. Give it to redis.SetLogger.
type RedisLogger struct{ Log *zap.Logger }

// Printf logs the formatted message.
func (l RedisLogger) Printf(_ context.Context, format string, v ...any) {
	l.Log.Warn(fmt.Sprintf(format, v...))
}
