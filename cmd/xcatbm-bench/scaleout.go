package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/messages"
	"xcatbm/publisher"
	"xcatbm/worker"
	"xcatbm/worker/store"
	"xcatbm/xcat/sim"
)

// scaleOutHosts is how many compute hosts, each with a worker process of its own,
// share the scale-out row's nodes, database and broker.
const scaleOutHosts = 10

// scaleOutConns is each scale-out worker's database pool. Ten workers with
// xcatbm-worker's default pool (--database-max-conns 16) need 160 connections, more
// than PostgreSQL's default max_connections (100) leaves; the row runs them with 5.
const scaleOutConns = 5

// rowScaleOut is row 6: 100,000 nodes (at scale 1) across ten compute hosts, one
// worker process each, one database and one broker. Each host registers its tenth of
// the nodes through a register_nodes job, takes a storm of spawns, and sweeps its
// nodes' power; the row reports each phase's rate, every worker's peak RSS and the
// database's size.
func (b *bench) rowScaleOut(ctx context.Context) error {
	per := b.scaled(100000, 200) / scaleOutHosts
	m := per * scaleOutHosts
	spawnsPer := min(per, b.scaled(2000, 10))
	st, dbURL, err := b.env.schemaURL(ctx, "scaleout")
	if err != nil {
		return err
	}
	cl := cluster(m)
	for i := range cl.Nodes {
		cl.Nodes[i].Power = "off"
	}
	srv, xc, err := startSim(ctx, cl, xcatLatency, sim.Timeline{Installing: time.Second}, b.o.coalesce)
	if err != nil {
		return err
	}
	defer srv.Close()
	hosts := make([]string, scaleOutHosts)
	children := make([]*childWorker, scaleOutHosts)
	for h := range hosts {
		hosts[h] = fmt.Sprintf("bench-out-%02d", h+1)
		c, err := startChildWorker(ctx, childSpec{DatabaseURL: dbURL, AMQPURL: b.env.amqpURL, XCATAddr: srv.Addr(), XCATCredDir: srv.CredDir(),
			Host: hosts[h], Poll: time.Second, Coalesce: b.o.coalesce, LogLevel: b.o.logLevel, MaxConns: scaleOutConns}, b.errw)
		if err != nil {
			return fmt.Errorf("worker for %s: %w", hosts[h], err)
		}
		defer c.stop()
		children[h] = c
	}
	// rangeOf is host h's nodes as one noderange, e.g. n[001-020].
	rangeOf := func(h int) string {
		first, last := cl.Nodes[h*per].Name, cl.Nodes[(h+1)*per-1].Name
		return "n[" + strings.TrimPrefix(first, "n") + "-" + strings.TrimPrefix(last, "n") + "]"
	}

	// Registration: one register_nodes job per host, all at once, followed to the end.
	pub, err := publisher.Dial(publisher.Config{URLs: []string{b.env.amqpURL}, MaxNodes: -1})
	if err != nil {
		return err
	}
	defer pub.Close()
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, scaleOutHosts)
	for h := range hosts {
		wg.Go(func() {
			job, err := pub.Submit(ctx, hosts[h], messages.MethodRegisterNodes,
				&messages.RegisterNodesArgs{NodeRange: rangeOf(h), ComputeHost: hosts[h], ResourceClass: "baremetal"}, true)
			if err != nil {
				errs <- fmt.Errorf("register %s: %w", hosts[h], err)
				return
			}
			defer job.Close()
			fctx, cancel := context.WithTimeout(ctx, b.o.rowTimeout)
			defer cancel()
			p, err := job.Follow(fctx, nil)
			if err != nil {
				errs <- fmt.Errorf("register %s: %w", hosts[h], err)
				return
			}
			if s := publisher.Summarize(job, p); s.OK != per {
				errs <- fmt.Errorf("register %s: %d of %d nodes ok (%d failed, %d pending)", hosts[h], s.OK, per, s.Failed, s.Pending)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	took := time.Since(began)
	// Worker-side: each job from its cast recorded to its end, from the jobs table.
	var span, regSlowest float64
	if err := st.DB().QueryRowContext(ctx, `SELECT coalesce(extract(epoch FROM max(finished_at) - min(created_at)), 0),
			coalesce(extract(epoch FROM max(finished_at - created_at)), 0)
		FROM jobs WHERE kind = 'register_nodes' AND finished_at IS NOT NULL`).Scan(&span, &regSlowest); err != nil {
		return fmt.Errorf("registration times: %w", err)
	}
	workerSide := "worker-side n/a"
	if span > 0 && regSlowest > 0 {
		workerSide = fmt.Sprintf("worker-side: all jobs %.1f s = %.0f nodes/s, slowest host %.1f s = %.0f nodes/s", span, float64(m)/span, regSlowest, float64(per)/regSlowest)
	}
	b.add(row{n: "6a", measure: fmt.Sprintf("scale-out registration: %d nodes, %d hosts × %d, one register_nodes job per host, all at once; %s", m, scaleOutHosts, per, workerSide),
		value: fmt.Sprintf("%.1f s, %.0f nodes/s", took.Seconds(), float64(m)/took.Seconds())})

	// A storm of spawns spread over the hosts.
	conn, err := amqp.Dial(b.env.amqpURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	bodies := make([][][]byte, scaleOutHosts)
	for h := range hosts {
		for i := range spawnsPer {
			body, err := castBody(castSpec{file: "cast-build_and_run_instance.json", node: cl.Nodes[h*per+i].Name, uuid: uuid.NewString(), spawn: true})
			if err != nil {
				return err
			}
			bodies[h] = append(bodies[h], body)
		}
	}
	began = time.Now()
	for i := range spawnsPer {
		for h := range hosts {
			if err := publishCasts(ctx, ch, "compute."+hosts[h], bodies[h][i:i+1]); err != nil {
				return err
			}
		}
	}
	want := spawnsPer * scaleOutHosts
	deadline := time.Now().Add(b.o.rowTimeout)
	for {
		var done int
		if err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE kind = 'spawn' AND finished_at IS NOT NULL`).Scan(&done); err != nil {
			return err
		}
		if done >= want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d spawns finished after %v (jobs: %s)", done, want, b.o.rowTimeout, jobStates(ctx, st))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	took = time.Since(began)
	var notDone int
	if err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE kind = 'spawn' AND state <> 'done'`).Scan(&notDone); err != nil {
		return err
	}
	if notDone > 0 {
		return fmt.Errorf("%d of %d spawns did not end done (jobs: %s)", notDone, want, jobStates(ctx, st))
	}
	b.add(row{n: "6b", measure: fmt.Sprintf("scale-out spawn storm: %d spawns, %d per host, install 1s, xCAT %v/request + %v/node (%s)", want, spawnsPer, xcatLatency.Fixed, xcatLatency.PerNode, jobStates(ctx, st)),
		value: fmt.Sprintf("%.1f s, %.0f spawns/s", took.Seconds(), float64(want)/took.Seconds())})

	// Memory of every worker, read before they stop: the sweeps need no broker and
	// run in this process, and ten idle workers' database connections would count
	// against PostgreSQL's max_connections, shared with the whole machine.
	var hwm []string
	var top int64
	for _, c := range children {
		v := c.status("VmHWM")
		top = max(top, v)
		hwm = append(hwm, fmt.Sprintf("%.0f", float64(v)/(1<<20)))
	}
	b.add(row{n: "6d", measure: fmt.Sprintf("scale-out worker peak RSS (VmHWM) of the %d processes, MB: %s", scaleOutHosts, strings.Join(hwm, " ")),
		value: fmt.Sprintf("max %.0f MB", float64(top)/(1<<20)), target: targetRSS.String(), result: b.check(targetRSS, float64(top)/(1<<20))})
	for _, c := range children {
		c.stop()
	}

	// A power sweep per host, all hosts at once, by workers in this process (sweeps
	// need no broker).
	sweeps := make([]time.Duration, scaleOutHosts)
	errs = make(chan error, scaleOutHosts)
	began = time.Now()
	for h := range hosts {
		sw, err := worker.New(workerConfig(hosts[h], 10*time.Second), worker.Deps{Store: st, XCAT: xc, AMQPURLs: []string{b.env.amqpURL}, Log: b.log})
		if err != nil {
			return err
		}
		wg.Go(func() {
			t0 := time.Now()
			if err := sw.SweepPower(ctx); err != nil {
				errs <- fmt.Errorf("sweep %s: %w", hosts[h], err)
			}
			sweeps[h] = time.Since(t0)
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	took = time.Since(began)
	slowest := time.Duration(0)
	for _, d := range sweeps {
		slowest = max(slowest, d)
	}
	b.add(row{n: "6c", measure: fmt.Sprintf("scale-out power sweep: every host sweeps its %d nodes at once", per),
		value: fmt.Sprintf("%.1f s in all, slowest host %.1f s", took.Seconds(), slowest.Seconds())})

	// The database.
	size, err := schemaSize(ctx, st)
	if err != nil {
		return err
	}
	b.add(row{n: "6e", measure: fmt.Sprintf("scale-out database size: %d nodes, %d jobs with their history and outbox", m, want+scaleOutHosts),
		value: fmt.Sprintf("%.1f MB, %.1f kB/node", float64(size)/(1<<20), float64(size)/1024/float64(m))})
	return nil
}

// schemaSize is the on-disk size of st's schema: tables, indexes and TOAST.
func schemaSize(ctx context.Context, st *store.Store) (int64, error) {
	var size int64
	err := st.DB().QueryRowContext(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r'`).Scan(&size)
	if err != nil {
		return 0, fmt.Errorf("schema size: %w", err)
	}
	return size, nil
}
