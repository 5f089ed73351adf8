package gateway

import (
	"log/slog"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/policy/ratelimit"
)

// newRateLimits builds the rate-limit stores from the static configuration.
// They belong to the Server, not to a snapshot, so every snapshot's
// policies count in the same stores and a reload resets nothing. The Redis
// client connects on first use and is closed by Shutdown.
func newRateLimits(rl config.RateLimits, m *Metrics, logger *slog.Logger) (*ratelimit.Shared, error) {
	o := ratelimit.SharedOptions{
		Local:   ratelimit.LocalOptions{MaxKeys: rl.LocalMaxKeys},
		Metrics: m.rateLimitMetrics(),
		Logger:  logger,
	}
	if rd := rl.Redis; rd != nil {
		o.Redis = &ratelimit.RedisOptions{
			Address:         rd.Address,
			Username:        rd.Username,
			Password:        rd.Password,
			DB:              rd.DB,
			KeyPrefix:       rd.KeyPrefix,
			Timeout:         rd.Timeout.D(),
			PoolSize:        rd.PoolSize,
			BreakerCooldown: rd.BreakerCooldown.D(),
		}
	}
	return ratelimit.NewShared(o)
}
