package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/internal/broker"
	"xcatbm/messages"
	"xcatbm/worker"
	"xcatbm/worker/store"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// The latency model of the spawn storm: per xCAT request and per node of its range.
var xcatLatency = sim.Latency{Fixed: 300 * time.Millisecond, PerNode: time.Millisecond}

// latencySource is a schema whose outbox feeds the notification latency row.
type latencySource struct {
	name string
	st   *store.Store
}

// startSim serves cluster with the latency and timeline given and returns an xCAT
// client for it.
func startSim(ctx context.Context, cl *sim.Cluster, lat sim.Latency, tl sim.Timeline, coalesce time.Duration) (*sim.Server, xcat.Client, error) {
	srv, err := sim.Start(ctx, sim.Config{Cluster: cl, Latency: lat, Timeline: tl})
	if err != nil {
		return nil, nil, err
	}
	nat, err := xcat.NewNative(xcat.NativeConfig{Addr: srv.Addr(), CredDir: srv.CredDir()})
	if err != nil {
		_ = srv.Close()
		return nil, nil, err
	}
	return srv, xcat.NewClient(xcat.NewCoalescer(nat, xcat.CoalesceConfig{Window: coalesce})), nil
}

// cluster is sim.GenerateCluster of n nodes managed by mn1, powered on.
func cluster(n int) *sim.Cluster {
	cl := sim.GenerateCluster("n", n, "mn1")
	for i := range cl.Nodes {
		cl.Nodes[i].Power = "on"
	}
	return cl
}

// startWorker runs a worker until the returned stop is called.
func (b *bench) startWorker(ctx context.Context, cfg worker.Config, st *store.Store, xc xcat.Client) (stop func(), err error) {
	w, err := worker.New(cfg, worker.Deps{Store: st, XCAT: xc, AMQPURLs: []string{b.env.amqpURL}, Log: b.log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Ready():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("worker stopped before consuming: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		return nil, errors.New("worker not consuming after 30s")
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			// Let the outbox publish what the row's jobs left in it, so the latency
			// row sees every notification, the slowest included.
			drainOutbox(ctx, st, time.Minute)
			cancel()
			<-done
		})
	}, nil
}

// drainOutbox waits until st's outbox has no unpublished rows, at most within.
func drainOutbox(ctx context.Context, st *store.Store, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if pending, err := outboxPending(ctx, st); err != nil || pending == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outboxPending counts st's unpublished outbox rows (the whole outbox: a bench schema
// serves one compute host).
func outboxPending(ctx context.Context, st *store.Store) (int, error) {
	stats, err := st.Stats(ctx, "")
	return stats.OutboxPending, err
}

// casts builds n casts of file for nodes n1..n (the cluster's names) with fresh uuids.
// Building them is labelled row=casts in the CPU profile: it is the bench's work
// before a row's clock starts, not the row's.
func casts(file string, n int, spawn bool) (out [][]byte, err error) {
	pprof.Do(context.Background(), pprof.Labels("row", "casts"), func(context.Context) {
		cl := sim.GenerateCluster("n", n, "mn1")
		out = make([][]byte, n)
		for i, nd := range cl.Nodes {
			var b []byte
			if b, err = castBody(castSpec{file: file, node: nd.Name, uuid: uuid.NewString(), spawn: spawn}); err != nil {
				return
			}
			out[i] = b
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// labelled runs f with the CPU profile label row=name, which every goroutine f
// starts inherits (the worker's, the simulator's, the broker clients'), so that
// `go tool pprof -tagfocus row=storm` shows one row's samples (--cpuprofile).
func labelled(ctx context.Context, name string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels("row", name), f)
}

// stormResult is a storm's time from the first cast to the last notification, and
// where the machine's CPU went meanwhile, per cast (cpuPer).
type stormResult struct {
	took time.Duration
	cpu  string
}

// storm sends bodies to compute.<host> and waits for want notifications of event from
// host.
func (b *bench) storm(ctx context.Context, host, event string, bodies [][]byte) (stormResult, error) {
	conn, err := amqp.Dial(b.env.amqpURL)
	if err != nil {
		return stormResult{}, err
	}
	defer conn.Close()
	w, err := newWatch(conn, event, ":"+host, len(bodies))
	if err != nil {
		return stormResult{}, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return stormResult{}, err
	}
	cpu := sampleCPU()
	began := time.Now()
	if err := publishCasts(ctx, ch, "compute."+host, bodies); err != nil {
		return stormResult{}, err
	}
	last, _, err := w.wait(ctx, b.o.rowTimeout)
	return stormResult{took: last.Sub(began), cpu: cpuPer(cpu, sampleCPU(), len(bodies), "cast")}, err
}

// jobStates summarizes the jobs of a schema: "done 1000" or "done 990, failed 10".
func jobStates(ctx context.Context, st *store.Store) string {
	rows, err := st.DB().QueryContext(ctx, `SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var s string
		var n int
		if rows.Scan(&s, &n) == nil {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	return strings.Join(parts, ", ")
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// workerStorm is a row's storm: k casts of castFile (for nodes n1..nk) to a worker
// with cfg against a simulator of k nodes, until k notifications of event.
type workerStorm struct {
	tag, name string // the schema's tag; the row's name in the latency row
	k         int
	cfg       worker.Config
	coalesce  time.Duration
	lat       sim.Latency
	tl        sim.Timeline
	castFile  string
	spawn     bool
	event     string
}

// workerStorm runs s on a fresh schema, which then feeds the latency row. It returns
// the time from the first cast to the last notification, the schema's store and the
// simulator, still running until done is called (done is never nil).
func (b *bench) workerStorm(ctx context.Context, s workerStorm) (res stormResult, st *store.Store, srv *sim.Server, done func(), err error) {
	var cleanup []func()
	done = func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	if st, err = b.env.schema(ctx, s.tag); err != nil {
		return res, nil, nil, done, err
	}
	b.latencyStores = append(b.latencyStores, latencySource{s.name, st})
	srv, xc, err := startSim(ctx, cluster(s.k), s.lat, s.tl, s.coalesce)
	if err != nil {
		return res, st, nil, done, err
	}
	cleanup = append(cleanup, func() { _ = srv.Close() })
	stop, err := b.startWorker(ctx, s.cfg, st, xc)
	if err != nil {
		return res, st, srv, done, err
	}
	cleanup = append(cleanup, stop)
	bodies, err := casts(s.castFile, s.k, s.spawn)
	if err != nil {
		return res, st, srv, done, err
	}
	if res, err = b.storm(ctx, s.cfg.ComputeHost, s.event, bodies); err != nil {
		return res, st, srv, done, fmt.Errorf("%s (jobs: %s): %w", s.name, jobStates(ctx, st), err)
	}
	return res, st, srv, done, nil
}

// --- 1: ceiling and power storm --------------------------------------------------

func (b *bench) rowCeiling(ctx context.Context) error {
	// The power storm is as large as the ceiling's run, so both pay their start over
	// the same number of messages; the single-batch row keeps its old size. The
	// ceiling and the storm run b.o.runs times, one after the other, so that both
	// meet the machine in the same states; each row reports its median run.
	k, kSingle := b.scaled(2000, 20), b.scaled(1000, 10)
	var ceilings, floors, storms []measured
	for i := range b.o.runs {
		var pipe ceilingResult
		var err error
		labelled(ctx, "ceiling", func(ctx context.Context) { pipe, err = b.pipelinedCeiling(ctx, k) })
		if err != nil {
			return fmt.Errorf("pipelined ceiling: %w", err)
		}
		ceilings = append(ceilings, measured{rate: rate(k, pipe.took), note: fmt.Sprintf("p99 commit->confirm %v; %s", pipe.p99.Round(time.Millisecond), pipe.cpu)})
		var fl ceilingResult
		labelled(ctx, "floor", func(ctx context.Context) { fl, err = b.designFloor(ctx, k) })
		if err != nil {
			return fmt.Errorf("design floor: %w", err)
		}
		floors = append(floors, measured{rate: rate(k, fl.took), note: fmt.Sprintf("p99 commit->confirm %v; %s", fl.p99.Round(time.Millisecond), fl.cpu)})
		ws := workerStorm{tag: "power", name: runName("power storm", i, b.o.runs), k: k, cfg: workerConfig("bench-power", time.Second), coalesce: b.o.coalesce,
			castFile: "cast-stop_instance.json", event: "instance.power_off.end"}
		var res stormResult
		var st *store.Store
		done := func() {}
		labelled(ctx, "storm", func(ctx context.Context) { res, st, _, done, err = b.workerStorm(ctx, ws) })
		if err == nil {
			storms = append(storms, measured{rate: rate(k, res.took), note: fmt.Sprintf("%s; %s", jobStates(ctx, st), res.cpu)})
		}
		done()
		if err != nil {
			return err
		}
	}
	ceiling := median(ceilings)
	b.ceilingRate = ceiling.rate
	b.add(row{n: "1a", measure: fmt.Sprintf("pipelined ceiling: %d casts, prefetch %d, %d committers (1 job row + 1 outbox row per tx), 1 outbox publisher, confirms in batches, ack after commit; %s",
		k, pipePrefetch, pipeCommitters, runsNote(ceilings, "msg/s")), value: fmt.Sprintf("%.0f msg/s", b.ceilingRate)})
	single, err := b.ceiling(ctx, kSingle)
	if err != nil {
		return fmt.Errorf("single-batch pipeline: %w", err)
	}
	b.add(row{n: "1a'", measure: fmt.Sprintf("single-batch pipeline (not a ceiling): %d casts, one batch at a time: 1 tx per batch, then publish, confirm, ack; no overlap", kSingle),
		value: fmt.Sprintf("%.0f msg/s", rate(kSingle, single))})
	storm := median(storms)
	b.add(row{n: "1b", measure: fmt.Sprintf("worker power storm: %d stop_instance, instant xCAT; %s", k, runsNote(storms, "jobs/s")),
		value: fmt.Sprintf("%.0f jobs/s", storm.rate)})
	ratio := storm.rate / b.ceilingRate
	b.add(row{n: "1c", measure: "power storm / pipelined ceiling (1b / 1a, medians)", value: fmt.Sprintf("%.2f×", ratio), target: targetStormRatio.String(), result: b.check(targetStormRatio, ratio)})
	floor := median(floors)
	b.add(row{n: "1d", measure: fmt.Sprintf("design floor of a power-off job (not the worker): the ceiling's pipeline, the job row committed with its step recorded as started + the start notification, then per batch of jobs (up to %d) one statement recording the step's end + the end notification, both notifications published; %s",
		pipeBatch, runsNote(floors, "jobs/s")), value: fmt.Sprintf("%.0f jobs/s", floor.rate)})
	b.add(row{n: "1e", measure: "design floor / pipelined ceiling (1d / 1a, medians): the best ratio row 1c could reach", value: fmt.Sprintf("%.2f×", floor.rate/b.ceilingRate)})
	b.add(row{n: "1f", measure: "power storm / design floor (1b / 1d, medians)", value: fmt.Sprintf("%.2f×", storm.rate/floor.rate)})
	return nil
}

// measured is one run of a repeated row: its rate and what it noted.
type measured struct {
	rate float64
	note string
}

// median returns the median run (the lower middle one of an even count).
func median(runs []measured) measured {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b measured) int { return cmp.Compare(a.rate, b.rate) })
	return sorted[(len(sorted)-1)/2]
}

// runsNote describes a repeated row: every run's rate in order, then the median
// run's note.
func runsNote(runs []measured, unit string) string {
	if len(runs) == 1 {
		return runs[0].note
	}
	rates := make([]string, len(runs))
	for i, r := range runs {
		rates[i] = fmt.Sprintf("%.0f", r.rate)
	}
	return fmt.Sprintf("median of %d runs (%s %s); median run: %s", len(runs), strings.Join(rates, ", "), unit, median(runs).note)
}

// runName names run i of n of a row for the latency row.
func runName(name string, i, n int) string {
	if n == 1 {
		return name
	}
	return fmt.Sprintf("%s %d", name, i+1)
}

// ceiling is row 1a' (the old row 1a, kept for comparison, not a ceiling): the
// least the worker must do per cast on the same broker and database, one batch at a
// time — consume it (same prefetch and batching), commit a row for it in one transaction
// per batch, publish one notification for it with a publisher confirm, ack — and
// returns the time from the first cast to the last notification seen.
func (b *bench) ceiling(ctx context.Context, k int) (time.Duration, error) {
	st, err := b.env.schema(ctx, "ceiling")
	if err != nil {
		return 0, err
	}
	db := st.DB()
	if _, err := db.ExecContext(ctx, `CREATE TABLE ceiling_jobs (id bigserial PRIMARY KEY, message_id text UNIQUE NOT NULL,
		body bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bo := broker.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	sub := broker.NewConn(broker.ConnConfig{URLs: []string{b.env.amqpURL}, Name: "xcatbm-bench:ceiling:consume", Backoff: bo, Log: b.log})
	pubc := broker.NewConn(broker.ConnConfig{URLs: []string{b.env.amqpURL}, Name: "xcatbm-bench:ceiling:publish", Backoff: bo, Log: b.log})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { sub.Run(ctx) })
	wg.Go(func() { pubc.Run(ctx) })
	pub := &broker.Publisher{Conn: pubc}
	const host, queue = "bench-ceiling", "compute.bench-ceiling"
	ready := make(chan struct{})
	var readyOnce sync.Once
	batch := workerConfig(host, 0).Concurrency // the worker's prefetch and batch size
	c := &broker.Consumer{
		Conn: sub, Prefetch: batch, MaxBatch: batch, Backoff: bo,
		Setup: func(ch *amqp.Channel) ([]string, error) {
			if err := ch.ExchangeDeclare("nova", "topic", false, false, false, false, nil); err != nil {
				return nil, err
			}
			if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
				return nil, err
			}
			return []string{queue}, ch.QueueBind(queue, queue, "nova", false, nil)
		},
		Ready: func() { readyOnce.Do(func() { close(ready) }) },
		Handle: func(ctx context.Context, batch []amqp.Delivery) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback() }()
			for _, d := range batch {
				if _, err := tx.ExecContext(ctx, `INSERT INTO ceiling_jobs (message_id, body) VALUES ($1, $2)`, messages.NewUniqueID(), d.Body); err != nil {
					return err
				}
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			msgs := make([]broker.Message, len(batch))
			for i := range batch {
				body, err := ceilingNotification(host, "instance.power_off.end")
				if err != nil {
					return err
				}
				msgs[i] = broker.Message{Exchange: "nova", RoutingKey: "versioned_notifications.info",
					Publishing: amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Body: body}}
			}
			errs, err := pub.Publish(ctx, msgs)
			if err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	}
	wg.Go(func() { _ = c.Run(ctx) })
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		return 0, errors.New("ceiling consumer not ready after 30s")
	}
	bodies, err := casts("cast-stop_instance.json", k, false)
	if err != nil {
		return 0, err
	}
	res, err := b.storm(ctx, host, "instance.power_off.end", bodies)
	return res.took, err
}

// ceilingNotification is the notification the ceiling's and the floor's jobs
// publish: an oslo notification as the worker's outbox sends one (messages'
// encoder), with an empty payload.
func ceilingNotification(host, event string) ([]byte, error) {
	n, err := messages.NewNotification(messages.VersionedTopic, "bench:"+host, event, messages.PriorityInfo, json.RawMessage("{}"), time.Now(), nil)
	if err != nil {
		return nil, err
	}
	return n.Encode()
}

// --- 2: spawn storm under xCAT latency ----------------------------------------------

// rowSpawnStorm runs the spawn storm with coalescing on (the xcat.Coalescer and the
// executor's gather window, as the worker runs by default) and then off.
func (b *bench) rowSpawnStorm(ctx context.Context) error {
	if err := b.spawnStorm(ctx, "on", b.o.coalesce, 0); err != nil {
		return err
	}
	return b.spawnStorm(ctx, "off", 0, -1)
}

func (b *bench) spawnStorm(ctx context.Context, label string, coalesce, gather time.Duration) error {
	k := b.scaled(2000, 10)
	install := time.Duration(float64(120*time.Second) * b.o.scale)
	poll := max(200*time.Millisecond, time.Duration(float64(10*time.Second)*b.o.scale))
	cfg := workerConfig("bench-spawn-"+label, poll)
	cfg.GatherWindow = gather
	ws := workerStorm{tag: "spawn_" + label, name: "spawn storm " + label, k: k, cfg: cfg, coalesce: coalesce,
		lat: xcatLatency, tl: sim.Timeline{Installing: install}, castFile: "cast-build_and_run_instance.json", spawn: true, event: "instance.create.end"}
	res, st, srv, done, err := b.workerStorm(ctx, ws)
	defer done()
	if err != nil {
		return err
	}
	took := res.took
	limit := install + 60*time.Second
	// The targets are the worker's as it runs by default, coalescing on; the run with
	// it off is what coalescing is measured against (rows 2a and 2b alike).
	baseline := label == "off"
	target, result := fmt.Sprintf("<= install + 60 s = %.0f s", limit.Seconds()), b.passFail(took <= limit)
	if baseline {
		target, result = "(baseline)", ""
	}
	b.add(row{n: "2a", measure: fmt.Sprintf("spawn storm, coalescing %s: %d spawns, xCAT %v/request + %v/node, install %v, poll %v (%s)", label, k, xcatLatency.Fixed, xcatLatency.PerNode, install, poll, jobStates(ctx, st)),
		value: fmt.Sprintf("%.1f s (install + %.1f s)", took.Seconds(), (took - install).Seconds()), target: target, result: result})
	recs := srv.Requests()
	for _, c := range []struct{ label, cmd, arg string }{{"nodeset", "nodeset", ""}, {"rpower boot", "rpower", "boot"}, {"nodels", "nodels", ""}} {
		reqs, nodes := 0, 0
		for _, r := range recs {
			if r.Command == c.cmd && (c.arg == "" || slices.Contains(r.Args, c.arg)) {
				reqs++
				nodes += len(r.Nodes)
			}
		}
		per := 0.0
		if nodes > 0 {
			per = float64(reqs) / (float64(nodes) / 100)
		}
		target, result := targetXCATPer100.String(), b.check(targetXCATPer100, per)
		if nodes == 0 {
			result = b.passFail(false)
		}
		if baseline {
			target, result = "(baseline)", ""
		}
		b.add(row{n: "2b", measure: fmt.Sprintf("  %s: %d requests over %d node-operations", c.label, reqs, nodes),
			value: fmt.Sprintf("%.2f req/100 nodes", per), target: target, result: result})
	}
	b.add(row{n: "2c", measure: fmt.Sprintf("  all xCAT requests (%s)", commandCounts(recs)), value: strconv.Itoa(len(recs))})
	return nil
}

// commandCounts renders how many requests of each command were served.
func commandCounts(recs []sim.Record) string {
	n := map[string]int{}
	for _, r := range recs {
		n[r.Command]++
	}
	var keys []string
	for k := range n {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, n[k])
	}
	return strings.Join(parts, ", ")
}

// --- 3: control-plane rate ---------------------------------------------------------

func (b *bench) rowControlPlane(ctx context.Context) error {
	k := b.scaled(2000, 10)
	const poll = 100 * time.Millisecond
	var runs []measured
	for i := range b.o.runs {
		ws := workerStorm{tag: "rate", name: runName("control-plane", i, b.o.runs), k: k, cfg: workerConfig("bench-rate", poll), coalesce: b.o.coalesce,
			tl: sim.Timeline{Installing: time.Millisecond}, castFile: "cast-build_and_run_instance.json", spawn: true, event: "instance.create.end"}
		var res stormResult
		var st *store.Store
		var err error
		done := func() {}
		labelled(ctx, "control", func(ctx context.Context) { res, st, _, done, err = b.workerStorm(ctx, ws) })
		if err == nil {
			runs = append(runs, measured{rate: rate(k, res.took), note: fmt.Sprintf("%.1f s, %s; %s", res.took.Seconds(), jobStates(ctx, st), res.cpu)})
		}
		done()
		if err != nil {
			return err
		}
	}
	r := median(runs)
	b.add(row{n: "3", measure: fmt.Sprintf("control plane: %d spawns, instant xCAT, install 1 ms, poll %v; %s", k, poll, runsNote(runs, "spawns/s")),
		value: fmt.Sprintf("%.0f spawns/s", r.rate)})
	if b.ceilingRate > 0 {
		ratio := r.rate / b.ceilingRate
		b.add(row{n: "3r", measure: "control-plane spawns/s / pipelined ceiling msg/s (3 / 1a, medians)", value: fmt.Sprintf("%.2f×", ratio),
			target: targetSpawnRatio.String(), result: b.check(targetSpawnRatio, ratio)})
	} else {
		b.add(row{n: "3r", measure: "control-plane spawns/s / pipelined ceiling: row 1a (ceiling) not run", target: targetSpawnRatio.String(), result: "not judged"})
	}
	return nil
}

// --- 4: scale ----------------------------------------------------------------------

func (b *bench) rowScale(ctx context.Context) error {
	m := b.scaled(10000, 10)
	st, dbURL, err := b.env.schemaURL(ctx, "scale")
	if err != nil {
		return err
	}
	const host = "bench-scale"
	cl := cluster(m)
	for i := range cl.Nodes {
		if i%2 == 1 {
			cl.Nodes[i].Power = "off"
		}
	}
	// Register the nodes as xcatbm's registration does, 500 to a transaction.
	nodes := make([]*store.Node, m)
	for i := range nodes {
		a := cl.Nodes[i].Attrs
		nodes[i] = &store.Node{Name: cl.Nodes[i].Name, ComputeHost: host, MgmtNode: "mn1", Mgt: a["mgt"], MAC: a["mac"], BMC: a["bmc"],
			CPUs: 32, MemoryMB: 131072, DiskGB: 480, ResourceClass: "baremetal", OriginalIP: a["ip"]}
	}
	for chunk := range slices.Chunk(nodes, 500) {
		if _, err := st.UpsertNodes(ctx, chunk, ""); err != nil {
			return err
		}
	}

	// Power sweeps against the latency model, by a worker that is not running (sweeps
	// need no broker): the first records every node's state, the second finds no change.
	srvB, xcB, err := startSim(ctx, cl, xcatLatency, sim.Timeline{}, b.o.coalesce)
	if err != nil {
		return err
	}
	sw, err := worker.New(workerConfig(host, 10*time.Second), worker.Deps{Store: st, XCAT: xcB, AMQPURLs: []string{b.env.amqpURL}, Log: b.log})
	if err != nil {
		_ = srvB.Close()
		return err
	}
	for i, label := range []string{"first: every state new", "second: no change"} {
		srvB.ResetRequests()
		began := time.Now()
		err := sw.SweepPower(ctx)
		took := time.Since(began)
		if err != nil {
			_ = srvB.Close()
			return fmt.Errorf("sweep: %w", err)
		}
		recs := srvB.Requests()
		r := row{n: "4b", measure: fmt.Sprintf("power sweep of %d nodes, %s; xCAT requests: %s", m, label, commandCounts(recs)),
			value: fmt.Sprintf("%.1f s, %d requests", took.Seconds(), len(recs))}
		if i == 0 {
			r.target, r.result = targetSweep.String(), b.check(targetSweep, took.Seconds())
		}
		b.add(r)
	}
	_ = srvB.Close()

	// M spawns whose install never ends, held in flight by a worker in its own process.
	srv, _, err := startSim(ctx, cl, sim.Latency{}, sim.Timeline{Installing: 24 * time.Hour}, b.o.coalesce)
	if err != nil {
		return err
	}
	defer srv.Close()
	bodies, err := casts("cast-build_and_run_instance.json", m, true)
	if err != nil {
		return err
	}
	child, err := startChildWorker(ctx, childSpec{DatabaseURL: dbURL, AMQPURL: b.env.amqpURL, XCATAddr: srv.Addr(), XCATCredDir: srv.CredDir(),
		Host: host, Poll: 10 * time.Second, Coalesce: b.o.coalesce, LogLevel: b.o.logLevel}, b.errw)
	if err != nil {
		return err
	}
	defer child.stop()
	idle := child.status("VmRSS")
	conn, err := amqp.Dial(b.env.amqpURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	// Every xCAT request of the run counts, the worker's start included.
	all := newTally()
	began := time.Now()
	if err := publishCasts(ctx, ch, "compute."+host, bodies); err != nil {
		return err
	}
	var waiting int
	deadline := time.Now().Add(b.o.rowTimeout)
	for waiting < m {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d spawns waiting for their install after %v (jobs: %s)", waiting, m, b.o.rowTimeout, jobStates(ctx, st))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		all.add(srv.TakeRequests()) // counted, not kept: the record would grow for the row's whole run
		if err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE state = 'wait_booted' AND finished_at IS NULL`).Scan(&waiting); err != nil {
			return err
		}
	}
	reached := time.Since(began)
	// Hold them through two more poll rounds of the worker.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Second):
	}
	hwm, rss := child.status("VmHWM"), child.status("VmRSS")
	if hwm == 0 {
		return errors.New("cannot read the worker process's /proc/<pid>/status")
	}
	b.add(row{n: "4a", measure: fmt.Sprintf("%d spawns in flight (in wait_booted after %.1f s); the worker's own process: RSS idle %.0f MB, now %.0f MB, peak (VmHWM)",
		m, reached.Seconds(), mb(idle), mb(rss)), value: fmt.Sprintf("%.0f MB", mb(hwm)), target: targetRSS.String(), result: b.check(targetRSS, mb(hwm))})
	all.add(srv.TakeRequests())
	if served := srv.Served(); served != all.requests {
		return fmt.Errorf("row 4c counted %d xCAT requests, the simulator served %d", all.requests, served)
	}
	b.add(row{n: "4c", measure: fmt.Sprintf("xCAT requests of the whole %d-spawn run, every one counted (%s)", m, all.commands()),
		value: fmt.Sprintf("%d requests, %.2f per 100 nodes", all.requests, float64(all.requests)/(float64(m)/100))})
	for _, c := range coalescedSteps {
		reqs, nodes := all.step(c.label)
		per := 0.0
		if nodes > 0 {
			per = float64(reqs) / (float64(nodes) / 100)
		}
		result := b.check(targetXCATPer100, per)
		if nodes == 0 {
			result = b.passFail(false)
		}
		b.add(row{n: "4c", measure: fmt.Sprintf("  %s: %d requests over %d node-operations", c.label, reqs, nodes),
			value: fmt.Sprintf("%.2f req/100 nodes", per), target: targetXCATPer100.String(), result: result})
	}
	return nil
}

// coalescedSteps are the xCAT requests the coalescer merges across jobs, counted per
// 100 node-operations (for nodels, which is polled, per 100 node-polls).
var coalescedSteps = []struct{ label, cmd, arg string }{
	{"nodeset", "nodeset", ""}, {"rpower boot", "rpower", "boot"}, {"rsetboot", "rsetboot", ""}, {"chdef", "chdef", ""}, {"nodels", "nodels", ""},
}

// tally counts xCAT requests taken from the simulator over a run, without keeping
// them.
type tally struct {
	requests int
	byCmd    map[string]int
	steps    map[string][2]int // label -> requests, node-operations
}

func newTally() *tally { return &tally{byCmd: map[string]int{}, steps: map[string][2]int{}} }

func (t *tally) add(recs []sim.Record) {
	for _, r := range recs {
		t.requests++
		t.byCmd[r.Command]++
		for _, c := range coalescedSteps {
			if r.Command == c.cmd && (c.arg == "" || slices.Contains(r.Args, c.arg)) {
				v := t.steps[c.label]
				v[0]++
				v[1] += len(r.Nodes)
				t.steps[c.label] = v
			}
		}
	}
}

func (t *tally) step(label string) (requests, nodes int) {
	v := t.steps[label]
	return v[0], v[1]
}

func (t *tally) commands() string {
	keys := make([]string, 0, len(t.byCmd))
	for k := range t.byCmd {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, t.byCmd[k])
	}
	return strings.Join(parts, ", ")
}

// ms is a latency in milliseconds for a target; rows never published make it
// infinite, since leaving them out would hide the slowest.
func ms(d time.Duration, unpublished int) float64 {
	if unpublished > 0 {
		return math.Inf(1)
	}
	return float64(d) / float64(time.Millisecond)
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// --- 5: notification latency -------------------------------------------------------

func (b *bench) rowLatency(ctx context.Context) error {
	var all []float64
	var names []string
	type part struct {
		name      string
		p50, p99  time.Duration
		published int
	}
	var parts []part
	unpublished := 0
	for _, s := range b.latencyStores {
		pending, err := outboxPending(ctx, s.st)
		if err != nil {
			return err
		}
		unpublished += pending
		rows, err := s.st.DB().QueryContext(ctx, `SELECT extract(epoch FROM published_at - created_at) FROM outbox WHERE published_at IS NOT NULL`)
		if err != nil {
			return err
		}
		var these []float64
		for rows.Next() {
			var v float64
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			these = append(these, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(these) > 0 {
			slices.Sort(these)
			parts = append(parts, part{s.name, quantile(these, 0.50), quantile(these, 0.99), len(these)})
		}
		all = append(all, these...)
		names = append(names, s.name)
	}
	if len(all) == 0 {
		return errors.New("no published notifications to measure")
	}
	slices.Sort(all)
	p99 := quantile(all, 0.99)
	measure := fmt.Sprintf("outbox insert -> broker-confirmed, %d notifications of rows %s (p50 / p99)", len(all), strings.Join(names, ", "))
	if unpublished > 0 {
		// Rows never published would be the slowest: the quantiles leave them out,
		// so the row cannot pass.
		measure += fmt.Sprintf("; %d never published", unpublished)
	}
	b.add(row{n: "5", measure: measure,
		value: fmt.Sprintf("%v / %v", quantile(all, 0.50).Round(time.Millisecond), p99.Round(time.Millisecond)), target: "p99 " + targetNotifyP99.String(), result: b.check(targetNotifyP99, ms(p99, unpublished))})
	for _, p := range parts {
		b.add(row{n: "5", measure: fmt.Sprintf("  %s: %d notifications", p.name, p.published),
			value: fmt.Sprintf("%v / %v", p.p50.Round(time.Millisecond), p.p99.Round(time.Millisecond))})
	}
	return nil
}

// quantile returns the q-quantile of sorted seconds.
func quantile(sorted []float64, q float64) time.Duration {
	return time.Duration(sorted[min(len(sorted)-1, int(q*float64(len(sorted))))] * float64(time.Second))
}
