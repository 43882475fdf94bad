package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xcatbm/worker/store"
)

// TestOutboxBodiesRoundTrip writes outbox rows in one statement (the bodies cut from
// one bytea by their lengths) and reads every body back byte for byte, in order.
func TestOutboxBodiesRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		bodies [][]byte
	}{
		{"one", [][]byte{[]byte(`{"oslo.version": "2.0"}`)}},
		{"empty among others", [][]byte{[]byte("a"), {}, []byte("bc"), {}}},
		{"bytes that are not text", [][]byte{{0x00, 0xff, 0x5c, 0x22}, {0x7b, 0x00}, {0x80}}},
		{"multibyte UTF-8", [][]byte{[]byte("nœud-é"), []byte(`{"name": "サーバー"}`), []byte("x")}},
		{"large and small", [][]byte{bytes.Repeat([]byte(`{"k": "v"}`), 5000), []byte("s"), bytes.Repeat([]byte{0x5c}, 3000)}},
		{"many", func() [][]byte {
			var out [][]byte
			for i := range 700 {
				out = append(out, []byte(strings.Repeat(fmt.Sprint(i%10), i%37)))
			}
			return out
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, st := newStore(t)
			ctx := context.Background()
			msgs := make([]store.OutboxMessage, len(tc.bodies))
			for i, b := range tc.bodies {
				msgs[i] = store.OutboxMessage{Exchange: "nova", RoutingKey: "notifications.info", MessageID: fmt.Sprintf("m%d", i), Body: b}
			}
			if fresh, err := st.RecordMessage(ctx, "", msgs); err != nil || !fresh {
				t.Fatalf("RecordMessage: %v, %v", fresh, err)
			}
			var got []store.PendingMessage
			n, err := st.PublishOutbox(ctx, len(msgs)+10, func(p []store.PendingMessage) []int64 {
				got = p
				return nil
			})
			if err != nil || n != 0 {
				t.Fatalf("PublishOutbox: %d, %v", n, err)
			}
			if len(got) != len(msgs) {
				t.Fatalf("read %d rows, wrote %d", len(got), len(msgs))
			}
			for i, m := range got {
				if m.MessageID != msgs[i].MessageID || !bytes.Equal(m.Body, msgs[i].Body) {
					t.Errorf("row %d: message %s, body %d bytes %.40q; want %s, %d bytes %.40q",
						i, m.MessageID, len(m.Body), m.Body, msgs[i].MessageID, len(msgs[i].Body), msgs[i].Body)
				}
			}
		})
	}
}

// BenchmarkOutboxInsert writes 300 captured versioned notifications as outbox rows in
// one transaction, as a batch of transitions does; the time is per row.
func BenchmarkOutboxInsert(b *testing.B) {
	body := capturedBody(b, "notification-versioned-instance.power_off.end.json")
	_, st := newStore(b)
	ctx := context.Background()
	msgs := make([]store.OutboxMessage, 300)
	for i := range msgs {
		msgs[i] = store.OutboxMessage{Exchange: "nova", RoutingKey: "versioned_notifications.info", MessageID: fmt.Sprintf("m%d", i), Body: body}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := st.RecordMessage(ctx, "", msgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(msgs)), "µs/row")
}

// BenchmarkPublishOutbox takes 500 unpublished outbox rows (captured notifications)
// and marks them published, as one batch of the outbox loop does with the broker's
// confirms left out; the time is per row. The rows are written before the timer runs.
func BenchmarkPublishOutbox(b *testing.B) {
	body := capturedBody(b, "notification-versioned-instance.power_off.end.json")
	_, st := newStore(b)
	ctx := context.Background()
	const batch = 500
	msgs := make([]store.OutboxMessage, batch)
	for i := range msgs {
		msgs[i] = store.OutboxMessage{Exchange: "nova", RoutingKey: "versioned_notifications.info", MessageID: fmt.Sprintf("m%d", i), Body: body}
	}
	for b.Loop() {
		b.StopTimer()
		if _, err := st.RecordMessage(ctx, "", msgs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, err := st.PublishOutbox(ctx, batch, func(p []store.PendingMessage) []int64 {
			ids := make([]int64, len(p))
			for i, m := range p {
				ids[i] = m.ID
			}
			return ids
		})
		if err != nil || n != batch {
			b.Fatalf("published %d of %d: %v", n, batch, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/row")
}

// capturedBody returns the body of a captured notification in messages/testdata
// (novacast.Vector holds the casts only).
func capturedBody(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "messages", "testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	var captured struct{ Body string }
	if err := json.Unmarshal(raw, &captured); err != nil {
		tb.Fatal(err)
	}
	return []byte(captured.Body)
}
