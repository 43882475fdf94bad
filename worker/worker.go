// Package worker turns nova's compute RPC casts into xCAT work.
//
// A message enters in the consumer (consumer.go), which decodes it with package
// messages and, in one PostgreSQL transaction, records it as a job together with its
// start notification (deduplicated by the envelope's _unique_id), and only then acks
// it. The executor (executor.go) claims runnable jobs, groups them by kind and state,
// and runs each group's step (steps.go) through xCAT: one call over the union
// noderange where the arguments match. Every step is recorded as started before it
// calls xCAT and as done after, and each transition is written with its notifications
// in one transaction; the outbox loop (outbox.go) publishes them with publisher
// confirms. The state machine itself is the table in machine.go.
//
// Calls that need no job (get_console_output, the baseapi ping) are answered at once.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"xcatbm/internal/broker"
	"xcatbm/internal/loop"
	"xcatbm/worker/configdrive"
	"xcatbm/worker/store"
	"xcatbm/xcat"
)

// DefaultMaxInFlight is Config.MaxInFlight's default. Each job a worker works on
// holds its decoded request, instance and step state in memory; with 20,000 allowed,
// a burst of 10,000 spawns went through their first steps all at once and the
// process peaked at 109–166 MB from one run to the next (bench row 4a, target 150).
// At 4,000 it peaked at 102–103 MB and reached the same state sooner (30.5 s against
// 35.8 s; BENCHMARKS.md, 2026-12-07). The others wait in PostgreSQL for room.
const DefaultMaxInFlight = 4000

// The words a Config field that takes one of a few accepts; the command line checks
// its flags against the same lists before it connects to anything.

// NotificationFormats are Config.Notifications' words.
func NotificationFormats() []string { return []string{"versioned", "unversioned", "both", "none"} }

// JobEventChoices are Config.JobEvents' words.
func JobEventChoices() []string { return []string{JobEventsRegistrations, JobEventsAll} }

// CleanModes are Config.CleanMode's words.
func CleanModes() []string { return []string{CleanMetadata, CleanFull, CleanOff} }

// Config is a worker's settings. Zero durations and counts take the defaults
// documented on each field.
type Config struct {
	// ComputeHost is the nova compute host name this worker serves (queues
	// compute.<host>, publisher_id nova-compute:<host>).
	ComputeHost string
	// MgmtNode is the xCAT management node whose nodes this worker may act on.
	MgmtNode string
	// WorkerID names this process in job leases; default hostname:pid:random.
	WorkerID string

	// Exchange is the oslo control exchange (default "nova").
	Exchange string
	// Queues are the queue declaration options; they must match the deployment's.
	Queues QueueOptions
	// Concurrency is the consumer prefetch and the largest batch of casts recorded in
	// one transaction (default 256).
	Concurrency int
	// Notifications says which notification formats to publish: "versioned",
	// "unversioned" or "both" (default "both").
	Notifications string
	// JobEvents says which jobs publish xcatbm's own xcatbm.job.end (notify.go):
	// JobEventsRegistrations (the default) or JobEventsAll.
	JobEvents string
	// DeadLetterQueue receives messages the worker cannot use (default
	// "xcatbm.dead_letter").
	DeadLetterQueue string
	// ConsoleLogDir holds per-node console logs for get_console_output (default
	// /var/log/consoles, conserver's).
	ConsoleLogDir string

	// ClaimInterval is how often the executor looks for due jobs when nothing pokes
	// it (default 250ms); ClaimBatch caps one claim (default 500); MaxInFlight caps
	// the jobs this process works on at once (default DefaultMaxInFlight).
	ClaimInterval time.Duration
	ClaimBatch    int
	MaxInFlight   int
	// GatherWindow is how long the executor waits after being told of new work
	// before it claims, so that jobs arriving together run each step together (one
	// xCAT request, one transaction). Default 20ms; negative disables.
	GatherWindow time.Duration
	// Lease is how long a claimed job stays this worker's without renewal (default
	// 10s); a crashed worker's jobs are taken over after it.
	Lease time.Duration
	// PollInterval is how often install status is polled (default 10s);
	// PowerPollInterval how often power state is checked after rpower (default 2s).
	PollInterval      time.Duration
	PowerPollInterval time.Duration
	// Deadlines per kind of job; missing kinds take defaultDeadlines.
	Deadlines map[Kind]time.Duration
	// XCATTimeout bounds one xCAT request (default 2m); XCATParallel caps
	// concurrent per-node xCAT requests of one step (default 16). XCATMaxNodes
	// caps the nodes of one request the worker makes (its sweeps and coalesced
	// steps are split to fit; default 10,000): match the xCAT client's bound.
	XCATTimeout  time.Duration
	XCATParallel int
	XCATMaxNodes int
	// Backoff paces retries of transient failures.
	Backoff broker.Backoff

	// PowerSyncInterval is how often the power states of this host's nodes are swept
	// with one rpower stat (default 5m; negative disables); PowerSyncMisses is how
	// many sweeps in a row a node may not answer before it is reported (default 3).
	PowerSyncInterval time.Duration
	PowerSyncMisses   int

	// CloudsFile is the clouds.yaml the worker reads for register_images (which names
	// its cloud) and for Neutron ports; "" searches the usual places (internal/cloud).
	// Cloud names the entry whose network service gives spawns without a fixed
	// address their port; "" turns that off.
	CloudsFile string
	Cloud      string
	// Getenv reads OS_* variables for the cloud (nil: the process environment).
	Getenv func(string) (string, bool)

	// InstallDir is the management node's install directory (site.installdir),
	// served by its web server; the tenant data of each deployment (its config
	// drive) is written under <InstallDir>/xcatbm for that node alone to fetch
	// (worker/configdrive). "" delivers no tenant data. DriveGroup is the web
	// server's group, which alone may read the trees (configdrive.StoreOptions);
	// DHCPDomain is nova's [api]dhcp_domain (configdrive.Options); LoginUser is
	// the user whose authorized_keys get the tenant's keys on images without
	// cloud-init (config_ops_bmnode --login-user; "" is root).
	InstallDir string
	DriveGroup string
	DHCPDomain string
	LoginUser  string
	// RescueOSImage is what rescue boots: an xCAT netboot osimage that runs from
	// memory and leaves the disks alone (its postbootscripts deliver the tenant's
	// key and the rescue password as a spawn's do), or "shell" for xCAT's genesis
	// shell, which only the xCAT administrator can reach. "" refuses rescue.
	RescueOSImage string
	// DriveSweepAge is how old a tenant data tree no open job uses must be
	// before the sweeper removes it (default 5m). A cast's tree is named by its job
	// within the batch that wrote it, so an older unnamed tree is an orphan: one a
	// crash left between writing it and recording its job.
	DriveSweepAge time.Duration
	// CleanMode is what happens to a node's disks between tenants (clean.go):
	// "metadata" erases every disk's signatures and partition tables, "full"
	// every disk whole, "off" or "" nothing. Cleaning needs InstallDir, where the
	// genesis runimage that erases the disks is served from.
	CleanMode string
}

// QueueOptions are oslo's queue declaration settings ([oslo_messaging_rabbit]).
type QueueOptions struct {
	// Durable is amqp_durable_queues.
	Durable bool
	// AutoDelete is amqp_auto_delete.
	AutoDelete bool
	// Quorum is rabbit_quorum_queue (implies durable).
	Quorum bool
	// HA is rabbit_ha_queues (x-ha-policy: all).
	HA bool
	// TransientTTL is rabbit_transient_queues_ttl, x-expires of fanout and reply
	// queues (default 1800s).
	TransientTTL time.Duration
	// SingleActive declares compute.<host> with x-single-active-consumer: however
	// many workers serve the host, RabbitMQ delivers its casts to one of them at a
	// time, in order, and hands the queue to another when that one goes. nova never
	// declares compute.<host> itself (only the services of the host do), so the
	// argument is the worker's to choose; the shared compute queue keeps nova's.
	SingleActive bool
}

func (c *Config) setDefaults() error {
	if c.ComputeHost == "" {
		return errors.New("compute host is required")
	}
	if c.WorkerID == "" {
		h, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.WorkerID = fmt.Sprintf("%s:%d:%s", h, os.Getpid(), hex.EncodeToString(b[:]))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	if c.Exchange == "" {
		c.Exchange = "nova"
	}
	if c.Notifications == "" {
		c.Notifications = "both"
	}
	if c.CleanMode != "" && !slices.Contains(CleanModes(), c.CleanMode) {
		return fmt.Errorf("cleaning mode %q: want one of %s", c.CleanMode, strings.Join(CleanModes(), ", "))
	}
	if !slices.Contains(NotificationFormats(), c.Notifications) {
		return fmt.Errorf("notification format %q: want one of %s", c.Notifications, strings.Join(NotificationFormats(), ", "))
	}
	if c.JobEvents == "" {
		c.JobEvents = JobEventsRegistrations
	}
	if !slices.Contains(JobEventChoices(), c.JobEvents) {
		return fmt.Errorf("job events %q: want one of %s", c.JobEvents, strings.Join(JobEventChoices(), ", "))
	}
	if c.MaxInFlight < 0 {
		return fmt.Errorf("max in flight %d: want at least 1 (0: the default)", c.MaxInFlight)
	}
	if c.DeadLetterQueue == "" {
		c.DeadLetterQueue = "xcatbm.dead_letter"
	}
	if c.ConsoleLogDir == "" {
		c.ConsoleLogDir = "/var/log/consoles"
	}
	def(&c.Queues.TransientTTL, 1800*time.Second)
	defInt(&c.Concurrency, 256)
	def(&c.ClaimInterval, 250*time.Millisecond)
	def(&c.GatherWindow, 20*time.Millisecond)
	defInt(&c.ClaimBatch, 500)
	defInt(&c.MaxInFlight, DefaultMaxInFlight)
	def(&c.Lease, 10*time.Second)
	def(&c.PollInterval, 10*time.Second)
	def(&c.PowerPollInterval, 2*time.Second)
	def(&c.XCATTimeout, 2*time.Minute)
	defInt(&c.XCATParallel, 16)
	defInt(&c.XCATMaxNodes, xcat.DefaultMaxNodes)
	def(&c.PowerSyncInterval, 5*time.Minute)
	def(&c.DriveSweepAge, 5*time.Minute)
	defInt(&c.PowerSyncMisses, 3)
	if c.Backoff.Min == 0 {
		c.Backoff = broker.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	}
	return nil
}

// Worker serves one nova compute host. Build it with New and start it with Run.
type Worker struct {
	cfg     Config
	id      string
	log     zerolog.Logger
	store   *store.Store
	xc      XCAT
	sub     *broker.Conn
	pub     *broker.Conn
	exec    *executor
	outbox  *outboxLoop
	notify  *notifier
	metrics *metrics
	nova    NovaWriter
	now     func() time.Time

	ready   chan struct{}
	network networkClient
	// drives holds the tenant data trees; nil when Config.InstallDir is "".
	drives *configdrive.Store
	// site is what the cleaning image's URL needs of xCAT's site table.
	site siteInfo
}

// Deps are the connections a worker uses.
type Deps struct {
	Store *store.Store
	XCAT  XCAT
	// AMQPURLs are tried in turn for both the consuming and publishing connection.
	AMQPURLs []string
	Log      zerolog.Logger
	// Metrics registers the worker's Prometheus metrics; nil uses a private registry.
	Metrics Registerer
	// Nova, when not nil, is told of every job so the worker writes nova's instance
	// states as nova-compute would (package worker/nova).
	Nova NovaWriter
}

// New checks cfg and returns a worker; nothing runs until Run.
func New(cfg Config, d Deps) (*Worker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if d.Store == nil || d.XCAT == nil || len(d.AMQPURLs) == 0 {
		return nil, errors.New("worker needs a store, an xCAT client and a broker URL")
	}
	w := &Worker{cfg: cfg, id: cfg.WorkerID, store: d.Store, xc: d.XCAT, nova: d.Nova, now: time.Now, ready: make(chan struct{})}
	if cfg.InstallDir != "" {
		// The install directory is xCAT's; the worker only adds its store under it.
		if fi, err := os.Stat(cfg.InstallDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("install directory %s (xCAT's site.installdir, where tenant data is served from) does not exist: set the install directory, or none to deliver no tenant data", cfg.InstallDir)
		}
		st, err := configdrive.OpenStore(cfg.InstallDir, configdrive.StoreOptions{Group: cfg.DriveGroup})
		if err != nil {
			return nil, fmt.Errorf("tenant data store under the install directory %s: %w", cfg.InstallDir, err)
		}
		w.drives = st
	}
	switch {
	case !w.cleaning():
	case w.drives == nil:
		return nil, fmt.Errorf("cleaning mode %s needs the install directory, where genesis fetches the cleaning image from", cfg.CleanMode)
	default:
		if err := w.writeCleanImage(); err != nil {
			return nil, err
		}
	}
	w.log = d.Log.With().Str("compute_host", cfg.ComputeHost).Logger()
	w.metrics = newMetrics(d.Metrics, cfg.ComputeHost)
	w.sub = broker.NewConn(broker.ConnConfig{URLs: d.AMQPURLs, Name: "xcatbm-worker:" + cfg.ComputeHost + ":consume", Backoff: cfg.Backoff, Log: w.log,
		OnReconnect: func() { w.metrics.reconnects.WithLabelValues("consume").Inc() }})
	w.pub = broker.NewConn(broker.ConnConfig{URLs: d.AMQPURLs, Name: "xcatbm-worker:" + cfg.ComputeHost + ":publish", Backoff: cfg.Backoff, Log: w.log,
		OnReconnect: func() { w.metrics.reconnects.WithLabelValues("publish").Inc() }})
	w.exec = newExecutor(w)
	w.notify = &notifier{w: w}
	w.outbox = newOutboxLoop(w)
	return w, nil
}

// ID is the name this worker holds job leases under.
func (w *Worker) ID() string { return w.id }

// Ready is closed once the worker consumes its queues (nova's casts reach it).
func (w *Worker) Ready() <-chan struct{} { return w.ready }

// Run runs the worker until ctx ends or a part of it fails for good, then stops every
// part and releases its job leases so another worker can take over at once.
func (w *Worker) Run(ctx context.Context) error {
	w.log.Info().Str("worker_id", w.id).Str("mgmt_node", w.cfg.MgmtNode).Msg("worker starting")
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { w.sub.Run(gctx); return nil })
	g.Go(func() error { w.pub.Run(gctx); return nil })
	g.Go(func() error { return w.consume(gctx) })
	g.Go(func() error { return w.exec.run(gctx) })
	g.Go(func() error { return w.outbox.run(gctx) })
	g.Go(func() error { return w.gauges(gctx) })
	if w.cfg.PowerSyncInterval > 0 {
		g.Go(func() error { return w.powerSync(gctx) })
	}
	if w.drives != nil {
		g.Go(func() error { return w.sweepDrives(gctx) })
	}
	err := g.Wait()
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if rerr := w.store.ReleaseLeases(rctx, w.id); rerr != nil {
		w.log.Warn().Err(rerr).Msg("releasing job leases failed; they expire on their own")
	}
	w.log.Info().Msg("worker stopped")
	return err
}

// gauges refreshes the queue-depth metrics every 5 seconds.
func (w *Worker) gauges(ctx context.Context) error {
	l := &loop.Loop{Name: "gauges", Interval: 5 * time.Second, Immediate: true, Log: w.log, Pass: func(ctx context.Context) (bool, error) {
		st, err := w.store.Stats(ctx, w.cfg.ComputeHost)
		if err != nil {
			return false, err
		}
		w.metrics.openJobs.Set(float64(st.Open))
		w.metrics.oldestJob.Set(st.OldestOpenAge.Seconds())
		w.metrics.outboxPending.Set(float64(st.OutboxPending))
		w.metrics.outboxLag.Set(st.OutboxLag.Seconds())
		return false, nil
	}}
	return l.Run(ctx)
}

// sweepDrives removes, every minute, the tenant data trees no unfinished job
// uses that are older than DriveSweepAge: those of jobs whose end a crash kept from
// removing them, and those written for casts never recorded.
func (w *Worker) sweepDrives(ctx context.Context) error {
	l := &loop.Loop{Name: "tenant data sweep", Interval: time.Minute, Immediate: true, Backoff: w.cfg.Backoff, Log: w.log,
		Pass: func(ctx context.Context) (bool, error) {
			_, err := w.SweepDrives(ctx)
			return false, err
		}}
	return l.Run(ctx)
}

// SweepDrives runs one sweep of the tenant data trees now and returns how many it
// removed.
func (w *Worker) SweepDrives(ctx context.Context) (int, error) {
	if w.drives == nil {
		return 0, nil
	}
	open, err := w.store.OpenConfigDrives(ctx)
	if err != nil {
		return 0, err
	}
	stale, err := w.drives.Stale(w.cfg.DriveSweepAge, func(l configdrive.Location) bool { return open[l.Path()] })
	if err != nil {
		return 0, fmt.Errorf("list tenant data: %w", err)
	}
	n := 0
	for _, e := range stale {
		if err := w.drives.Remove(e.Location); err != nil {
			w.log.Warn().Err(err).Msg("tenant data sweep: remove failed")
			continue
		}
		n++
	}
	if n > 0 {
		w.log.Info().Int("removed", n).Msg("tenant data sweep")
	}
	return n, nil
}
