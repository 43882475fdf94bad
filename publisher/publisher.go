// Package publisher is the admin side of xcatbm's registration jobs: it casts a job
// (messages.NewJobRequest: namespace "xcatbm", version 1.0) to the worker of a compute
// host on nova's control exchange with routing key compute.<host>, and follows it to
// its end through the worker's xcatbm.job.progress and xcatbm.job.end notifications.
//
// Correlation: the worker uses the request's _unique_id as the job_id of the job's
// notifications, so Submit knows the id before publishing. Submit binds its own
// exclusive queue to xcatbm_notifications.* before the cast goes out, so no
// notification of the job can be missed, and publishes with publisher confirms and
// the mandatory flag: a cast no queue takes (no worker ever served the host) is an
// error at once rather than a wait.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/messages"
	"xcatbm/xcat"
)

// Config says where to publish.
type Config struct {
	// URLs are AMQP URLs (amqp://user:pass@host:port/vhost), tried in turn.
	URLs []string
	// Exchange is nova's control exchange, which also carries notifications (default
	// "nova").
	Exchange string
	// MaxNodes bounds how many nodes the noderange of a register_nodes or
	// remove_nodes job may name (xcat.CheckNoderangeSize): Submit refuses a larger
	// one before anything is published. Zero means xcat.DefaultMaxNodes; a negative
	// value sets no bound.
	MaxNodes int
}

// Errors callers may test for.
var (
	// ErrNoWorker: no queue took the cast; no worker serves the compute host.
	ErrNoWorker = errors.New("no worker serves the compute host")
	// ErrConnect: the broker could not be reached.
	ErrConnect = errors.New("cannot reach the message broker")
)

// Publisher is a connection to the broker. Close it when done.
type Publisher struct {
	cfg  Config
	conn *amqp.Connection
}

// Dial connects to the first reachable URL.
func Dial(cfg Config) (*Publisher, error) {
	if cfg.Exchange == "" {
		cfg.Exchange = "nova"
	}
	if len(cfg.URLs) == 0 {
		return nil, fmt.Errorf("%w: no broker URL given", ErrConnect)
	}
	var errs []error
	for _, u := range cfg.URLs {
		conn, err := amqp.DialConfig(u, amqp.Config{Properties: amqp.Table{"connection_name": "xcatbm-admin"}, Dial: amqp.DefaultDial(10 * time.Second)})
		if err == nil {
			return &Publisher{cfg: cfg, conn: conn}, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: %v", ErrConnect, errors.Join(errs...))
}

// Close closes the connection.
func (p *Publisher) Close() error { return p.conn.Close() }

// Job is a submitted job being followed.
type Job struct {
	// ID is the job id the worker's notifications carry (the request's _unique_id).
	ID string
	// Host is the compute host whose worker runs it.
	Host string
	// Method is the job's kind (messages.MethodRegisterNodes, ...).
	Method string

	ch    *amqp.Channel
	queue string
	ds    <-chan amqp.Delivery
}

// Submit casts a job to host's worker (routing key compute.<host>), or, with host
// empty, to any worker (the shared queue "compute"). With follow, it first binds a queue for the
// job's notifications (Follow reads it); Close the job when done.
func (p *Publisher) Submit(ctx context.Context, host, method string, args messages.JobArgs, follow bool) (*Job, error) {
	if err := CheckArgs(args, p.cfg.MaxNodes); err != nil {
		return nil, err
	}
	req, err := messages.NewJobRequest(method, args, nil)
	if err != nil {
		return nil, err
	}
	if err := req.Context.Set("request_id", "req-"+messages.NewUniqueID()); err != nil {
		return nil, err
	}
	body, err := messages.EncodeRequest(req)
	if err != nil {
		return nil, err
	}
	ch, err := p.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConnect, err)
	}
	j := &Job{ID: req.UniqueID, Host: host, Method: method, ch: ch}
	ok := false
	defer func() {
		if !ok {
			_ = ch.Close()
		}
	}()
	if follow {
		if err := j.bind(p.cfg.Exchange); err != nil {
			return nil, err
		}
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	key := "compute"
	if host != "" {
		key += "." + host
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.cfg.Exchange, key, true, false, amqp.Publishing{
		ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp.Persistent, Timestamp: time.Now(), Body: body})
	if err != nil {
		return nil, fmt.Errorf("publish to %s: %w", key, err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("publish to %s: %w", key, err)
	}
	select {
	case r := <-returns:
		return nil, fmt.Errorf("%w: %q (the broker returned the cast to %s: %s)", ErrNoWorker, host, key, r.ReplyText)
	default:
	}
	if !acked {
		return nil, fmt.Errorf("publish to %s: the broker refused the message", key)
	}
	ok = true
	return j, nil
}

// CheckArgs refuses, with an error wrapping xcat.ErrInvalidInput, what a job would
// hand to xCAT and xCAT must not get: a noderange with shell metacharacters or
// naming more than maxNodes nodes (zero: xcat.DefaultMaxNodes; negative: no bound),
// an osimage name outside xCAT's safe set. Submit calls it before publishing.
func CheckArgs(args messages.JobArgs, maxNodes int) error {
	if maxNodes == 0 {
		maxNodes = xcat.DefaultMaxNodes
	}
	checkNR := func(nr string) error {
		if err := xcat.ValidateNoderange(nr); err != nil {
			return err
		}
		return xcat.CheckNoderangeSize(nr, maxNodes)
	}
	switch a := args.(type) {
	case *messages.RegisterNodesArgs:
		return checkNR(a.NodeRange)
	case *messages.RemoveNodesArgs:
		return checkNR(a.NodeRange)
	case *messages.RegisterImagesArgs:
		for _, im := range a.Images {
			if err := xcat.ValidateOSImageName(im.XCATName); err != nil {
				return err
			}
		}
	}
	return nil
}

// bind declares the job's notification queue on exchange and starts consuming it.
func (j *Job) bind(exchange string) error {
	// The exchange is the worker's; declare it as oslo does (topic, not durable) so the
	// bind works before any worker ran. A mismatch means the deployment declared it
	// otherwise; then it exists and a passive check suffices.
	if err := j.ch.ExchangeDeclarePassive(exchange, amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		return fmt.Errorf("exchange %s: %w (no worker has declared it yet)", exchange, err)
	}
	q, err := j.ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return fmt.Errorf("notification queue: %w", err)
	}
	if err := j.ch.QueueBind(q.Name, messages.XCATBMTopic+".*", exchange, false, nil); err != nil {
		return fmt.Errorf("bind %s.*: %w", messages.XCATBMTopic, err)
	}
	ds, err := j.ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume notifications: %w", err)
	}
	j.queue, j.ds = q.Name, ds
	return nil
}

// Close releases the job's channel and queue.
func (j *Job) Close() error { return j.ch.Close() }

// Follow reads the job's notifications until its xcatbm.job.end and returns that
// payload; onProgress (may be nil) sees every progress payload. Notifications of other
// jobs are ignored. It returns ctx's error when ctx ends first.
func (j *Job) Follow(ctx context.Context, onProgress func(*messages.JobPayload)) (*messages.JobPayload, error) {
	if j.ds == nil {
		return nil, errors.New("job was submitted without follow")
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for job %s on compute host %s: %w", j.ID, j.Host, ctx.Err())
		case d, ok := <-j.ds:
			if !ok {
				return nil, fmt.Errorf("%w: connection lost while following job %s", ErrConnect, j.ID)
			}
			event, p := decode(d.Body)
			if p == nil || p.JobID != j.ID {
				continue
			}
			switch event {
			case messages.EventJobEnd:
				return p, nil
			case messages.EventJobProgress:
				if onProgress != nil {
					onProgress(p)
				}
			}
		}
	}
}

// decode reads a job notification; other messages give a nil payload.
func decode(body []byte) (string, *messages.JobPayload) {
	msg, err := messages.DecodeEnvelope(body)
	if err != nil {
		return "", nil
	}
	var event string
	if raw, ok := msg["event_type"]; !ok || jsonString(raw, &event) != nil {
		return "", nil
	}
	if event != messages.EventJobEnd && event != messages.EventJobProgress {
		return "", nil
	}
	p, err := messages.DecodeJobPayload(msg["payload"])
	if err != nil {
		return "", nil
	}
	return event, p
}
