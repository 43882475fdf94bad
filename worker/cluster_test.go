package worker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/internal/testkit/rabbitcluster"
	"xcatbm/internal/testkit/testdb"
	"xcatbm/worker"
	"xcatbm/worker/store"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// TestClusterLeaderStopMidStorm runs a worker against a three-node RabbitMQ cluster
// of its own (the system broker is not touched), with quorum queues and every node
// in its URL list. Halfway through a storm of spawns followed by stops, the node
// leading compute.<host> (the node the worker declared it on) is stopped. Every
// cast must still run, once and in nova's order per instance, with every end
// notification published, the worker having moved to a surviving node by itself.
//
// XCATBM_FAULTS=full (make faults) runs 60 instances; the short form 12.
func TestClusterLeaderStopMidStorm(t *testing.T) {
	t.Parallel()
	n := 12
	if os.Getenv("XCATBM_FAULTS") == "full" {
		n = 60
	}
	cl := rabbitcluster.Start(t, 3)
	var specs []sim.NodeSpec
	for i := 0; i < n; i++ {
		specs = append(specs, ipmiNode(fmt.Sprintf("q%02d", i), fmt.Sprintf("10.0.1.%d", i+1)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := sim.Start(ctx, sim.Config{Cluster: sim.NewCluster(specs...),
		Timeline: sim.Timeline{PoweringOn: 30 * time.Millisecond, Installing: 200 * time.Millisecond, Postbooting: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	fsys, dir := store.Migrations()
	e := &env{t: t, sim: srv, db: testdb.New(t, fsys, dir), urls: cl.URLs()}
	e.st = store.New(e.db.DB)
	nat, err := xcat.NewNative(xcat.NativeConfig{Addr: srv.Addr(), CredDir: srv.CredDir()})
	if err != nil {
		t.Fatal(err)
	}
	e.xc = xcat.NewClient(nat)

	cfg := testConfig()
	cfg.Queues.Quorum = true
	e.startWorker(cfg)
	queue := "compute." + host
	leader, err := cl.Nodes[1].QueueLeader(queue)
	if err != nil {
		t.Fatal(err)
	}
	lead := cl.Node(leader)
	if lead == nil {
		t.Fatalf("the leader of %s, %q, is none of the cluster's nodes", queue, leader)
	}
	// The test's own connection (casts, notifications) is on a node that stays.
	var safe *rabbitcluster.Node
	for _, node := range cl.Nodes {
		if node != lead {
			safe = node
			break
		}
	}
	e.conn, err = amqp.Dial(safe.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.conn.Close() })
	e.notes = listenOn(t, e.conn, true)
	pub := newConfirmedPublisher(t, e.conn)

	uuid := func(i int) string { return fmt.Sprintf("51515151-5151-4151-8151-%012d", i) }
	var stopped time.Time
	for k, file := range []string{"cast-build_and_run_instance.json", "cast-stop_instance.json"} {
		for i := 0; i < n; i++ {
			if k == 0 && i == n/2 {
				stopped = time.Now()
				if err := lead.Stop(); err != nil {
					t.Fatal(err)
				}
				t.Logf("stopped %s, the leader of %s, after %d casts", leader, queue, i)
			}
			pub.publish(castBody(t, castSpec{file: file, node: fmt.Sprintf("q%02d", i), uuid: uuid(i), image: image}))
		}
	}
	var moved time.Duration
	for i := 0; i < n; i++ {
		e.waitJob(uuid(i), worker.KindPowerOff, 3*time.Minute)
		jobs, err := e.st.JobsByInstance(context.Background(), uuid(i))
		if err != nil {
			t.Fatal(err)
		}
		var kinds []worker.Kind
		for _, j := range jobs {
			kinds = append(kinds, worker.Kind(j.Kind))
			if j.State != "done" {
				t.Errorf("instance %d: %s ended %s (%s)", i, j.Kind, j.State, j.Error)
			}
			if j.FinishedAt != nil && j.FinishedAt.After(stopped) && (moved == 0 || j.FinishedAt.Sub(stopped) < moved) {
				moved = j.FinishedAt.Sub(stopped)
			}
		}
		if want := []worker.Kind{worker.KindSpawn, worker.KindPowerOff}; !slices.Equal(kinds, want) {
			t.Errorf("instance %d: jobs %v, want %v (lost, repeated or out of order)", i, kinds, want)
		}
		node := fmt.Sprintf("q%02d", i)
		cmds := commands(e.sim, node)
		for _, c := range []string{"nodeset", "rpower boot", "rpower off"} {
			if got := count(cmds, c); got != 1 {
				t.Errorf("%s: %q sent %d times, want once: %v", node, c, got, cmds)
			}
		}
		if b, o := slices.Index(cmds, "rpower boot"), slices.Index(cmds, "rpower off"); b > o {
			t.Errorf("%s: powered off before it was booted: %v", node, cmds)
		}
		e.notes.waitFor(t, uuid(i), "instance.create.end")
		e.notes.waitFor(t, uuid(i), "instance.power_off.end")
	}
	// The first cast recorded after the stop tells when the worker consumed again.
	var resumed time.Time
	if err := e.db.QueryRow(`SELECT min(created_at) FROM jobs WHERE created_at > $1`, stopped).Scan(&resumed); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d instances, spawn then stop each, leader stopped after %d casts: consuming again %v and first job ended %v after the stop",
		n, n/2, resumed.Sub(stopped).Round(time.Millisecond), moved.Round(time.Millisecond))
}

// confirmedPublisher publishes with publisher confirms and publishes again what the
// broker did not confirm (a nack, a closed channel while the cluster elects a new
// leader), as a careful publisher does; the worker drops the duplicates by message id.
type confirmedPublisher struct {
	t    *testing.T
	conn *amqp.Connection
	ch   *amqp.Channel
}

func newConfirmedPublisher(t *testing.T, conn *amqp.Connection) *confirmedPublisher {
	p := &confirmedPublisher{t: t, conn: conn}
	if err := p.open(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *confirmedPublisher) open() error {
	ch, err := p.conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	p.ch = ch
	return nil
}

func (p *confirmedPublisher) publish(body []byte) {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		if p.ch == nil || p.ch.IsClosed() {
			if last = p.open(); last != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "nova", "compute."+host, true, false,
			amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Body: body})
		if err == nil {
			var ok bool
			ok, err = c.WaitContext(ctx)
			if err == nil && !ok {
				err = errors.New("nacked")
			}
		}
		cancel()
		if err == nil {
			return
		}
		last = err
		_ = p.ch.Close()
		p.ch = nil
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Fatalf("cast not confirmed within a minute: %v", last)
}
