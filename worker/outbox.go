package worker

import (
	"context"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/internal/broker"
	"xcatbm/internal/loop"
	"xcatbm/messages"
	"xcatbm/worker/store"
)

// outboxLoop publishes committed outbox rows with publisher confirms and marks them
// published. A row is marked only after the broker confirmed it, so a crash or a lost
// connection republishes it (consumers deduplicate notifications by message_id).
type outboxLoop struct {
	w     *Worker
	pub   *broker.Publisher
	loop  *loop.Loop // publishes
	purge *loop.Loop // deletes rows published a day ago
}

func newOutboxLoop(w *Worker) *outboxLoop {
	o := &outboxLoop{w: w}
	o.pub = &broker.Publisher{Conn: w.pub, Prepare: o.prepare}
	o.loop = &loop.Loop{Name: "outbox publish", Interval: 200 * time.Millisecond, Immediate: true, Backoff: w.cfg.Backoff, Log: w.log,
		Pass: func(ctx context.Context) (bool, error) { return false, o.drain(ctx) }}
	o.purge = &loop.Loop{Name: "outbox purge", Interval: 10 * time.Minute, Log: w.log, Pass: func(ctx context.Context) (bool, error) {
		_, err := w.store.PurgePublished(ctx, 86400)
		return false, err
	}}
	return o
}

// poke asks for a publish pass now.
func (o *outboxLoop) poke() { o.loop.Poke() }

// prepare declares, once per channel, the exchange of a notification and, for nova's
// topics, the queue its routing key names, as oslo's notifier does, so nova's
// notifications are kept until someone consumes them. xcatbm's own topic gets no
// queue: whoever follows a job (the publisher package) binds a queue of its own before
// the cast goes out, and a notification nobody asked for is dropped rather than piled
// into a queue nobody reads.
func (o *outboxLoop) prepare(ch *amqp.Channel, exchange, key string) error {
	if exchange == "" { // replies go to the caller's reply queue
		return nil
	}
	if err := declareExchange(ch, exchange, o.w.cfg.Queues); err != nil {
		return err
	}
	if strings.HasPrefix(key, messages.XCATBMTopic+".") {
		return nil
	}
	if _, err := ch.QueueDeclare(key, o.w.cfg.Queues.Durable || o.w.cfg.Queues.Quorum, o.w.cfg.Queues.AutoDelete, false, false, o.w.cfg.Queues.args(false)); err != nil {
		return err
	}
	return ch.QueueBind(key, key, exchange, false, nil)
}

// run publishes until ctx ends; unroutable replies are logged.
func (o *outboxLoop) run(ctx context.Context) error {
	returns := o.pub.Returns()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case r := <-returns:
				o.w.log.Warn().Str("routing_key", r.RoutingKey).Str("reason", r.ReplyText).Msg("reply unroutable: the caller is gone")
			}
		}
	}()
	o.purge.Start(ctx)
	defer o.purge.Stop()
	return o.loop.Run(ctx)
}

// Outbox batches: up to outboxBatch rows each, and while a full batch awaits its
// confirms, the next one is already selected and sent (outboxDepth batches in flight).
const (
	outboxBatch = 500
	outboxDepth = 2
)

// drain publishes outbox rows until a batch comes back short of outboxBatch, and
// returns the first error of any batch.
//
// Batches are selected and sent one after another on one channel, so notifications go
// out in outbox order; only the waits for confirms (and the marking that follows)
// overlap. A batch's rows stay locked in its transaction until they are marked, so
// the next batch's SELECT ... SKIP LOCKED takes the rows after them.
func (o *outboxLoop) drain(ctx context.Context) error {
	slots := make(chan struct{}, outboxDepth)
	errc := make(chan error, outboxDepth)
	inFlight := 0
	var first error
	collect := func() {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
		inFlight--
	}
	for first == nil && ctx.Err() == nil {
		slots <- struct{}{}
		sent := make(chan int, 1) // how many rows this batch selected and sent
		inFlight++
		go func() {
			defer func() { <-slots }()
			selected := 0
			began := time.Now()
			var selectedAt, sentAt, confirmedAt time.Time
			n, err := o.w.store.PublishOutbox(ctx, outboxBatch, func(msgs []store.PendingMessage) []int64 {
				selected, selectedAt = len(msgs), time.Now()
				wait, err := o.pub.Send(ctx, o.messages(msgs))
				sentAt = time.Now()
				sent <- selected
				if err != nil {
					o.w.log.Warn().Err(err).Int("messages", len(msgs)).Msg("outbox: broker unavailable")
					return nil
				}
				done := o.confirmed(msgs, wait())
				confirmedAt = time.Now()
				return done
			})
			if selected == 0 {
				sent <- 0
			} else if err == nil {
				o.w.log.Debug().Int("selected", selected).Int("published", n).
					Dur("select", selectedAt.Sub(began)).Dur("send", sentAt.Sub(selectedAt)).
					Dur("confirm", confirmedAt.Sub(sentAt)).Dur("mark", time.Since(confirmedAt)).
					Msg("outbox batch")
			}
			errc <- err
		}()
		if n := <-sent; n < outboxBatch {
			break
		}
		// A full batch: more rows are likely waiting. Collect finished batches
		// without blocking, then select the next one.
		for inFlight > 0 && len(errc) > 0 {
			collect()
		}
	}
	for inFlight > 0 {
		collect()
	}
	return first
}

// messages turns outbox rows into broker messages.
func (o *outboxLoop) messages(msgs []store.PendingMessage) []broker.Message {
	props := messages.NotificationProperties()
	out := make([]broker.Message, len(msgs))
	for i, m := range msgs {
		p := toPublishing(props, m.Body)
		p.MessageId = m.MessageID
		p.Expiration = m.Expiration
		out[i] = broker.Message{Exchange: m.Exchange, RoutingKey: m.RoutingKey, Mandatory: m.Exchange == "", Publishing: p}
	}
	return out
}

// confirmed returns the ids of msgs the broker confirmed, given one error per message.
func (o *outboxLoop) confirmed(msgs []store.PendingMessage, errs []error) []int64 {
	var done []int64
	for i, e := range errs {
		if e == nil {
			done = append(done, msgs[i].ID)
		}
	}
	o.w.metrics.published.Add(float64(len(done)))
	return done
}

// toPublishing maps oslo's AMQP properties onto an amqp091 publishing.
func toPublishing(p messages.Properties, body []byte) amqp.Publishing {
	return amqp.Publishing{
		ContentType:     p.ContentType,
		ContentEncoding: p.ContentEncoding,
		DeliveryMode:    p.DeliveryMode,
		Priority:        p.Priority,
		Expiration:      p.Expiration,
		Headers:         amqp.Table(p.Headers),
		Body:            body,
	}
}
