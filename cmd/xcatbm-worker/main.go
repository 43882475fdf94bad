// Command xcatbm-worker serves one nova compute host from an xCAT management node: it
// consumes nova's compute RPC from RabbitMQ, runs each request's xCAT steps as a job
// persisted in PostgreSQL, and publishes nova's notifications.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"xcatbm/internal/broker"
	"xcatbm/internal/config"
	"xcatbm/internal/logging"
	"xcatbm/worker"
	"xcatbm/worker/nova"
	"xcatbm/worker/store"
	"xcatbm/xcat"
)

const synopsis = `usage: xcatbm-worker --compute-host HOST [flags]

xcatbm-worker stands in for nova-compute for one compute host: it declares and
consumes the queues compute, compute.HOST and a compute_fanout queue on OpenStack's
RabbitMQ, turns spawn, destroy, power and reboot casts into xCAT work on the nodes of
its management node, persists every step in PostgreSQL, and publishes nova's
instance notifications. Several workers may serve the same host; they share the work
through the database.`

var footer = `Queue options must equal the deployment's [oslo_messaging_rabbit] settings, or
RabbitMQ refuses the declarations (406 PRECONDITION_FAILED).

Endpoints on --listen: /metrics (Prometheus), /healthz (alive), /readyz (consuming and
the database answers).

` + fmt.Sprintf("Go's collector: GOGC=%d and GOMEMLIMIT=%dMiB unless the environment sets them.", worker.DefaultGCPercent, worker.DefaultMemoryLimit>>20)

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// signalContext returns a context canceled by SIGINT or SIGTERM, with the signal as
// its cause, so the worker's last line says why it stopped. A second signal kills
// the process as usual.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			signal.Stop(sigs)
			cancel(fmt.Errorf("received signal %s", unix.SignalName(s.(syscall.Signal))))
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

type options struct {
	computeHost, mgmtNode, workerID string
	databaseConns                   int
	transportURL, databaseURL       config.Secret
	xcat                            config.XCAT
	exchange, notifications         string
	jobEvents                       string
	deadLetter, consoleDir          string
	durable, quorum, ha, autoDel    bool
	singleActive                    bool
	transientTTL                    time.Duration
	concurrency, xcatParallel       int
	pollInterval, powerPoll         time.Duration
	spawnDeadline, powerDeadline    time.Duration
	destroyDeadline, lease          time.Duration
	xcatTimeout, powerSync          time.Duration
	xcatOutage                      time.Duration
	coalesceWindow, gatherWindow    time.Duration
	xcatReuse                       time.Duration
	coalesceMax                     int
	maxInFlight                     int
	coalesceInFlight                int
	powerMisses                     int
	listen, logFormat, logLevel     string
	cloudsYAML, cloud               string
	nova                            bool
	placementURL                    string
	placementToken                  config.Secret
	novaServiceVersion              int
	novaHostIP                      string
	novaSyncParallel                int
	installDir, driveGroup          string
	dhcpDomain, loginUser           string
	rescueOSImage, cleanMode        string
	xcatMaxNodes                    int
}

func flags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.computeHost, "compute-host", "", "the nova compute `host` this worker serves (required)")
	fs.StringVar(&o.mgmtNode, "mgmt-node", "", "`name` of the xCAT management node; nodes whose noderes.servicenode or xcatmaster names\nanother management node are refused (empty names: managed here)")
	fs.StringVar(&o.workerID, "worker-id", "", "`name` for this process in job leases (default hostname:pid:random)")
	fs.Var(&o.transportURL, "transport-url", "oslo transport `url`, rabbit://user:pass@host:5672[,user:pass@host2:5672]/vhost\n(default rabbit://guest:guest@127.0.0.1:5672/)")
	fs.Var(&o.databaseURL, "database-url", "PostgreSQL `url` (default postgres://xcatbm@127.0.0.1:5432/xcatbm?sslmode=disable)")
	fs.IntVar(&o.databaseConns, "database-max-conns", 16, "most database `connections` this process opens (0: no bound); every worker of a database\ncounts against PostgreSQL's max_connections (100 by default)")
	config.BindXCAT(fs, &o.xcat)
	fs.DurationVar(&o.xcatTimeout, "xcat-timeout", 2*time.Minute, "bound on one xCAT request")
	fs.DurationVar(&o.xcatOutage, "xcat-outage-after", time.Minute, "report not ready on /readyz once no xCAT request has reached xcatd for this long")
	fs.IntVar(&o.xcatParallel, "xcat-parallel", 16, "per-node xCAT requests one step may run at once")
	fs.IntVar(&o.xcatMaxNodes, "xcat-max-nodes", xcat.DefaultMaxNodes, "a noderange naming more nodes than this is refused before it reaches xcatd (a registration's\nnoderange); the worker's own sweeps and coalesced steps are split to fit")
	fs.StringVar(&o.installDir, "install-dir", "/install", "xCAT's install `dir` (site.installdir), served by its web server: each deployment's tenant data\n(config drive) is written under <dir>/xcatbm for its node alone to fetch (empty: no tenant data)")
	fs.StringVar(&o.driveGroup, "install-dir-group", "", "the web server's `group`, the only one besides root that may read the tenant data\n(apache, www-data, wwwrun; empty: files world-readable by exact path only)")
	fs.StringVar(&o.dhcpDomain, "dhcp-domain", "novalocal", "domain of the config drive's hostname (nova's [api] dhcp_domain)")
	fs.StringVar(&o.loginUser, "login-user", "root", "user whose authorized_keys get the tenant's keys on images without cloud-init")
	fs.StringVar(&o.cleanMode, "clean-mode", "metadata", "what happens to a node's disks after its server is deleted, before nova may place another:\nmetadata (erase every disk's signatures and partition tables), full (erase every disk\nwhole) or off; cleaning boots xCAT's genesis with an image served from --install-dir")
	fs.StringVar(&o.rescueOSImage, "rescue-osimage", "", "what rescue boots: an xCAT netboot `osimage` running from memory (the tenant's key and the\nrescue password delivered), or shell for xCAT's genesis shell (reachable by the xCAT\nadministrator only); empty refuses rescue")
	fs.DurationVar(&o.coalesceWindow, "xcat-coalesce-window", 20*time.Millisecond, "concurrent rpower, nodeset, nodels, rsetboot, rbootseq, rnetboot and makehosts\nrequests with equal arguments within this window are sent as one request (0 disables)")
	fs.DurationVar(&o.xcatReuse, "xcat-reuse-idle", 2*time.Second, "keep xcatd connections after an answer and send read-only requests (nodels, lsdef,\nrpower stat, ...) on one idle no longer than this, sparing a TLS handshake; a request that\nchanges something always gets its own connection (0: a connection per request, as\nxCAT's own client)")
	fs.IntVar(&o.coalesceMax, "xcat-coalesce-max", 1000, "a coalesced request is sent at once when it reaches this many nodes")
	fs.IntVar(&o.coalesceInFlight, "xcat-coalesce-inflight", 1, "coalesced requests of one command and arguments in flight at once; while they are,\nnew requests gather into the next one")
	fs.IntVar(&o.maxInFlight, "max-in-flight", worker.DefaultMaxInFlight, "jobs this process works on at once (each holds its decoded request in memory);\nthe others wait in PostgreSQL for room")
	fs.DurationVar(&o.gatherWindow, "gather-window", 20*time.Millisecond, "after new work arrives, wait this long before claiming it, so jobs that arrive\ntogether run their steps together")
	fs.StringVar(&o.exchange, "exchange", "nova", "oslo control exchange")
	fs.StringVar(&o.notifications, "notification-format", "both", "notifications to publish: versioned, unversioned, both or none (nova's [notifications] notification_format)")
	fs.StringVar(&o.jobEvents, "job-events", worker.JobEventsRegistrations, "which jobs publish xcatbm.job.end on xcatbm_notifications: registrations (what\nopsaddbmnode and opsaddimage follow) or all (also nova's casts, which end in nova's\nown instance notifications; for an operator who binds a queue to it)")
	fs.StringVar(&o.deadLetter, "dead-letter-queue", "xcatbm.dead_letter", "queue for messages the worker cannot use, with the reason in header x-xcatbm-reason")
	fs.StringVar(&o.consoleDir, "console-log-dir", "/var/log/consoles", "`dir` of per-node console logs for get_console_output")
	fs.BoolVar(&o.durable, "amqp-durable-queues", false, "declare durable queues (oslo amqp_durable_queues)")
	fs.BoolVar(&o.quorum, "rabbit-quorum-queue", false, "declare quorum queues (oslo rabbit_quorum_queue)")
	fs.BoolVar(&o.ha, "rabbit-ha-queues", false, "declare queues with x-ha-policy all (oslo rabbit_ha_queues)")
	fs.BoolVar(&o.singleActive, "rabbit-single-active-consumer", true, "declare compute.<host> with x-single-active-consumer, so several workers of one host take its casts in order")
	fs.BoolVar(&o.autoDel, "amqp-auto-delete", false, "auto-delete exchanges and notification queues (oslo amqp_auto_delete)")
	fs.DurationVar(&o.transientTTL, "rabbit-transient-queues-ttl", 1800*time.Second, "x-expires of the fanout queue (oslo rabbit_transient_queues_ttl)")
	fs.IntVar(&o.concurrency, "concurrency", 256, "consumer prefetch: casts taken from the broker at once and recorded in one transaction")
	fs.DurationVar(&o.pollInterval, "poll-interval", 10*time.Second, "how often install status is polled (one nodels for all waiting nodes)")
	fs.DurationVar(&o.powerPoll, "power-poll-interval", 2*time.Second, "how often power state is checked after rpower")
	fs.DurationVar(&o.spawnDeadline, "spawn-deadline", 60*time.Minute, "a spawn not booted by then fails with the last status seen")
	fs.DurationVar(&o.powerDeadline, "power-deadline", 10*time.Minute, "deadline of power on, power off and reboot jobs")
	fs.DurationVar(&o.destroyDeadline, "destroy-deadline", 15*time.Minute, "deadline of destroy jobs")
	fs.DurationVar(&o.lease, "lease", 10*time.Second, "a crashed worker's jobs are taken over after this long")
	fs.DurationVar(&o.powerSync, "power-sync-interval", 5*time.Minute, "interval of the power-state sweep over this host's nodes (0 disables)")
	fs.IntVar(&o.powerMisses, "power-sync-misses", 3, "sweeps in a row a BMC may miss before it is reported")
	fs.StringVar(&o.cloudsYAML, "clouds-yaml", "", "clouds.yaml `path` for opsaddimage's cloud and for Neutron ports (default $OS_CLIENT_CONFIG_FILE,\n./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)")
	fs.StringVar(&o.cloud, "cloud", "", "clouds.yaml entry whose network service gives a spawn without a fixed address its port\n(empty: Neutron is not used)")
	fs.BoolVar(&o.nova, "nova", false, "stand in for nova-compute: register the service, its compute nodes and resource providers,\nand write instance states through nova-conductor and placement")
	fs.StringVar(&o.placementURL, "placement-url", "http://127.0.0.1:8778", "placement API `url` (with --nova)")
	fs.Var(&o.placementToken, "placement-token", "X-Auth-Token sent to placement (with --nova; nova's service token)")
	fs.IntVar(&o.novaServiceVersion, "nova-service-version", nova.DefaultServiceVersion, "nova-compute service `version` reported (64: Zed; 61..64 work with Zed)")
	fs.StringVar(&o.novaHostIP, "nova-host-ip", "127.0.0.1", "host_ip of the compute nodes (with --nova)")
	fs.IntVar(&o.novaSyncParallel, "nova-sync-parallel", nova.DefaultSyncParallel, "`nodes` brought into nova and placement at once when registering and syncing them (with --nova)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9464", "`address` for /metrics, /healthz and /readyz (empty disables)")
	fs.StringVar(&o.logFormat, "log-format", "auto", "json, console, or auto (console on a terminal)")
	fs.StringVar(&o.logLevel, "log-level", "info", "trace, debug, info, warn or error")
}

// run runs the worker until ctx ends or it fails, and returns the exit code: 0 after
// --help or a clean stop, 1 when the worker failed, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	fs := flag.NewFlagSet("xcatbm-worker", flag.ContinueOnError)
	var o options
	flags(fs, &o)
	fs.Usage = config.Usage(fs, synopsis, footer)
	if code, done := config.ParseCommandLine(fs, args, lookup, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 0 {
		return config.UsageError(stderr, "xcatbm-worker", "unexpected argument %q", fs.Arg(0))
	}
	if o.computeHost == "" {
		return config.UsageError(stderr, "xcatbm-worker", "--compute-host (or %s) is required", config.EnvName("compute-host"))
	}
	// The flags that take one of a few words are checked here, before the worker
	// connects to anything.
	for _, f := range []struct {
		flag, value string
		want        []string
	}{
		{"notification-format", o.notifications, worker.NotificationFormats()},
		{"job-events", o.jobEvents, worker.JobEventChoices()},
		{"clean-mode", o.cleanMode, worker.CleanModes()},
	} {
		if !slices.Contains(f.want, f.value) {
			return config.UsageError(stderr, "xcatbm-worker", "--%s %q: want one of %s", f.flag, f.value, strings.Join(f.want, ", "))
		}
	}
	if o.maxInFlight < 1 {
		return config.UsageError(stderr, "xcatbm-worker", "--max-in-flight %d: want at least 1", o.maxInFlight)
	}
	if t := o.transportURL.Reveal(); t != "" {
		if _, err := broker.ParseTransportURL(t); err != nil {
			return config.UsageError(stderr, "xcatbm-worker", "--transport-url: %v", err) // the error shows the URL redacted
		}
	}
	log, err := logging.New(stderr, "xcatbm-worker", logging.Options{Format: o.logFormat, Level: o.logLevel})
	if err != nil {
		return config.UsageError(stderr, "xcatbm-worker", "%v", err)
	}
	err = serve(ctx, o, lookup, log)
	var perr *permanentError
	switch {
	case errors.As(err, &perr):
		log.Error().Err(perr.err).Str("fix", perr.fix).Msg("worker stopped: " + perr.fix)
		return exitConfig
	case err != nil:
		log.Error().Err(err).Msg("worker stopped: failed")
		return 1
	}
	reason := "its context ended"
	if cause := context.Cause(ctx); cause != nil {
		reason = cause.Error()
	}
	log.Info().Str("reason", reason).Msg("worker stopped")
	return 0
}

func serve(ctx context.Context, o options, lookup func(string) (string, bool), log zerolog.Logger) error {
	transport := o.transportURL.Reveal()
	if transport == "" {
		transport = "rabbit://guest:guest@127.0.0.1:5672/"
	}
	urls, err := broker.ParseTransportURL(transport)
	if err != nil {
		return err
	}
	dbURL := o.databaseURL.Reveal()
	if dbURL == "" {
		dbURL = "postgres://xcatbm@127.0.0.1:5432/xcatbm?sslmode=disable"
	}
	db, err := openDatabase(dbURL, o.databaseConns)
	if err != nil {
		return err
	}
	defer db.Close()
	// Start-up in a fixed order, each step's first error saying what to fix:
	// configuration (above), database, broker, xcatd, then OpenStack.
	if err := waitDB(ctx, db, dbURL, log); err != nil {
		return err
	}
	applied, err := store.Migrate(ctx, db)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		log.Info().Strs("migrations", applied).Msg("database migrated")
	}
	if err := waitBroker(ctx, urls, log); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	health := worker.NewXCATHealth(reg, log, o.xcatOutage)
	xc, err := xcatClient(ctx, o, lookup, reg, health, log)
	if err != nil {
		return err
	}
	cfg := worker.Config{
		ComputeHost: o.computeHost, MgmtNode: o.mgmtNode, WorkerID: o.workerID, Exchange: o.exchange,
		Queues: worker.QueueOptions{Durable: o.durable, Quorum: o.quorum, HA: o.ha, AutoDelete: o.autoDel, TransientTTL: o.transientTTL,
			SingleActive: o.singleActive},
		Concurrency: o.concurrency, Notifications: o.notifications, JobEvents: o.jobEvents, DeadLetterQueue: o.deadLetter, ConsoleLogDir: o.consoleDir,
		PollInterval: o.pollInterval, PowerPollInterval: o.powerPoll, Lease: o.lease, XCATTimeout: o.xcatTimeout, XCATParallel: o.xcatParallel,
		Deadlines: map[worker.Kind]time.Duration{worker.KindSpawn: o.spawnDeadline, worker.KindDestroy: o.destroyDeadline,
			worker.KindPowerOn: o.powerDeadline, worker.KindPowerOff: o.powerDeadline, worker.KindReboot: o.powerDeadline},
		PowerSyncInterval: o.powerSync, PowerSyncMisses: o.powerMisses, GatherWindow: o.gatherWindow, MaxInFlight: o.maxInFlight,
		CloudsFile: o.cloudsYAML, Cloud: o.cloud, Getenv: lookup,
		XCATMaxNodes: o.xcatMaxNodes, InstallDir: o.installDir, DriveGroup: o.driveGroup, DHCPDomain: o.dhcpDomain,
		LoginUser: o.loginUser, RescueOSImage: o.rescueOSImage, CleanMode: o.cleanMode,
	}
	if o.powerSync == 0 {
		cfg.PowerSyncInterval = -1
	}
	if cfg.WorkerID == "" {
		// One name for the job leases and the nova-compute lease of this process.
		h, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.WorkerID = fmt.Sprintf("%s:%d:%s", h, os.Getpid(), hex.EncodeToString(b[:]))
	}
	st := store.New(db)
	deps := worker.Deps{Store: st, XCAT: xc, AMQPURLs: urls, Log: log, Metrics: reg}
	var novaConn *broker.Conn
	var novaSvc *nova.Service
	if o.nova {
		novaConn = broker.NewConn(broker.ConnConfig{URLs: urls, Name: "xcatbm-worker:" + o.computeHost + ":nova", Log: log,
			Backoff: broker.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}})
		novaSvc, err = nova.New(nova.Config{ComputeHost: o.computeHost, ServiceVersion: o.novaServiceVersion, HostIP: o.novaHostIP, SyncParallel: o.novaSyncParallel, Holder: cfg.WorkerID},
			nova.Deps{Conn: novaConn, Store: st, Placement: &nova.Placement{URL: o.placementURL, Token: o.placementToken}, Log: log})
		if err != nil {
			return err
		}
		deps.Nova = novaSvc
	}
	w, err := worker.New(cfg, deps)
	if err != nil {
		// worker.New only checks the settings it was given.
		return &permanentError{fix: "a setting is not usable", err: err}
	}
	gogc, memLimit := worker.SetGCDefaults(lookup)
	log.Info().Str("transport_url", config.RedactURL(transport)).Str("database", config.RedactURL(dbURL)).
		Str("xcat_backend", o.xcat.Backend).Str("gogc", gogc).Str("gomemlimit", memLimit).Msg("configured")
	if o.listen != "" {
		srv := &http.Server{Addr: o.listen, Handler: endpoints(reg, db, w, health), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Str("listen", o.listen).Msg("metrics endpoint failed")
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	if novaSvc == nil {
		return w.Run(ctx)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { novaConn.Run(gctx); return nil })
	g.Go(func() error { return novaSvc.Run(gctx) })
	g.Go(func() error { return w.Run(gctx) })
	return g.Wait()
}

func xcatClient(ctx context.Context, o options, lookup func(string) (string, bool), reg prometheus.Registerer, health *worker.XCATHealth, log zerolog.Logger) (xcat.Client, error) {
	switch o.xcat.Backend {
	case "native":
		host := o.xcat.Host
		if host == "" {
			host, _ = lookup("XCATHOST")
		}
		n, err := xcat.NewNative(xcat.NativeConfig{Addr: host, CredDir: o.xcat.CredDir, ReuseIdle: o.xcatReuse})
		if err != nil {
			return nil, &permanentError{fix: fmt.Sprintf("xcatd's client credentials are not usable: copy ca.pem and client-cred.pem of an xCAT user (~/.xcat on the management node) into --xcat-cred-dir (%s)",
				config.EnvName("xcat-cred-dir")), err: err}
		}
		if err := probeXCAT(ctx, n, log); err != nil {
			return nil, err
		}
		return xcat.NewClient(coalesce(health.Watch(worker.InstrumentXCAT(n, reg)), o), xcat.WithMaxNodes(o.xcatMaxNodes)), nil
	case "cli":
		return xcat.NewClient(coalesce(health.Watch(worker.InstrumentXCAT(xcat.NewCLI(xcat.CLIConfig{Dir: o.xcat.CLIDir}), reg)), o), xcat.WithMaxNodes(o.xcatMaxNodes)), nil
	default:
		return nil, fmt.Errorf("--xcat-backend %q: want native or cli", o.xcat.Backend)
	}
}

// coalesce puts the request coalescer in front of b (a zero window sends every
// request as is).
func coalesce(b xcat.Backend, o options) xcat.Backend {
	return xcat.NewCoalescer(b, xcat.CoalesceConfig{Window: o.coalesceWindow, MaxNodes: o.coalesceMax, MaxInFlight: o.coalesceInFlight})
}

func endpoints(reg *prometheus.Registry, db *sql.DB, w *worker.Worker, health *worker.XCATHealth) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(rw, "ok\n") })
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-w.Ready():
		default:
			http.Error(rw, "not consuming yet", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := db.PingContext(ctx); err != nil {
			http.Error(rw, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if why := health.Down(); why != "" {
			http.Error(rw, why, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(rw, "ready\n")
	})
	return mux
}

// openDatabase opens the worker's pool: at most conns connections (0: no bound),
// all of them kept while busy. database/sql keeps 2 idle connections unless told
// otherwise, so under load the rest would be closed after each use and opened
// again, and every opening costs PostgreSQL a backend start-up. What the pool
// opened is given back after a quiet minute.
func openDatabase(url string, conns int) (*sql.DB, error) {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", config.RedactURL(url), err)
	}
	db.SetMaxOpenConns(conns)
	idle := conns
	if idle <= 0 {
		idle = 16
	}
	db.SetMaxIdleConns(idle)
	db.SetConnMaxIdleTime(time.Minute)
	return db, nil
}
