package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"xcatbm/worker/store"
)

// TestOutboxBacklogGoesOutInOrder: a backlog of several full outbox batches (the case
// where a batch is sent while the one before awaits its confirms) reaches the broker
// row by row once, in outbox order, and every row is marked published. How much the
// overlap gains is the bench's latency row, not asserted here.
func TestOutboxBacklogGoesOutInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const total = 1234 // two full batches and a short one
	msgs := make([]store.OutboxMessage, total)
	for i := range msgs {
		inner, _ := json.Marshal(map[string]any{"event_type": "xcatbm.test", "payload": map[string]any{"seq": i}})
		body, _ := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": string(inner)})
		msgs[i] = store.OutboxMessage{Exchange: "nova", RoutingKey: "xcatbm_notifications.info", MessageID: fmt.Sprintf("seq-%d", i), Body: body}
	}
	if _, err := e.st.RecordMessage(context.Background(), "", msgs); err != nil {
		t.Fatal(err)
	}
	e.startWorker(testConfig())
	deadline := time.Now().Add(30 * time.Second)
	var seqs []int
	for time.Now().Before(deadline) {
		e.notes.mu.Lock()
		seqs = seqs[:0]
		for _, n := range e.notes.notes {
			if n["event_type"] == "xcatbm.test" {
				seqs = append(seqs, int(n["payload"].(map[string]any)["seq"].(float64)))
			}
		}
		e.notes.mu.Unlock()
		if len(seqs) >= total {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(seqs) != total {
		t.Fatalf("%d of %d notifications arrived", len(seqs), total)
	}
	for i, s := range seqs {
		if s != i {
			t.Fatalf("notification %d carries seq %d: out of outbox order", i, s)
		}
	}
	// A batch is marked published after its confirms, so the last marks may trail
	// the notifications the listener already has.
	var unpublished int
	for {
		if err := e.db.QueryRow(`SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&unpublished); err != nil {
			t.Fatal(err)
		}
		if unpublished == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if unpublished != 0 {
		t.Errorf("%d outbox rows not marked published", unpublished)
	}
}
