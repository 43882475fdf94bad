// Package loop is the one shape of xcatbm's background work: a pass repeated on a
// ticker or when poked, with backoff after a failed pass, started with a context and
// stopped cleanly. The executor's claims, the outbox publisher and its purge, lease
// renewal, the power sync, the gauges and the nova integration's heartbeat, node
// sync and queued writes are each a Loop. (The nova-compute lease, whose passes
// start and stop the heartbeat and sync, keeps its own loop in worker/nova.)
package loop

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Backoff gives the wait before retry n (0-based) after n+1 failures in a row;
// broker.Backoff is one.
type Backoff interface {
	Delay(n int) time.Duration
}

// Loop repeats Pass until stopped: every Interval, at once when Pass says there is
// more to do, Settle after a Poke, and after a Backoff delay when Pass fails. Set
// the fields before Start or Run; the zero Loop is not useful without Pass.
//
// A Loop runs once at a time: Start while it runs is a no-op. Stop and Poke are safe
// for concurrent use and at any time, also before Start and twice.
type Loop struct {
	// Name says what a pass does, for log lines: a failed pass logs "<Name> failed"
	// at warn with the error and the delay before the next try (retry_in).
	Name string
	// Interval is the time between passes (0: passes run only when poked).
	Interval time.Duration
	// Immediate runs the first pass at once instead of after Interval.
	Immediate bool
	// Settle is how long to wait after a Poke before the pass, so that work
	// arriving together is handled together (0: at once).
	Settle time.Duration
	// Backoff paces the passes after a failure; nil waits Interval (or 1s).
	Backoff Backoff
	// Pass does one round of work. more=true runs the next pass at once (a full
	// batch: more is likely waiting). An error is logged and the next pass waits
	// for Backoff. A pass must return when ctx ends.
	Pass func(ctx context.Context) (more bool, err error)
	// Log receives the failures.
	Log zerolog.Logger

	once   sync.Once
	poke   chan struct{}
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *Loop) init() { l.once.Do(func() { l.poke = make(chan struct{}, 1) }) }

// Poke asks for a pass soon (after Settle) without waiting for the ticker. It never
// blocks.
func (l *Loop) Poke() {
	l.init()
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// Start runs the loop in the background until ctx ends or Stop is called. It is a
// no-op when the loop already runs.
func (l *Loop) Start(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	go func() {
		defer close(done)
		l.run(ctx)
	}()
}

// Stop ends the loop and waits for the pass in progress to return. Stopping a loop
// that is not running does nothing; Stop may be called twice, and concurrently.
func (l *Loop) Stop() {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.cancel, l.done = nil, nil
	l.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Run runs the loop in the calling goroutine until ctx ends; it returns nil, for use
// in an errgroup.
func (l *Loop) Run(ctx context.Context) error {
	l.run(ctx)
	return nil
}

func (l *Loop) run(ctx context.Context) {
	l.init()
	var tick <-chan time.Time
	if l.Interval > 0 {
		t := time.NewTicker(l.Interval)
		defer t.Stop()
		tick = t.C
	}
	failures := 0
	more := l.Immediate
	for {
		if !more {
			select {
			case <-ctx.Done():
				return
			case <-tick:
			case <-l.poke:
				if l.Settle > 0 && !sleep(ctx, l.Settle) {
					return
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		var err error
		more, err = l.Pass(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			continue
		}
		more = true // try again after the backoff, not a whole interval later
		d := l.retryDelay(failures)
		failures++
		l.Log.Warn().Err(err).Str("loop", l.Name).Stringer("retry_in", d).Msg(l.Name + " failed")
		if !sleep(ctx, d) {
			return
		}
	}
}

func (l *Loop) retryDelay(n int) time.Duration {
	if l.Backoff != nil {
		d := l.Backoff.Delay(n)
		if l.Interval > 0 && d > l.Interval {
			d = l.Interval
		}
		return d
	}
	if l.Interval > 0 {
		return l.Interval
	}
	return time.Second
}

// sleep waits d or until ctx ends; it reports whether the wait was whole.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
