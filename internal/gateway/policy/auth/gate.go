package auth

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// ErrBusy is returned when a credential cannot be checked now because the
// gateway is already running as many checks as it allows; the policy
// answers 503 with Retry-After.
var ErrBusy = errors.New("auth: too many credential checks in progress")

// defaultGateWait is how long a basic-auth check waits for a free slot
// before it is refused with ErrBusy. Short bursts of legitimate logins
// queue; a sustained flood is refused instead of piling up.
const defaultGateWait = 200 * time.Millisecond

// Gate bounds the bcrypt comparisons running at once. A comparison costs
// tens of milliseconds of CPU, so without a bound a flood of wrong
// passwords would take every core. The gateway shares one Gate between
// all snapshots.
type Gate struct {
	slots       chan struct{}
	wait        time.Duration
	comparisons atomic.Int64
}

// NewGate returns a gate letting n comparisons run at once, each waiting
// up to wait for a slot. n <= 0 means GOMAXPROCS; wait <= 0 means 200ms.
func NewGate(n int, wait time.Duration) *Gate {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	if wait <= 0 {
		wait = defaultGateWait
	}
	return &Gate{slots: make(chan struct{}, n), wait: wait}
}

// Comparisons returns the number of bcrypt comparisons run so far.
func (g *Gate) Comparisons() int64 { return g.comparisons.Load() }

func (g *Gate) acquire(ctx context.Context) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (g *Gate) release() { <-g.slots }

func (g *Gate) compare(hash []byte, pass string) error {
	g.comparisons.Add(1)
	return bcrypt.CompareHashAndPassword(hash, []byte(pass))
}
