package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Message is one message to publish.
type Message struct {
	Exchange   string
	RoutingKey string
	// Mandatory asks the broker to return the message when no queue takes it (oslo
	// publishes replies this way).
	Mandatory  bool
	Publishing amqp.Publishing
}

// Publisher publishes with publisher confirms on its own supervised connection. It is
// safe for concurrent use; publishes are serialized on one channel.
type Publisher struct {
	Conn *Conn
	// Prepare, when not nil, runs once per channel for each distinct
	// (exchange, routing key) before its first publish, to declare what must exist
	// (oslo's notifier declares the notification queue itself).
	Prepare func(ch *amqp.Channel, exchange, routingKey string) error

	mu       sync.Mutex
	ch       *amqp.Channel
	prepared map[[2]string]bool
	returns  chan amqp.Return
}

// ErrNacked is returned for a message the broker refused (basic.nack).
var ErrNacked = errors.New("broker nacked the message")

// Publish sends msgs and waits for the broker to confirm each. The result has one
// error per message (nil: confirmed). The returned error is set when nothing could be
// sent (no connection, ctx ended); the per-message errors are nil then.
func (p *Publisher) Publish(ctx context.Context, msgs []Message) ([]error, error) {
	wait, err := p.Send(ctx, msgs)
	if err != nil {
		return nil, err
	}
	return wait(), nil
}

// Send publishes msgs in order and returns at once with a function that waits for the
// broker's confirms and returns one error per message, as Publish does. Batches sent
// one after another go out in that order on one channel, so a caller may send the
// next batch while the previous one's confirms are still on their way. The wait
// function must be called exactly once.
func (p *Publisher) Send(ctx context.Context, msgs []Message) (wait func() []error, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, err := p.channel(ctx)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(msgs))
	confirms := make([]*amqp.DeferredConfirmation, len(msgs))
	for i, m := range msgs {
		key := [2]string{m.Exchange, m.RoutingKey}
		if p.Prepare != nil && !p.prepared[key] {
			if err := p.Prepare(ch, m.Exchange, m.RoutingKey); err != nil {
				errs[i] = fmt.Errorf("prepare %s/%s: %w", m.Exchange, m.RoutingKey, err)
				p.drop(ch)
				p.failRest(errs, i, err)
				return p.waiter(ctx, ch, errs, confirms[:i]), nil
			}
			p.prepared[key] = true
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, m.Exchange, m.RoutingKey, m.Mandatory, false, m.Publishing)
		if err != nil {
			p.drop(ch)
			p.failRest(errs, i, fmt.Errorf("publish: %w", err))
			return p.waiter(ctx, ch, errs, confirms[:i]), nil
		}
		confirms[i] = dc
	}
	return p.waiter(ctx, ch, errs, confirms), nil
}

// waiter waits for confirms[i] into errs[i].
func (p *Publisher) waiter(ctx context.Context, ch *amqp.Channel, errs []error, confirms []*amqp.DeferredConfirmation) func() []error {
	return func() []error {
		for i, dc := range confirms {
			if dc == nil {
				continue
			}
			ok, err := dc.WaitContext(ctx)
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("confirm: %w", err)
				p.mu.Lock()
				p.drop(ch)
				p.mu.Unlock()
			case !ok:
				errs[i] = ErrNacked
			}
		}
		return errs
	}
}

func (p *Publisher) failRest(errs []error, from int, err error) {
	for j := from; j < len(errs); j++ {
		if errs[j] == nil {
			errs[j] = err
		}
	}
}

// Returns delivers messages the broker returned as unroutable (mandatory publishes).
// It must be called before the first Publish to receive anything.
func (p *Publisher) Returns() <-chan amqp.Return {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.returns == nil {
		p.returns = make(chan amqp.Return, 64)
	}
	return p.returns
}

// drop closes ch and forgets it if it is still the publisher's channel; p.mu is held.
func (p *Publisher) drop(ch *amqp.Channel) {
	if ch != nil && p.ch == ch {
		_ = p.ch.Close()
		p.ch = nil
	}
}

func (p *Publisher) channel(ctx context.Context) (*amqp.Channel, error) {
	if p.ch != nil && !p.ch.IsClosed() {
		return p.ch, nil
	}
	conn, err := p.Conn.Get(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	if p.returns != nil {
		rets := ch.NotifyReturn(make(chan amqp.Return, 64))
		out := p.returns
		go func() {
			for r := range rets {
				select {
				case out <- r:
				default: // nobody reads returns fast enough; drop rather than block the channel
				}
			}
		}()
	}
	p.ch = ch
	p.prepared = map[[2]string]bool{}
	return ch, nil
}
