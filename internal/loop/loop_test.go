package loop

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

type fixedBackoff time.Duration

func (f fixedBackoff) Delay(int) time.Duration { return time.Duration(f) }

// waitFor polls cond until it holds or the test's patience ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestLoopPasses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		loop func(pass func(context.Context) (bool, error)) *Loop
		poke bool
		want int32 // passes to see before stopping
	}{
		{"ticker", func(p func(context.Context) (bool, error)) *Loop {
			return &Loop{Name: "tick", Interval: 5 * time.Millisecond, Pass: p}
		}, false, 3},
		{"immediate runs the first pass at once", func(p func(context.Context) (bool, error)) *Loop {
			return &Loop{Name: "imm", Interval: time.Hour, Immediate: true, Pass: p}
		}, false, 1},
		{"poke without a ticker", func(p func(context.Context) (bool, error)) *Loop {
			return &Loop{Name: "poke", Pass: p}
		}, true, 1},
		{"poke after settle", func(p func(context.Context) (bool, error)) *Loop {
			return &Loop{Name: "settle", Settle: 10 * time.Millisecond, Pass: p}
		}, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			l := tc.loop(func(context.Context) (bool, error) { n.Add(1); return false, nil })
			l.Start(context.Background())
			if tc.poke {
				l.Poke()
			}
			waitFor(t, "passes", func() bool { return n.Load() >= tc.want })
			l.Stop()
			after := n.Load()
			time.Sleep(20 * time.Millisecond)
			if n.Load() != after {
				t.Fatalf("passes went on after Stop: %d then %d", after, n.Load())
			}
		})
	}
}

func TestLoopMoreRunsAgainAtOnce(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	l := &Loop{Name: "drain", Interval: time.Hour, Immediate: true, Pass: func(context.Context) (bool, error) {
		return n.Add(1) < 5, nil
	}}
	l.Start(context.Background())
	defer l.Stop()
	waitFor(t, "five passes", func() bool { return n.Load() == 5 })
	time.Sleep(20 * time.Millisecond)
	if got := n.Load(); got != 5 {
		t.Fatalf("after more=false the loop should wait for the hour-long ticker; passes = %d", got)
	}
}

func TestLoopBacksOffAndLogsFailures(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	var n atomic.Int32
	l := &Loop{Name: "publish outbox", Interval: time.Hour, Immediate: true, Backoff: fixedBackoff(30 * time.Millisecond),
		Log: zerolog.New(&buf), Pass: func(context.Context) (bool, error) {
			if n.Add(1) <= 2 {
				return false, errors.New("broker away")
			}
			return false, nil
		}}
	began := time.Now()
	l.Start(context.Background())
	defer l.Stop()
	waitFor(t, "the pass after two failures", func() bool { return n.Load() == 3 })
	if took := time.Since(began); took < 60*time.Millisecond {
		t.Fatalf("two failures should back off 30ms each; the third pass came after %v", took)
	}
	logs := buf.String()
	if c := strings.Count(logs, `"message":"publish outbox failed"`); c != 2 {
		t.Fatalf("want 2 failure lines, got %d:\n%s", c, logs)
	}
	if !strings.Contains(logs, `"error":"broker away"`) || !strings.Contains(logs, `"retry_in"`) {
		t.Fatalf("failure lines should carry the error and the delay:\n%s", logs)
	}
}

func TestLoopStopIsSafe(t *testing.T) {
	t.Parallel()
	l := &Loop{Name: "idle", Interval: time.Hour, Pass: func(context.Context) (bool, error) { return false, nil }}
	l.Stop() // before Start
	l.Start(context.Background())
	l.Start(context.Background()) // a second Start is a no-op
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); l.Stop() }()
	}
	wg.Wait()
	l.Stop()
	// Started again after a stop, it runs again.
	var n atomic.Int32
	l.Pass = func(context.Context) (bool, error) { n.Add(1); return false, nil }
	l.Start(context.Background())
	l.Poke()
	waitFor(t, "a pass after restart", func() bool { return n.Load() == 1 })
	l.Stop()
}

func TestLoopEndsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	passing := make(chan struct{})
	l := &Loop{Name: "slow", Immediate: true, Pass: func(ctx context.Context) (bool, error) {
		close(passing)
		<-ctx.Done()
		return false, ctx.Err()
	}}
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); close(done) }()
	<-passing
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
