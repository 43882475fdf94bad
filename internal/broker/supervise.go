package broker

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// Supervise runs session until ctx ends, starting it again after a backoff each time
// it returns. A session calls up once it is serving (its channel open, its queues
// consumed); a session that got that far restarts the backoff from its minimum, so a
// long-running process that has weathered many broker outages still comes back
// quickly from the next one. Each restart is logged at warn with msg and the delay.
func Supervise(ctx context.Context, b Backoff, log zerolog.Logger, msg string, session func(ctx context.Context, up func()) error) {
	failures := 0
	for ctx.Err() == nil {
		served := false
		err := session(ctx, func() { served = true })
		if ctx.Err() != nil {
			return
		}
		if served {
			failures = 0
		}
		d := b.Delay(failures)
		failures++
		log.Warn().Err(err).Stringer("retry_in", d).Msg(msg)
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}
