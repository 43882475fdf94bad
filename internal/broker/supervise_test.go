package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestSuperviseBackoff runs scripted sessions and reads the delays Supervise logged:
// failures before a session serves grow the delay; a session that served starts it
// over from the minimum.
func TestSuperviseBackoff(t *testing.T) {
	tests := []struct {
		name   string
		served []bool // per session: did it call up before returning
		want   []int  // the backoff attempt each restart's delay must come from
	}{
		{"never serves", []bool{false, false, false, false}, []int{0, 1, 2, 3}},
		{"serves every time", []bool{true, true, true}, []int{0, 0, 0}},
		{"serves after failures", []bool{false, false, false, true, false}, []int{0, 1, 2, 0, 1}},
		{"long run of outages", []bool{true, false, true, false, false, true}, []int{0, 1, 0, 1, 2, 0}},
	}
	b := Backoff{Min: time.Millisecond, Max: 64 * time.Millisecond}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := zerolog.New(&buf)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			Supervise(ctx, b, log, "session lost", func(ctx context.Context, up func()) error {
				if calls == len(tt.served) {
					cancel()
					return nil
				}
				if tt.served[calls] {
					up()
				}
				calls++
				return errors.New("channel closed")
			})
			var delays []float64
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				var e struct {
					Msg     string `json:"message"`
					Err     string `json:"error"`
					RetryIn string `json:"retry_in"`
				}
				if err := json.Unmarshal([]byte(line), &e); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if e.Msg != "session lost" || e.Err != "channel closed" {
					t.Fatalf("log line %q: want the session's message and error", line)
				}
				// A duration with its unit, as time.Duration prints it: "3.4s".
				d, err := time.ParseDuration(e.RetryIn)
				if err != nil {
					t.Fatalf("log line %q: retry_in: %v", line, err)
				}
				delays = append(delays, float64(d)/float64(time.Millisecond))
			}
			if len(delays) != len(tt.want) {
				t.Fatalf("%d restarts logged, want %d: %s", len(delays), len(tt.want), buf.String())
			}
			for i, n := range tt.want {
				hi := float64((b.Min << n).Milliseconds())
				if delays[i] < hi/2 || delays[i] > hi {
					t.Errorf("restart %d: retry_in %.3f ms, want attempt %d's [%.1f, %.1f] ms", i, delays[i], n, hi/2, hi)
				}
			}
		})
	}
}

// TestSuperviseStopsOnCancel: a session that returns because ctx ended is not restarted.
func TestSuperviseStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan struct{})
	go func() {
		Supervise(ctx, Backoff{Min: time.Hour, Max: time.Hour}, zerolog.Nop(), "lost", func(ctx context.Context, up func()) error {
			calls++
			up()
			<-ctx.Done()
			return ctx.Err()
		})
		close(done)
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Supervise still running 5 s after cancel")
	}
	if calls != 1 {
		t.Fatalf("session ran %d times, want 1", calls)
	}
}
