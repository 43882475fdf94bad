package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"xcatbm/worker"
)

// lockedBuffer is a bytes.Buffer the worker's goroutines and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// TestDuplicateCastLogLine: the log line of a redelivered cast says it is a
// duplicate and names no job (none was written), where the first names its job.
func TestDuplicateCastLogLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n01", "10.0.0.11"))
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(testConfig(), worker.Deps{Store: e.st, XCAT: e.xc, AMQPURLs: []string{e.vh.URL}, Log: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-w.Ready()
	c := castSpec{file: "cast-stop_instance.json", node: "n01", uuid: "d0d0d0d0-1111-4111-8111-111111111111", uniqueID: "feedfeedfeedfeedfeedfeedfeedfeed"}
	e.cast(c)
	e.cast(c)
	var received []map[string]any
	for deadline := time.Now().Add(20 * time.Second); len(received) < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		received = received[:0]
		for _, l := range logs.lines() {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["message"] == "cast received" {
				received = append(received, m)
			}
		}
	}
	if len(received) != 2 {
		t.Fatalf("%d cast received lines, want 2: %v", len(received), logs.lines())
	}
	if id, _ := received[0]["job"].(float64); id <= 0 || received[0]["duplicate"] != nil {
		t.Errorf("first line %v: want its job id and no duplicate mark", received[0])
	}
	if _, has := received[1]["job"]; has || received[1]["duplicate"] != true {
		t.Errorf("second line %v: want duplicate and no job", received[1])
	}
}
