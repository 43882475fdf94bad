package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	var acks acker // delivery tags count from 1 on each channel
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
		if err := acks.ack(batch); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
}

// acker acks a channel's batches, with one frame for a batch when it can: when its
// delivery tags follow, without a gap, every tag acked before, acking the last with
// multiple set acks exactly the batch. Otherwise (a batch whose tags interleave with
// deliveries of another queue still waiting in the merge) each delivery is acked
// alone, so a delivery not yet handled is never acked with it.
type acker struct {
	mark  uint64          // every tag up to mark is acked
	above map[uint64]bool // tags acked past mark
}

func (a *acker) ack(batch []amqp.Delivery) error {
	if len(batch) == 0 {
		return nil
	}
	tags := make([]uint64, len(batch))
	for i, d := range batch {
		tags[i] = d.DeliveryTag
	}
	slices.Sort(tags)
	run := true
	for i, t := range tags {
		if t != a.mark+1+uint64(i) {
			run = false
			break
		}
	}
	last := batch[len(batch)-1]
	if run {
		if err := last.Acknowledger.Ack(tags[len(tags)-1], true); err != nil {
			return err
		}
		a.mark = tags[len(tags)-1]
	} else {
		if a.above == nil {
			a.above = map[uint64]bool{}
		}
		for _, d := range batch {
			if err := d.Ack(false); err != nil {
				return err
			}
			a.above[d.DeliveryTag] = true
		}
	}
	for a.above[a.mark+1] {
		delete(a.above, a.mark+1)
		a.mark++
	}
	return nil
}
