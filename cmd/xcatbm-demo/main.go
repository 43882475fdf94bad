// Command xcatbm-demo runs xcatbm's main job on one machine: a simulated xCAT
// management node with a handful of nodes, a worker on the local RabbitMQ and
// PostgreSQL, and nova's own casts (the shapes oslo.messaging puts on the wire) to
// spawn every node, power one off and on, and delete them all, with each node's
// progress shown as it happens and the notifications nova would receive listed at the
// end. It cleans up its database schema and RabbitMQ vhost and exits 0 when every
// job ended as it should.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/lib/pq"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/internal/config"
	"xcatbm/messages"
	"xcatbm/messages/novacast"
	"xcatbm/worker"
	"xcatbm/worker/store"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

const (
	host  = "xcat-mn1"
	image = "rhels7.5-x86_64-install-compute"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the demo's flags.
type options struct {
	nodes          int
	dbURL, amqpURL string
	install        time.Duration
	verbose        bool
	novaMode       string
}

const synopsis = `usage: xcatbm-demo [flags]

Runs xcatbm's main job on this machine: a simulated xCAT management node, a worker on
the local RabbitMQ and PostgreSQL, and nova's casts spawning, powering and deleting
every node, each node's progress shown as it happens. With nova's packages installed
(scripts/openstack/plane.sh install) the casts come from a real nova control plane.
Exits 0 when every job ended as it should.`

// run parses args, runs the demo and returns the exit code: 0 after --help or a demo
// that ended as it should, 1 when it did not, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xcatbm-demo", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.nodes, "nodes", 4, "number of simulated nodes to deploy")
	fs.StringVar(&o.dbURL, "database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL server to use (a schema of its own is created and dropped)")
	fs.StringVar(&o.amqpURL, "amqp-url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ server to use (a vhost of its own is created and deleted with rabbitmqctl)")
	fs.DurationVar(&o.install, "install-time", 4*time.Second, "simulated OS install time per node")
	fs.BoolVar(&o.verbose, "verbose", false, "show the worker's log lines")
	fs.StringVar(&o.novaMode, "nova", "auto", "drive the worker from a real nova control plane (scripts/openstack/plane.sh): on, off, or auto (on when nova's packages are installed)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	// The demo reads no XCATBM_ variables: those of an installed worker must not
	// point it at the worker's database or broker.
	noEnv := func(string) (string, bool) { return "", false }
	if code, done := config.ParseCommandLine(fs, args, noEnv, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 0 {
		return config.UsageError(stderr, "xcatbm-demo", "unexpected argument %q", fs.Arg(0))
	}
	if o.nodes < 1 {
		return config.UsageError(stderr, "xcatbm-demo", "--nodes %d: want at least 1", o.nodes)
	}
	withNova, err := useNova(o.novaMode)
	if err != nil {
		return config.UsageError(stderr, "xcatbm-demo", "%v", err)
	}
	if err := runDemo(ctx, o, withNova, stdout); err != nil {
		fmt.Fprintln(stderr, "xcatbm-demo:", err)
		return 1
	}
	return 0
}

// demo is what both paths share: the worker's store, the simulated management node
// and its client, and the nodes.
type demo struct {
	out     io.Writer
	began   time.Time
	db      *sql.DB
	st      *store.Store
	srv     *sim.Server
	nat     *xcat.Native
	names   []string
	install time.Duration
	logOut  io.Writer
	// installDir is the simulated management node's install directory.
	installDir string
}

// runDemo runs the demo with o, on the path with nova when withNova is set.
func runDemo(ctx context.Context, o options, withNova bool, out io.Writer) error {
	nodes, dbURL, amqpURL, install, verbose := &o.nodes, &o.dbURL, &o.amqpURL, &o.install, &o.verbose
	began := time.Now()
	limit := 3 * time.Minute
	if withNova {
		limit = 20 * time.Minute // the plane alone takes 1-4 minutes on a loaded machine
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	// A schema of the demo's own.
	suffix := strings.ReplaceAll(messages.NewUniqueID(), "-", "")[:10]
	schema := "xcatbm_demo_" + suffix
	admin, err := sql.Open("postgres", *dbURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		return fmt.Errorf("create schema (is PostgreSQL up? make services): %w", err)
	}
	defer func() { _, _ = admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) }()
	u, _ := url.Parse(*dbURL)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := store.Migrate(ctx, db); err != nil {
		return err
	}

	// The simulated management node.
	var specs []sim.NodeSpec
	var names []string
	for i := 1; i <= *nodes; i++ {
		name := fmt.Sprintf("node%02d", i)
		names = append(names, name)
		specs = append(specs, sim.NodeSpec{Name: name, Groups: []string{"all", "compute"}, Power: "off", Attrs: map[string]string{
			"mgt": "ipmi", "bmc": fmt.Sprintf("10.1.0.%d", 10+i), "ip": fmt.Sprintf("10.0.0.%d", 10+i), "mac": fmt.Sprintf("aa:bb:cc:00:00:%02x", i),
			"arch": "x86_64", "cpucount": "32", "memory": "131072MB", "disksize": "sda:480GB", "servicenode": "mn1", "xcatmaster": "mn1"}})
	}
	step := *install / 8
	// The management node's install directory: the worker writes each server's
	// config drive there, the simulated node fetches it (tenant.go).
	installDir, err := os.MkdirTemp("", "xcatbm-demo-install-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(installDir)
	srv, err := sim.Start(ctx, sim.Config{Cluster: sim.NewCluster(specs...), Latency: sim.Latency{Fixed: 20 * time.Millisecond},
		Timeline: sim.Timeline{PoweringOn: step, Installing: 6 * step, Postbooting: step}, InstallDir: installDir})
	if err != nil {
		return err
	}
	defer srv.Close()
	nat, err := xcat.NewNative(xcat.NativeConfig{Addr: srv.Addr(), CredDir: srv.CredDir()})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "simulated xCAT management node on %s with %d nodes; install takes %v\n", srv.Addr(), *nodes, *install)

	logOut := io.Discard
	if *verbose {
		logOut = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}
	}
	d := &demo{out: out, began: began, db: db, st: store.New(db), srv: srv, nat: nat, names: names, install: *install, logOut: logOut, installDir: installDir}
	if withNova {
		err = d.runNova(ctx, suffix, *verbose)
	} else {
		err = d.runCasts(ctx, *amqpURL, suffix)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\ndemo finished in %.1fs: every job ended as it should\n", time.Since(began).Seconds())
	return nil
}

// runCasts is the path without nova: the worker on a vhost of the demo's own, and
// nova's casts built by novacast published straight to compute.<host>.
func (d *demo) runCasts(ctx context.Context, amqpURL, suffix string) error {
	out, st, srv, names := d.out, d.st, d.srv, d.names
	vhost := "xcatbm-demo-" + suffix
	if err := rabbitmqctl(ctx, "add_vhost", vhost); err != nil {
		return err
	}
	defer func() { _ = rabbitmqctl(context.Background(), "delete_vhost", vhost) }()
	au, _ := url.Parse(amqpURL)
	if err := rabbitmqctl(ctx, "set_permissions", "-p", vhost, au.User.Username(), ".*", ".*", ".*"); err != nil {
		return err
	}
	au.Path = "/" + vhost
	vhostURL := au.String()

	// The worker.
	w, err := worker.New(worker.Config{ComputeHost: host, MgmtNode: "mn1", PollInterval: 200 * time.Millisecond,
		PowerPollInterval: 200 * time.Millisecond, ClaimInterval: 100 * time.Millisecond, PowerSyncInterval: -1,
		Backoff: broker.Backoff{Min: 100 * time.Millisecond, Max: time.Second}, InstallDir: d.installDir},
		worker.Deps{Store: st, XCAT: xcat.NewClient(d.nat), AMQPURLs: []string{vhostURL}, Log: zerolog.New(d.logOut)})
	if err != nil {
		return err
	}
	wctx, wstop := context.WithCancel(ctx)
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	defer func() { wstop(); <-wdone }()
	select {
	case <-w.Ready():
	case <-ctx.Done():
		return errors.New("worker did not start consuming")
	}
	fmt.Fprintf(out, "worker serving compute host %s is consuming compute.%s on vhost %s\n\n", host, host, vhost)

	conn, err := amqp.Dial(vhostURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	notes, err := watchNotifications(conn)
	if err != nil {
		return err
	}

	uuids := map[string]string{}
	for i, n := range names {
		uuids[n] = fmt.Sprintf("0b7a9b1c-3f3e-4c55-9d3a-%012d", i+1)
	}
	send := func(file, node string) error {
		body, err := novacast.Body(file, novacast.Spec{Node: node, UUID: uuids[node], Hostname: "tenant-" + node, Image: image})
		if err != nil {
			return err
		}
		return ch.PublishWithContext(ctx, "nova", "compute."+host, false, false,
			amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Body: body})
	}
	phase := func(title, file string, targets []string, kind worker.Kind) error {
		fmt.Fprintf(out, "== %s: %s cast to compute.%s for %s\n", title, strings.TrimSuffix(strings.TrimPrefix(file, "cast-"), ".json"), host, strings.Join(targets, ","))
		for _, n := range targets {
			if err := send(file, n); err != nil {
				return err
			}
		}
		return follow(ctx, out, st, srv, targets, uuids, kind)
	}
	if err := phase("spawn", novacast.TenantBuild, names, worker.KindSpawn); err != nil {
		return err
	}
	if err := d.showKeys(names); err != nil {
		return err
	}
	if err := phase("power off", novacast.Stop, names[:1], worker.KindPowerOff); err != nil {
		return err
	}
	if err := phase("power on", novacast.Start, names[:1], worker.KindPowerOn); err != nil {
		return err
	}
	if err := phase("delete", novacast.Terminate, names, worker.KindDestroy); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // the last notifications are on their way
	d.summaries(notes, "notifications nova would receive (exchange nova)")
	return nil
}

// summaries prints the notifications seen and the xCAT requests the simulated
// management node served.
func (d *demo) summaries(notes *noteLog, title string) {
	fmt.Fprintf(d.out, "\n== %s:\n", title)
	for _, line := range notes.summary() {
		fmt.Fprintln(d.out, "  "+line)
	}
	fmt.Fprintf(d.out, "\n== xCAT requests served by the simulated management node: %d\n", len(d.srv.Requests()))
	for _, line := range requestSummary(d.srv) {
		fmt.Fprintln(d.out, "  "+line)
	}
}

// follow prints each node's progress until the jobs of kind for targets finish; it
// fails when one does not end done.
func follow(ctx context.Context, out io.Writer, st *store.Store, srv *sim.Server, targets []string, uuids map[string]string, kind worker.Kind) error {
	last := map[string]string{}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		pending := 0
		for _, n := range targets {
			jobs, err := st.JobsByInstance(ctx, uuids[n])
			if err != nil {
				return err
			}
			var j *store.Job
			for _, cand := range jobs {
				if cand.Kind == string(kind) {
					j = cand
				}
			}
			line := "waiting for the cast"
			if j != nil {
				line = jobLine(j, srv, n)
				if j.Finished() && j.State != string(worker.StateDone) {
					fmt.Fprintf(out, "  %s  %s\n", n, line)
					return fmt.Errorf("%s job of %s ended %s: %s", kind, n, j.State, j.Error)
				}
			}
			if j == nil || !j.Finished() {
				pending++
			}
			if line != last[n] {
				fmt.Fprintf(out, "  %s  %s\n", n, line)
				last[n] = line
			}
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not finish: %w", kind, ctx.Err())
		case <-t.C:
		}
	}
}

// jobLine is a job's state and its node's xCAT status and power, as both paths print
// them.
func jobLine(j *store.Job, srv *sim.Server, node string) string {
	ns, _ := srv.Node(node)
	line := fmt.Sprintf("job %-3d %-15s xCAT status %-12s power %s", j.ID, j.State, orDash(ns.Status), ns.Power)
	if j.Error != "" {
		line += "  (" + j.Error + ")"
	}
	return line
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type noteLog struct {
	mu     sync.Mutex
	counts map[string]int
}

func watchNotifications(conn *amqp.Connection) (*noteLog, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.ExchangeDeclare("nova", "topic", false, false, false, false, nil); err != nil {
		return nil, err
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return nil, err
	}
	for _, key := range []string{"versioned_notifications.*", "notifications.*", "xcatbm_notifications.*"} {
		if err := ch.QueueBind(q.Name, key, "nova", false, nil); err != nil {
			return nil, err
		}
	}
	ds, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return nil, err
	}
	l := &noteLog{counts: map[string]int{}}
	go func() {
		for d := range ds {
			n, err := messages.DecodeNotification(d.Body)
			if err != nil {
				continue
			}
			l.mu.Lock()
			l.counts[fmt.Sprintf("%-40s %-34s %s", n.EventType, d.RoutingKey, n.PublisherID)]++
			l.mu.Unlock()
		}
	}()
	return l, nil
}

func (l *noteLog) summary() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, n := range l.counts {
		out = append(out, fmt.Sprintf("%3d × %s", n, k))
	}
	sort.Strings(out)
	return out
}

func requestSummary(srv *sim.Server) []string {
	counts := map[string]int{}
	for _, r := range srv.Requests() {
		key := r.Command
		if len(r.Args) > 0 && !strings.HasPrefix(r.Args[0], "-") {
			key += " " + r.Args[0]
		}
		counts[key]++
	}
	var out []string
	for k, n := range counts {
		out = append(out, fmt.Sprintf("%3d × %s", n, k))
	}
	sort.Strings(out)
	return out
}

func rabbitmqctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl %s: %v: %s (is RabbitMQ up? make services)", strings.Join(args, " "), err, out)
	}
	return nil
}
