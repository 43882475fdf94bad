package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/internal/testkit/testamqp"
	"xcatbm/internal/testkit/testdb"
	"xcatbm/messages/novacast"
	"xcatbm/worker"
	"xcatbm/worker/store"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

const host = "xcat-mn1"

// env is one worker (or more) on a fresh schema and vhost, against a simulator.
type env struct {
	t     *testing.T
	sim   *sim.Server
	db    *testdb.DB
	st    *store.Store
	vh    *testamqp.Vhost
	conn  *amqp.Connection
	ch    *amqp.Channel
	xc    xcat.Client
	notes *noteLog
	// urls are the broker URLs the workers are given; empty: the vhost's.
	urls []string
}

func newEnv(t *testing.T, nodes ...sim.NodeSpec) *env {
	t.Helper()
	return newEnvWith(t, nil, nodes...)
}

// newEnvWith is newEnv with the simulator's configuration adjusted by adjust.
func newEnvWith(t *testing.T, adjust func(*sim.Config), nodes ...sim.NodeSpec) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := sim.Config{Cluster: sim.NewCluster(nodes...)}
	if adjust != nil {
		adjust(&cfg)
	}
	srv, err := sim.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	fsys, dir := store.Migrations()
	e := &env{t: t, sim: srv, db: testdb.New(t, fsys, dir), vh: testamqp.New(t)}
	e.st = store.New(e.db.DB)
	nat, err := xcat.NewNative(xcat.NativeConfig{Addr: srv.Addr(), CredDir: srv.CredDir()})
	if err != nil {
		t.Fatal(err)
	}
	e.xc = xcat.NewClient(nat)
	e.conn, err = amqp.Dial(e.vh.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.conn.Close() })
	e.ch, err = e.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	e.notes = listen(t, e.conn)
	return e
}

// ipmiNode is a simulated IPMI node managed by the worker's management node.
func ipmiNode(name, ip string) sim.NodeSpec {
	return sim.NodeSpec{Name: name, Groups: []string{"all", "compute"}, Power: "off", Attrs: map[string]string{
		"mgt": "ipmi", "ip": ip, "mac": "aa:bb:cc:00:00:" + name[len(name)-2:], "bmc": name + "-bmc",
	}}
}

func testConfig() worker.Config {
	return worker.Config{
		ComputeHost: host, MgmtNode: "mn1", ClaimInterval: 30 * time.Millisecond, Lease: 2 * time.Second,
		PollInterval: 40 * time.Millisecond, PowerPollInterval: 40 * time.Millisecond, XCATTimeout: 10 * time.Second,
		Backoff: broker.Backoff{Min: 30 * time.Millisecond, Max: 300 * time.Millisecond}, PowerSyncInterval: -1,
		Queues:        worker.QueueOptions{SingleActive: true},
		ConsoleLogDir: "testdata/consoles",
	}
}

// startWorker runs a worker until the returned stop is called (or the test ends).
func (e *env) startWorker(cfg worker.Config) (stop func()) {
	e.t.Helper()
	return e.startWorkerWith(cfg, nil)
}

// startWorkerWith is startWorker with a nova integration (nil: none).
func (e *env) startWorkerWith(cfg worker.Config, nova worker.NovaWriter) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	urls := e.urls
	if len(urls) == 0 {
		urls = []string{e.vh.URL}
	}
	w, err := worker.New(cfg, worker.Deps{Store: e.st, XCAT: e.xc, AMQPURLs: urls, Nova: nova,
		Log: zerolog.New(zerolog.NewTestWriter(e.t)).Level(zerolog.InfoLevel)})
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	select {
	case <-w.Ready():
	case <-time.After(20 * time.Second):
		e.t.Fatal("worker not consuming after 20s")
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

// castSpec says how to adapt a golden cast vector.
type castSpec struct {
	file, node, uuid, hostname, image string
	ip, cidr                          string
	version, method                   string
	uniqueID                          string
	replyQueue                        string
	secret                            string // auth token and admin password
	userData                          string // base64
	args                              map[string]any
}

// cast publishes a golden vector from testdata, adapted, to compute.<host>.
func (e *env) cast(c castSpec) string {
	e.t.Helper()
	body := castBody(e.t, c)
	err := e.ch.PublishWithContext(context.Background(), "nova", "compute."+host, false, false,
		amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Body: body})
	if err != nil {
		e.t.Fatal(err)
	}
	return c.uuid
}

func castBody(t *testing.T, c castSpec) []byte {
	t.Helper()
	body, err := novacast.Body(c.file, novacast.Spec{Node: c.node, UUID: c.uuid, Hostname: c.hostname, Image: c.image,
		NoImage: c.image == "", IP: c.ip, CIDR: c.cidr, Method: c.method, Version: c.version, UniqueID: c.uniqueID,
		ReplyQueue: c.replyQueue, AuthToken: c.secret, AdminPassword: c.secret, UserData: c.userData, Args: c.args})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// waitJob waits until the newest job of kind for instance has finished.
func (e *env) waitJob(uuid string, kind worker.Kind, within time.Duration) *store.Job {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		jobs, err := e.st.JobsByInstance(context.Background(), uuid)
		if err != nil {
			e.t.Fatal(err)
		}
		for i := len(jobs) - 1; i >= 0; i-- {
			if jobs[i].Kind == string(kind) && jobs[i].Finished() {
				return jobs[i]
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	e.t.Fatalf("no finished %s job for %s within %v", kind, uuid, within)
	return nil
}

// noteLog collects every notification published on the vhost.
type noteLog struct {
	mu    sync.Mutex
	notes []map[string]any
}

func listen(t *testing.T, conn *amqp.Connection) *noteLog {
	t.Helper()
	return listenOn(t, conn, false)
}

// listenOn is listen where the exchange is declared durable or not, as the
// workers declare it (durable with quorum or durable queues).
func listenOn(t *testing.T, conn *amqp.Connection, durable bool) *noteLog {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("nova", "topic", durable, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"versioned_notifications.*", "notifications.*", "xcatbm_notifications.*"} {
		if err := ch.QueueBind(q.Name, key, "nova", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &noteLog{}
	go func() {
		for d := range ds {
			var env map[string]string
			var n map[string]any
			if json.Unmarshal(d.Body, &env) == nil && json.Unmarshal([]byte(env["oslo.message"]), &n) == nil {
				l.mu.Lock()
				l.notes = append(l.notes, n)
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// events returns the event types seen for an instance, in order.
func (l *noteLog) events(uuid string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, n := range l.notes {
		b, _ := json.Marshal(n["payload"])
		if strings.Contains(string(b), uuid) {
			out = append(out, n["event_type"].(string))
		}
	}
	return out
}

func (l *noteLog) waitFor(t *testing.T, uuid, event string) {
	t.Helper()
	for i := 0; i < 400; i++ {
		for _, e := range l.events(uuid) {
			if e == event {
				return
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("no %s notification for %s; saw %v", event, uuid, l.events(uuid))
}

// commands lists the xCAT commands the simulator served for node, with their first
// argument, in order.
func commands(s *sim.Server, node string) []string {
	var out []string
	for _, r := range s.NodeCalls(node) {
		c := r.Command
		for _, a := range r.Args {
			if !strings.HasPrefix(a, "-") {
				c += " " + a
				break
			}
		}
		out = append(out, c)
	}
	return out
}

func count(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}
