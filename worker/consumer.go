package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/internal/broker"
	"xcatbm/internal/config"
	"xcatbm/internal/logging"
	"xcatbm/messages"
	"xcatbm/worker/configdrive"
	"xcatbm/worker/store"
)

// args returns the x-arguments of a queue: quorum and HA as configured, and, for
// transient queues (fanout, reply), x-expires.
func (q QueueOptions) args(transient bool) amqp.Table {
	t := amqp.Table{}
	if q.Quorum && !transient {
		t["x-queue-type"] = "quorum"
	}
	if q.HA {
		t["x-ha-policy"] = "all"
	}
	if transient && q.TransientTTL > 0 {
		t["x-expires"] = int32(q.TransientTTL.Milliseconds())
	}
	if len(t) == 0 {
		return nil
	}
	return t
}

func declareExchange(ch *amqp.Channel, name string, q QueueOptions) error {
	return ch.ExchangeDeclare(name, amqp.ExchangeTopic, q.Durable || q.Quorum, q.AutoDelete, false, false, nil)
}

// topology declares what nova-compute declares for topic compute and server host —
// the queues compute and compute.<host> bound to the control exchange, a fanout queue
// bound to compute_fanout — plus xcatbm's dead-letter queue, and returns the queues to
// consume.
func (w *Worker) topology(ch *amqp.Channel) ([]string, error) {
	q := w.cfg.Queues
	durable := q.Durable || q.Quorum
	if err := declareExchange(ch, w.cfg.Exchange, q); err != nil {
		return nil, fmt.Errorf("exchange %s: %w", w.cfg.Exchange, err)
	}
	hostQueue := "compute." + w.cfg.ComputeHost
	queues := []string{"compute", hostQueue}
	for _, name := range queues {
		args := q.args(false)
		if name == hostQueue && q.SingleActive {
			if args == nil {
				args = amqp.Table{}
			}
			args["x-single-active-consumer"] = true
		}
		if _, err := ch.QueueDeclare(name, durable, false, false, false, args); err != nil {
			var ae *amqp.Error
			if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
				return nil, fmt.Errorf("queue %s exists with other arguments than this worker declares (%s): match --amqp-durable-queues, --rabbit-quorum-queue, --rabbit-ha-queues and --rabbit-single-active-consumer to it, or delete the queue while no casts wait in it: %w",
					name, ae.Reason, err)
			}
			return nil, fmt.Errorf("queue %s: %w", name, err)
		}
		if err := ch.QueueBind(name, name, w.cfg.Exchange, false, nil); err != nil {
			return nil, fmt.Errorf("bind %s: %w", name, err)
		}
	}
	if err := ch.ExchangeDeclare("compute_fanout", amqp.ExchangeFanout, false, true, false, false, nil); err != nil {
		return nil, fmt.Errorf("exchange compute_fanout: %w", err)
	}
	fanout := "compute_fanout_" + strings.ReplaceAll(messages.NewUniqueID(), "-", "")
	if _, err := ch.QueueDeclare(fanout, false, false, false, false, q.args(true)); err != nil {
		return nil, fmt.Errorf("queue %s: %w", fanout, err)
	}
	if err := ch.QueueBind(fanout, "compute", "compute_fanout", false, nil); err != nil {
		return nil, fmt.Errorf("bind %s: %w", fanout, err)
	}
	// The dead-letter queue is durable and, with quorum queues, a quorum queue too: a
	// classic queue lives on the one broker node that first declared it, and while that
	// node is down every declaration of it fails (404), which would stop this worker
	// consuming on the surviving nodes of a cluster.
	if _, err := ch.QueueDeclare(w.cfg.DeadLetterQueue, true, false, false, false, q.args(false)); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
			return nil, fmt.Errorf("dead-letter queue %s exists with other arguments than this worker declares (%s): match --rabbit-quorum-queue and --rabbit-ha-queues to it, or move its messages away and delete it: %w",
				w.cfg.DeadLetterQueue, ae.Reason, err)
		}
		return nil, fmt.Errorf("queue %s: %w", w.cfg.DeadLetterQueue, err)
	}
	return append(queues, fanout), nil
}

func (w *Worker) consume(ctx context.Context) error {
	c := &broker.Consumer{
		Conn:     w.sub,
		Setup:    w.topology,
		Prefetch: w.cfg.Concurrency,
		MaxBatch: w.cfg.Concurrency,
		Backoff:  w.cfg.Backoff,
		Linger:   max(0, w.cfg.GatherWindow/4),
		Handle:   w.handle,
		Ready: func() {
			select {
			case <-w.ready:
			default:
				close(w.ready)
			}
			w.log.Info().Msg("consuming compute queues")
		},
	}
	return c.Run(ctx)
}

// handle turns a batch of deliveries into jobs committed in one transaction; calls
// that need no job are answered, and messages the worker cannot use are
// dead-lettered. A nil return acks the whole batch.
func (w *Worker) handle(ctx context.Context, batch []amqp.Delivery) error {
	var jobs []store.NewJob
	var replies []broker.Message
	var dead []deadLetter
	// Decoding a cast and building its notifications is the consumer's CPU work;
	// spread it over the cores, keeping the batch's order.
	decisions := make([]decision, len(batch))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range batch {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			decisions[i] = w.decide(ctx, batch[i])
		}()
	}
	wg.Wait()
	var drives []string // the tenant data written for jobs[i]
	var retry error
	for _, dc := range decisions {
		switch {
		case dc.retry != nil:
			retry = dc.retry
		case dc.dead != nil:
			dead = append(dead, *dc.dead)
		case dc.job != nil:
			jobs = append(jobs, *dc.job)
			drives = append(drives, dc.drive)
		}
		if dc.reply != nil {
			replies = append(replies, *dc.reply)
		}
	}
	if retry != nil {
		w.dropDrives(drives)
		return retry
	}
	if len(jobs) > 0 {
		ins, err := w.store.InsertJobs(ctx, jobs)
		if err != nil {
			// Redelivered, each cast writes its tenant data again.
			w.dropDrives(drives)
			return fmt.Errorf("record %d jobs: %w", len(jobs), err)
		}
		for i, in := range ins {
			l := w.log.Info()
			if in.Duplicate {
				// No job was written: the line names the message, not a job id.
				w.dropDrives(drives[i : i+1])
				w.metrics.duplicates.Inc()
				l = l.Bool("duplicate", true)
			} else {
				w.metrics.jobsAccepted.WithLabelValues(jobs[i].Kind).Inc()
				l = l.Int64(logging.FieldJob, in.ID)
			}
			l.Str("kind", jobs[i].Kind).Str(logging.FieldInstance, jobs[i].InstanceUUID).
				Str(logging.FieldNode, jobs[i].Node).Str("unique_id", jobs[i].MessageID).Msg("cast received")
		}
		w.exec.poke()
		w.outbox.poke()
	}
	for _, dl := range dead {
		if err := w.deadLetter(ctx, dl); err != nil {
			return err
		}
	}
	if len(replies) > 0 {
		errs, err := w.outbox.pub.Publish(ctx, replies)
		if err != nil {
			// A caller waiting for a ping or console output retries by itself; the
			// message is not worth redelivering over.
			w.log.Warn().Err(err).Msg("replies not sent")
		}
		for _, e := range errs {
			if e != nil {
				w.log.Warn().Err(e).Msg("reply not confirmed")
			}
		}
	}
	return nil
}

// decision is what becomes of one delivery: a job to record (with the tenant data
// written for it), a reply, a dead letter, or, with retry, the whole batch goes
// back to the queue.
type decision struct {
	job   *store.NewJob
	drive string
	reply *broker.Message
	dead  *deadLetter
	retry error
}

// dropDrives removes tenant data written for jobs that were not recorded.
func (w *Worker) dropDrives(paths []string) {
	for _, p := range paths {
		w.removeDrive(p)
	}
}

// removeDrive removes one tree of tenant data; a failure is logged and left to the
// sweeper.
func (w *Worker) removeDrive(path string) {
	if path == "" || w.drives == nil {
		return
	}
	loc, err := configdrive.ParseLocation(path)
	if err == nil {
		err = w.drives.Remove(loc)
	}
	if err != nil {
		w.log.Warn().Err(err).Msg("tenant data not removed; the sweeper will")
	}
}

// deadLetter is a message the worker cannot use, with the reason.
type deadLetter struct {
	d        amqp.Delivery
	reason   string
	uniqueID string
	outbox   []store.OutboxMessage // error notifications, when it names an instance
	nova     []store.NovaOp        // the instance put in ERROR, with the nova integration
}

// decide classifies one delivery: a job to record, an immediate reply, or a dead
// letter. Which method makes which kind of job, and how its arguments are read, is
// the table in machine.go; the requests answered without a job are answers.
func (w *Worker) decide(ctx context.Context, d amqp.Delivery) decision {
	job, drive, reply, dead, err := w.decideOne(ctx, d)
	return decision{job: job, drive: drive, reply: reply, dead: dead, retry: err}
}

func (w *Worker) decideOne(ctx context.Context, d amqp.Delivery) (*store.NewJob, string, *broker.Message, *deadLetter, error) {
	if enc, _ := d.Headers["compression"].(string); enc != "" {
		return nil, "", nil, &deadLetter{d: d, reason: "compressed bodies (kombu_compression " + enc + ") are not supported"}, nil
	}
	req, err := messages.DecodeRequest(d.Body)
	if err != nil {
		return nil, "", nil, &deadLetter{d: d, reason: "undecodable message: " + err.Error()}, nil
	}
	log := w.log.With().Str(logging.FieldMethod, req.Method).Str(logging.FieldRequestID, req.Context.RequestID()).Logger()
	reject := func(f *messages.Failure) (*store.NewJob, string, *broker.Message, *deadLetter, error) {
		if req.IsCall() {
			log.Warn().Str("failure", f.Error()).Msg("call refused")
			return nil, "", w.failureReply(req, f), nil, nil
		}
		return nil, "", nil, &deadLetter{d: d, reason: f.Error(), uniqueID: req.UniqueID, outbox: w.notify.rejected(req, f),
			nova: w.novaRejected(req, f)}, nil
	}
	key := castKey{req.Namespace, req.Method}
	_, isAnswer := answers[key]
	_, isJob := byMethod[key]
	if !isAnswer && !isJob {
		return reject(messages.NoSuchMethod(req.Namespace, req.Method))
	}
	if err := checkVersion(req.Namespace, req.Version); err != nil {
		var f *messages.Failure
		if !errors.As(err, &f) {
			f = messages.UnsupportedVersion(req.Version)
		}
		return reject(f)
	}
	if a, ok := answers[key]; ok {
		if a.callOnly && !req.IsCall() {
			return reject(messages.NoSuchMethod(req.Namespace, req.Method+" as a cast"))
		}
		result, f := a.serve(w, req)
		switch {
		case f != nil:
			return reject(f)
		case req.IsCall():
			return nil, "", w.reply(req, result), nil, nil
		}
		return nil, "", nil, nil, nil
	}
	kind := byMethod[key]
	ks := spec(kind)
	badArgs := func(err error) (*store.NewJob, string, *broker.Message, *deadLetter, error) {
		return reject(&messages.Failure{Class: "ValueError", Module: "builtins", Message: req.Method + ": " + err.Error()})
	}
	r := request{Method: req.Method, RequestID: req.Context.RequestID(), Context: notificationContext(req.Context)}
	inst, err := ks.decode(w, req, &r)
	if errors.Is(err, errRetryBatch) {
		return nil, "", nil, nil, err
	}
	if err != nil {
		w.removeDrive(r.ConfigDrive)
		return badArgs(err)
	}
	if req.IsCall() {
		r.Call = &callInfo{ReplyQueue: req.ReplyQueue, MsgID: req.MsgID}
	}
	job := &store.NewJob{Kind: string(kind), ComputeHost: w.cfg.ComputeHost, MessageID: req.UniqueID, State: string(ks.flow[0]),
		CancelEarlier: ks.lastWord, Deadline: w.now().Add(w.deadline(kind))}
	if inst != nil {
		if r.Node == "" {
			r.Node = inst.Node
		}
		// What is kept of the instance holds none of its secrets (user data): they
		// went into the tenant data tree, if anywhere.
		if r.Instance, err = inst.EncodeWithoutSecrets(); err != nil {
			w.removeDrive(r.ConfigDrive)
			return badArgs(err)
		}
		r.InstanceUUID, r.Hostname = inst.UUID, inst.Hostname
		job.InstanceUUID, job.Node = inst.UUID, r.Node
		job.Outbox = w.notify.started(kind, inst, req.Context, &r)
		job.NovaOps = w.novaStarted(kind, r.Instance, inst.UUID, r.Node, req.Context)
	}
	if job.Request, err = r.encode(); err != nil {
		w.removeDrive(r.ConfigDrive)
		return badArgs(err)
	}
	return job, r.ConfigDrive, nil, nil, nil
}

// answer is a request the worker serves at once, without a job: serve returns the
// call's result, or the failure to reply with (a cast of it is dead-lettered).
type answer struct {
	callOnly bool
	serve    func(w *Worker, req *messages.Request) (any, *messages.Failure)
}

// methodGetHostUptime is nova's get_host_uptime call (os-hypervisors' uptime).
const methodGetHostUptime = "get_host_uptime"

// answers are the requests served without a job.
var answers = map[castKey]answer{
	{messages.BaseAPINamespace, messages.MethodPing}: {callOnly: true, serve: func(_ *Worker, req *messages.Request) (any, *messages.Failure) {
		a, err := req.Ping()
		if err != nil {
			return nil, &messages.Failure{Class: "ValueError", Module: "builtins", Message: err.Error()}
		}
		return messages.PingResult(a.Arg), nil
	}},
	{"", messages.MethodGetConsoleOutput}: {callOnly: true, serve: func(w *Worker, req *messages.Request) (any, *messages.Failure) {
		a, err := req.GetConsoleOutput()
		if err != nil {
			return nil, &messages.Failure{Class: "ValueError", Module: "builtins", Message: req.Method + ": " + err.Error()}
		}
		return w.consoleOutput(a.Instance, a.TailLength)
	}},
	{"", methodGetHostUptime}: {callOnly: true, serve: func(w *Worker, _ *messages.Request) (any, *messages.Failure) {
		up, err := hostUptime(w.now())
		if err != nil {
			return nil, &messages.Failure{Class: "NotImplementedError", Module: "builtins", Message: err.Error()}
		}
		return up, nil
	}},
	// neutron's vif-plugged and network-changed events: bare metal has no VIF to
	// plug, so there is nothing to do, as with nova's Ironic driver.
	{"", messages.MethodExternalInstanceEvent}: {serve: func(w *Worker, req *messages.Request) (any, *messages.Failure) {
		w.log.Debug().Str(logging.FieldRequestID, req.Context.RequestID()).Msg("external_instance_event ignored")
		return nil, nil
	}},
}

func (w *Worker) deadline(k Kind) time.Duration {
	if d, ok := w.cfg.Deadlines[k]; ok && d > 0 {
		return d
	}
	return spec(k).deadline
}

func notificationContext(c *messages.Context) map[string]json.RawMessage {
	if c == nil {
		return nil
	}
	nc := c.ForNotification()
	out := map[string]json.RawMessage{}
	for _, k := range nc.Keys() {
		if v, ok := nc.Get(k); ok {
			out[k] = v
		}
	}
	return out
}

func (w *Worker) reply(req *messages.Request, result any) *broker.Message {
	body, err := messages.EncodeReply(req.MsgID, result)
	if err != nil {
		return w.failureReply(req, &messages.Failure{Class: "ValueError", Module: "builtins", Message: err.Error()})
	}
	return &broker.Message{RoutingKey: req.ReplyQueue, Mandatory: true, Publishing: toPublishing(messages.ReplyProperties(), body)}
}

func (w *Worker) failureReply(req *messages.Request, f *messages.Failure) *broker.Message {
	body, err := messages.EncodeFailureReply(req.MsgID, f)
	if err != nil {
		w.log.Error().Err(err).Msg("cannot encode failure reply")
		return nil
	}
	return &broker.Message{RoutingKey: req.ReplyQueue, Mandatory: true, Publishing: toPublishing(messages.ReplyProperties(), body)}
}

// consoleOutput returns the tail of a node's console log, as nova's drivers do.
func (w *Worker) consoleOutput(inst *messages.Instance, tail *int) (string, *messages.Failure) {
	node := inst.Node
	notAvailable := &messages.Failure{Class: "ConsoleNotAvailable", Module: "nova.exception", Message: "Guest does not have a console available.",
		Kwargs: map[string]any{}}
	if node == "" || strings.ContainsAny(node, "/\\") || node == "." || node == ".." {
		return "", notAvailable
	}
	b, err := os.ReadFile(filepath.Join(w.cfg.ConsoleLogDir, node))
	if err != nil {
		return "", notAvailable
	}
	if tail == nil {
		return string(b), nil
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if *tail < len(lines) {
		lines = lines[len(lines)-max(0, *tail):]
	}
	return strings.Join(lines, ""), nil
}

// deadLetter records a rejected message (and its error notifications) and puts it on
// the dead-letter queue with the reason in its headers.
func (w *Worker) deadLetter(ctx context.Context, dl deadLetter) error {
	if dl.uniqueID != "" || len(dl.outbox) > 0 || len(dl.nova) > 0 {
		fresh, err := w.store.RecordRejected(ctx, dl.uniqueID, dl.outbox, w.cfg.ComputeHost, dl.nova)
		if err != nil {
			return fmt.Errorf("record rejected message: %w", err)
		}
		if !fresh {
			return nil // already dead-lettered once
		}
	}
	// A dead-lettered body rests on the queue until an operator reads it: it keeps
	// what a diagnosis needs, not the request's secrets (messages.RedactBody).
	headers := amqp.Table{}
	for k, v := range dl.d.Headers {
		if messages.IsSecretName(k) {
			v = config.Redacted
		}
		headers[k] = v
	}
	headers["x-xcatbm-reason"] = dl.reason
	headers["x-xcatbm-exchange"] = dl.d.Exchange
	headers["x-xcatbm-routing-key"] = dl.d.RoutingKey
	msg := broker.Message{RoutingKey: w.cfg.DeadLetterQueue, Publishing: amqp.Publishing{
		ContentType: dl.d.ContentType, ContentEncoding: dl.d.ContentEncoding, DeliveryMode: amqp.Persistent,
		Headers: headers, Body: messages.RedactBody(dl.d.Body)}}
	errs, err := w.outbox.pub.Publish(ctx, []broker.Message{msg})
	if err == nil && errs[0] != nil {
		err = errs[0]
	}
	if err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	w.metrics.deadLetters.Inc()
	w.log.Warn().Str("reason", dl.reason).Str("routing_key", dl.d.RoutingKey).Msg("message dead-lettered")
	w.outbox.poke()
	return nil
}
