package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lib/pq"
	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/internal/broker"
	"xcatbm/messages"
)

// Settings of the pipelined ceiling (issue #20): the best one message can do on this
// broker and database.
const (
	pipePrefetch   = 256  // the consumer's prefetch
	pipeCommitters = 16   // concurrent committers, one job row + one outbox row each
	pipeBatch      = 1000 // the outbox publisher's largest batch
)

// ceilingResult is one run of the pipelined ceiling: the time from the first cast to
// the last notification seen on the broker, where the CPU went meanwhile (cpuPer) and
// the p99 of commit to broker-confirmed of its outbox rows.
type ceilingResult struct {
	took time.Duration
	cpu  string
	p99  time.Duration
}

// pipelinedCeiling measures k casts through a pipeline on the same broker and
// database as the worker: a consumer with prefetch 256 hands each delivery to one of
// 16 committers, each committing a job row and an outbox row (the notification's body)
// in one transaction and then acking the cast; one outbox publisher selects the
// unpublished rows, sends them with publisher confirms in batches of up to 1000, and
// marks them published once confirmed. The time is from the first cast published to
// the k-th notification seen by a listener on the broker.
func (b *bench) pipelinedCeiling(ctx context.Context, k int) (ceilingResult, error) {
	return b.pipelined(ctx, k, false)
}

// designFloor measures k casts through the ceiling's pipeline doing the least
// DESIGN.md asks of a power-off job beyond one message: the job row is committed
// with its one step already recorded as started, together with the
// instance.power_off.start notification, and the cast acked (the ceiling's
// transaction); then one finisher records the step's end for every job waiting (up
// to 1000 in one statement: the job rows updated and each job's
// instance.power_off.end inserted into the outbox), as the worker batches
// transitions; the publisher sends both notifications. No xCAT, no history, no state
// machine: an implementation of the design can do no less per job.
func (b *bench) designFloor(ctx context.Context, k int) (ceilingResult, error) {
	return b.pipelined(ctx, k, true)
}

// pipelined is the pipelined ceiling, or with floor the design floor.
func (b *bench) pipelined(ctx context.Context, k int, floor bool) (ceilingResult, error) {
	tag := "pipelined"
	if floor {
		tag = "floor"
	}
	st, err := b.env.schema(ctx, tag)
	if err != nil {
		return ceilingResult{}, err
	}
	db := st.DB()
	// Every committer and the publisher keep their connection: with the schema's
	// idle cap (schemaIdleConns), the rest would be closed after each commit and opened again for
	// the next, and the ceiling would pay PostgreSQL's connection start-ups (about 270
	// in a 2,000-cast run). The cap returns when the row ends.
	db.SetMaxIdleConns(pipeCommitters + 2)
	defer db.SetMaxIdleConns(schemaIdleConns)
	// The floor's job rows also say when their step started and when the job ended.
	stepColumns := ""
	if floor {
		stepColumns = ", step_started timestamptz NOT NULL DEFAULT now(), finished_at timestamptz"
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE pipe_jobs (id bigserial PRIMARY KEY, message_id text UNIQUE NOT NULL,
			body bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now()`+stepColumns+`);
		CREATE TABLE pipe_outbox (id bigserial PRIMARY KEY, job_id bigint NOT NULL, body bytea NOT NULL,
			created_at timestamptz NOT NULL DEFAULT clock_timestamp(), published_at timestamptz);
		CREATE INDEX pipe_outbox_pending ON pipe_outbox (id) WHERE published_at IS NULL`); err != nil {
		return ceilingResult{}, fmt.Errorf("create tables: %w", err)
	}
	// The cast a job row holds is past the TOAST threshold; compress it as the
	// worker's tables do (migration 0011), so the ceiling pays no more than they.
	if _, err := db.ExecContext(ctx, `DO $$ BEGIN
			EXECUTE 'ALTER TABLE pipe_jobs ALTER COLUMN body SET COMPRESSION lz4';
			EXECUTE 'ALTER TABLE pipe_outbox ALTER COLUMN body SET COMPRESSION lz4';
		EXCEPTION WHEN feature_not_supported OR syntax_error THEN NULL;
		END $$`); err != nil {
		return ceilingResult{}, fmt.Errorf("compression of the tables: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	host := "bench-" + tag
	queue := "compute." + host
	event := "instance.power_off.end" // what the committers' notification says
	if floor {
		event = "instance.power_off.start"
	}
	conn, err := amqp.Dial(b.env.amqpURL)
	if err != nil {
		return ceilingResult{}, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return ceilingResult{}, fmt.Errorf("channel: %w", err)
	}
	if err := ch.Qos(pipePrefetch, 0, false); err != nil {
		return ceilingResult{}, fmt.Errorf("qos: %w", err)
	}
	if err := ch.ExchangeDeclare("nova", "topic", false, false, false, false, nil); err != nil {
		return ceilingResult{}, fmt.Errorf("declare nova: %w", err)
	}
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		return ceilingResult{}, fmt.Errorf("declare %s: %w", queue, err)
	}
	if err := ch.QueueBind(queue, queue, "nova", false, nil); err != nil {
		return ceilingResult{}, fmt.Errorf("bind %s: %w", queue, err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return ceilingResult{}, fmt.Errorf("consume: %w", err)
	}

	bo := broker.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	pubc := broker.NewConn(broker.ConnConfig{URLs: []string{b.env.amqpURL}, Name: "xcatbm-bench:pipelined:publish", Backoff: bo, Log: b.log})
	pub := &broker.Publisher{Conn: pubc}

	// One statement, one implicit transaction: the job row and its outbox row. With
	// floor, the committers hand each committed job to the finisher.
	commitSQL := `WITH j AS (INSERT INTO pipe_jobs (message_id, body) VALUES ($1, $2) RETURNING id)
		INSERT INTO pipe_outbox (job_id, body) SELECT id, $3 FROM j`
	if floor {
		commitSQL += ` RETURNING job_id`
	}
	commit, err := db.PrepareContext(ctx, commitSQL)
	if err != nil {
		return ceilingResult{}, fmt.Errorf("prepare commit: %w", err)
	}
	defer commit.Close()
	committed := make(chan int64, k)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { pubc.Run(ctx) })
	failed := make(chan error, pipeCommitters+2)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
		cancel()
	}
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	for range pipeCommitters {
		wg.Go(func() {
			for {
				var d amqp.Delivery
				var ok bool
				select {
				case <-ctx.Done():
					return
				case d, ok = <-deliveries:
					if !ok {
						return
					}
				}
				body, err := ceilingNotification(host, event)
				if err != nil {
					fail(fmt.Errorf("notification: %w", err))
					return
				}
				var id int64
				if floor {
					err = commit.QueryRowContext(ctx, messages.NewUniqueID(), d.Body, body).Scan(&id)
				} else {
					_, err = commit.ExecContext(ctx, messages.NewUniqueID(), d.Body, body)
				}
				if err != nil {
					fail(fmt.Errorf("commit: %w", err))
					return
				}
				if floor {
					committed <- id // buffered for every cast: never blocks
				}
				if err := d.Ack(false); err != nil {
					fail(fmt.Errorf("ack: %w", err))
					return
				}
				poke()
			}
		})
	}
	if floor {
		wg.Go(func() {
			if err := finishJobs(ctx, db, host, committed, poke); err != nil && ctx.Err() == nil {
				fail(err)
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-wake:
			case <-tick.C:
			}
			for {
				n, err := pipePublish(ctx, st.DB(), pub)
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("outbox: %w", err))
					}
					return
				}
				if n < pipeBatch {
					break
				}
			}
		}
	})

	bodies, err := casts("cast-stop_instance.json", k, false)
	if err != nil {
		return ceilingResult{}, err
	}
	res, err := b.storm(ctx, host, "instance.power_off.end", bodies)
	if err == nil && floor {
		// Every job's row and both notifications, or the floor did less than it says.
		var finished, outboxRows int
		if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM pipe_jobs WHERE finished_at IS NOT NULL), (SELECT count(*) FROM pipe_outbox)`).Scan(&finished, &outboxRows); err != nil {
			return ceilingResult{}, fmt.Errorf("count the floor's rows: %w", err)
		}
		if finished != k || outboxRows != 2*k {
			return ceilingResult{}, fmt.Errorf("design floor: %d jobs finished and %d outbox rows, want %d and %d", finished, outboxRows, k, 2*k)
		}
	}
	if err != nil {
		select {
		case ferr := <-failed:
			return ceilingResult{}, ferr
		default:
		}
		return ceilingResult{}, err
	}
	// The last rows' marks may still be on their way: wait for them (a few ms).
	for range 100 {
		var pending int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pipe_outbox WHERE published_at IS NULL`).Scan(&pending); err != nil {
			return ceilingResult{}, fmt.Errorf("count pending: %w", err)
		}
		if pending == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var p99 float64
	if err := db.QueryRowContext(ctx, `SELECT coalesce(percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - created_at)), 0)
		FROM pipe_outbox WHERE published_at IS NOT NULL`).Scan(&p99); err != nil {
		return ceilingResult{}, fmt.Errorf("outbox p99: %w", err)
	}
	return ceilingResult{took: res.took, cpu: res.cpu, p99: time.Duration(p99 * float64(time.Second))}, nil
}

// pipePublish sends the oldest unpublished outbox rows, at most pipeBatch, with
// publisher confirms, marks the confirmed ones published and returns how many rows it
// selected.
func pipePublish(ctx context.Context, db *sql.DB, pub *broker.Publisher) (int, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, body FROM pipe_outbox WHERE published_at IS NULL ORDER BY id LIMIT $1`, pipeBatch)
	if err != nil {
		return 0, fmt.Errorf("select: %w", err)
	}
	var ids []int64
	var msgs []broker.Message
	for rows.Next() {
		var id int64
		var body []byte
		if err := rows.Scan(&id, &body); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scan: %w", err)
		}
		ids = append(ids, id)
		msgs = append(msgs, broker.Message{Exchange: "nova", RoutingKey: "versioned_notifications.info",
			Publishing: amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Body: body}})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("select: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	errs, err := pub.Publish(ctx, msgs)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	confirmed := slices.Clone(ids)[:0]
	for i, e := range errs {
		if e == nil {
			confirmed = append(confirmed, ids[i])
		}
	}
	if _, err := db.ExecContext(ctx, `UPDATE pipe_outbox SET published_at = clock_timestamp() WHERE id = ANY($1)`, pq.Array(confirmed)); err != nil {
		return 0, fmt.Errorf("mark: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return len(ids), nil
}

// finishJobs is the design floor's finisher: it takes every committed job waiting
// (at least one, at most pipeBatch), records in one statement their step's end (the
// job rows finished, each job's instance.power_off.end in the outbox) and pokes the
// publisher, until ctx ends.
func finishJobs(ctx context.Context, db *sql.DB, host string, committed <-chan int64, poke func()) error {
	finish, err := db.PrepareContext(ctx, `WITH f AS (UPDATE pipe_jobs j SET finished_at = now() FROM unnest($1::bigint[], $2::bytea[]) AS e(id, body)
			WHERE j.id = e.id RETURNING j.id, e.body)
		INSERT INTO pipe_outbox (job_id, body) SELECT id, body FROM f ORDER BY id`)
	if err != nil {
		return fmt.Errorf("prepare finish: %w", err)
	}
	defer finish.Close()
	for {
		var ids []int64
		select {
		case <-ctx.Done():
			return nil
		case id := <-committed:
			ids = append(ids, id)
		}
	gather:
		for len(ids) < pipeBatch {
			select {
			case id := <-committed:
				ids = append(ids, id)
			default:
				break gather
			}
		}
		bodies := make([][]byte, len(ids))
		for i := range ids {
			if bodies[i], err = ceilingNotification(host, "instance.power_off.end"); err != nil {
				return fmt.Errorf("notification: %w", err)
			}
		}
		if _, err := finish.ExecContext(ctx, pq.Array(ids), pq.Array(bodies)); err != nil {
			return fmt.Errorf("finish: %w", err)
		}
		poke()
	}
}
