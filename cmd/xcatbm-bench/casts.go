package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/messages"
	"xcatbm/messages/novacast"
)

const benchImage = novacast.DefaultImage

// castSpec says how to adapt a vector: the node, the instance uuid and, for spawns,
// the image and a tenant address outside the nodes' xCAT subnet (the common case:
// the postscript adds it as an alias, and xCAT's ip is left alone).
type castSpec struct {
	file, node, uuid string
	spawn            bool
}

func castBody(c castSpec) ([]byte, error) {
	s := novacast.Spec{Node: c.node, UUID: c.uuid}
	if c.spawn {
		s.Hostname, s.Image, s.IP, s.CIDR = "vm-"+c.node, benchImage, "192.168.7.20", "192.168.0.0/16"
	}
	return novacast.Body(c.file, s)
}

// publishCasts sends bodies to the routing key on exchange nova, as nova's RPC client
// casts (persistent, no confirm), and returns when the last is written.
func publishCasts(ctx context.Context, ch *amqp.Channel, key string, bodies [][]byte) error {
	for _, b := range bodies {
		err := ch.PublishWithContext(ctx, "nova", key, false, false,
			amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Body: b})
		if err != nil {
			return fmt.Errorf("publish cast: %w", err)
		}
	}
	return nil
}

// watch counts the notifications of one event type from one publisher seen on the
// broker, and when the count reaches want, records the time and closes done.
type watch struct {
	event, publisher string
	want             int

	mu    sync.Mutex
	seen  int
	last  time.Time
	done  chan struct{}
	close func()
}

// newWatch binds an exclusive queue to the nova exchange's notification topics on a
// channel of conn and counts what arrives. Call it before sending the casts.
func newWatch(conn *amqp.Connection, event, publisher string, want int) (*watch, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.ExchangeDeclare("nova", "topic", false, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declare nova: %w", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return nil, err
	}
	for _, key := range []string{"versioned_notifications.*", "notifications.*"} {
		if err := ch.QueueBind(q.Name, key, "nova", false, nil); err != nil {
			return nil, err
		}
	}
	ds, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return nil, err
	}
	w := &watch{event: event, publisher: publisher, want: want, done: make(chan struct{}), close: func() { _ = ch.Close() }}
	go func() {
		// The listener is part of the bench process whose CPU rows 1 and 3 report:
		// it reads no more of a notification than it needs.
		quoted := []byte(`\"` + w.event + `\"`) // the event type as it stands in the envelope's string
		for d := range ds {
			if !bytes.Contains(d.Body, quoted) {
				continue
			}
			msg, err := messages.DecodeEnvelope(d.Body)
			if err != nil {
				continue
			}
			var eventType, publisherID string
			if json.Unmarshal(msg["event_type"], &eventType) != nil || json.Unmarshal(msg["publisher_id"], &publisherID) != nil {
				continue
			}
			if eventType != w.event || !strings.HasSuffix(publisherID, w.publisher) {
				continue
			}
			w.mu.Lock()
			w.seen++
			if w.seen == w.want {
				w.last = time.Now()
				close(w.done)
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// wait waits until every wanted notification was seen or the timeout passes, and
// returns when the last one arrived and how many were seen.
func (w *watch) wait(ctx context.Context, timeout time.Duration) (time.Time, int, error) {
	defer w.close()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
	case <-ctx.Done():
		return time.Time{}, 0, ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen < w.want {
		return time.Now(), w.seen, fmt.Errorf("saw %d of %d %s notifications within %v", w.seen, w.want, w.event, timeout)
	}
	return w.last, w.seen, nil
}
