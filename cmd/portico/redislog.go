package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// redisLog sends the Redis client's own messages (connection pool errors
// while Redis is down) to the gateway's structured log at debug level; the
// gateway already reports Redis failures once per interval with a metric.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "redis client", "msg", fmt.Sprintf(format, v...))
}

// useRedisLog installs l for the Redis client. The client's logger is
// process-wide, so it is set here, in the command's wiring, once.
func useRedisLog(l *slog.Logger) { redis.SetLogger(redisLog{l: l}) }
