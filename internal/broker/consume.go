package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Consumer reads deliveries from a set of queues in batches on a supervised
// connection. Setup runs on every new channel (after each reconnect) and declares the
// topology; Handle gets each batch and decides its fate.
type Consumer struct {
	Conn *Conn
	// Setup declares exchanges and queues on a fresh channel and returns the queues
	// to consume.
	Setup func(ch *amqp.Channel) ([]string, error)
	// Prefetch is the channel's QoS prefetch count (0: unlimited).
	Prefetch int
	// MaxBatch caps a batch (default 100).
	MaxBatch int
	// Linger is how long, after the first delivery of a batch, the consumer waits
	// for more before handing the batch over; zero hands over what is already
	// waiting. Under a steady stream a short linger turns many one-message
	// transactions into a few larger ones.
	Linger time.Duration
	// Handle processes a batch. nil acks every delivery of the batch; an error
	// closes the channel, so the batch and every delivery behind it go back to
	// their queues in order, and consuming starts again after a backoff.
	Handle func(ctx context.Context, batch []amqp.Delivery) error
	// Backoff after a failed batch or a lost channel.
	Backoff Backoff
	// Ready, when not nil, is called each time the consumer is consuming (after
	// setup on a fresh channel).
	Ready func()
}

// Run consumes until ctx ends. Broken channels and connections are re-established.
func (c *Consumer) Run(ctx context.Context) error {
	Supervise(ctx, c.Backoff, c.Conn.cfg.Log, "consumer restarting", c.session)
	return nil
}

func (c *Consumer) session(ctx context.Context, up func()) error {
	conn, err := c.Conn.Get(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Qos(c.Prefetch, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	queues, err := c.Setup(ch)
	if err != nil {
		return fmt.Errorf("declare topology: %w", err)
	}
	merged := make(chan amqp.Delivery)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, q := range queues {
		deliveries, err := ch.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("consume %s: %w", q, err)
		}
		go func() {
			for d := range deliveries {
				select {
				case merged <- d:
				case <-sctx.Done():
					return
				}
			}
			cancel() // a closed delivery channel means the channel is gone
		}()
	}
	if c.Ready != nil {
		c.Ready()
	}
	// The session counts as serving (Supervise restarts its backoff) once a batch
	// went through: a session whose batches keep failing backs off longer each time.
	served := false
	maxBatch := c.MaxBatch
	if maxBatch <= 0 {
		maxBatch = 100
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	for {
		var first amqp.Delivery
		select {
		case <-sctx.Done():
			if ctx.Err() != nil {
				return nil
			}
			return errors.New("channel closed")
		case err := <-closed:
			return fmt.Errorf("channel closed: %v", err)
		case first = <-merged:
		}
		batch := []amqp.Delivery{first}
		var linger <-chan time.Time
		var lingerTimer *time.Timer
		if c.Linger > 0 {
			lingerTimer = time.NewTimer(c.Linger)
			linger = lingerTimer.C
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case d := <-merged:
				batch = append(batch, d)
				continue
			default:
			}
			if linger == nil {
				break
			}
			select {
			case d := <-merged:
				batch = append(batch, d)
			case <-linger:
				break fill
			case <-sctx.Done():
				break fill
			}
		}
		if lingerTimer != nil {
			lingerTimer.Stop()
		}
		if err := c.Handle(ctx, batch); err != nil {
			// Close the channel rather than reject the batch: RabbitMQ then requeues
			// the batch and every delivery prefetched behind it, in their order, and
			// hands them back in that order. Rejecting only the batch would let the
			// later deliveries, already here, be handled before it.
			return fmt.Errorf("batch of %d failed; it and the deliveries behind it are requeued: %w", len(batch), err)
		}
		if !served {
			served = true
			up()
		}
		for _, d := range batch {
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
		}
	}
}
