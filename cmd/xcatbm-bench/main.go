// Command xcatbm-bench measures the worker on this machine against the real RabbitMQ
// and PostgreSQL and the in-process xCAT simulator, and prints one table: the
// throughput ceiling of the broker and database against the worker's power storm, a
// spawn storm under xCAT's latency, the control-plane spawn rate, memory and power
// sweep at scale, and notification latency, each against its target.
//
// It creates its own PostgreSQL schemas and RabbitMQ vhost and removes them when it
// ends, also after an error or an interrupt. --scale shrinks every count and the
// simulated install time (make bench-short runs --scale 0.05).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/internal/config"
	"xcatbm/worker"
)

const synopsis = `usage: xcatbm-bench [flags]

xcatbm-bench runs the worker in-process against the xCAT simulator, the local
PostgreSQL and RabbitMQ, and prints one table of measurements and targets.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if spec, ok := os.LookupEnv(childEnv); ok {
		os.Exit(runChild(ctx, spec, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the bench's flags.
type options struct {
	scale      float64
	dbURL      string
	amqpURL    string
	logLevel   string
	rowTimeout time.Duration
	coalesce   time.Duration
	cpuProfile string
	only       string
	openstack  string
	runs       int
}

// bench is one run: its settings, environment and the rows measured so far.
type bench struct {
	o    options
	env  *env
	log  zerolog.Logger
	errw io.Writer
	rows []row
	// schemas of the rows whose outbox rows feed the latency row.
	latencyStores []latencySource
	// ceilingRate is the pipelined ceiling measured in this run (row 1a), msg/s; 0
	// when row 1a was not run. Every ratio is against it.
	ceilingRate float64
}

// row is one line of the table.
type row struct {
	n       string // row number
	measure string
	value   string
	target  string
	result  string // pass, FAIL, "" (no target), error
	load    string // the machine's load averages when the row was measured
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xcatbm-bench", flag.ContinueOnError)
	var o options
	fs.Float64Var(&o.scale, "scale", 1, "scale every count and the simulated install time by `factor` (0 < factor <= 1)")
	fs.StringVar(&o.dbURL, "test-database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"PostgreSQL server `url`, the tests' one; the bench creates and drops its own schemas")
	fs.StringVar(&o.amqpURL, "test-amqp-url", "amqp://guest:guest@127.0.0.1:5672/",
		"RabbitMQ `url`, the tests' one; the bench creates and deletes its own vhost with rabbitmqctl")
	fs.StringVar(&o.logLevel, "log-level", "warn", "worker log `level` (logs go to stderr)")
	fs.DurationVar(&o.rowTimeout, "row-timeout", 15*time.Minute, "give up on a row after `duration`")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to `file` (go tool pprof)")
	fs.StringVar(&o.only, "rows", "", "run only the rows whose names contain one of these comma-separated `words` (ceiling, spawn,\ncontrol, scale (both scale rows), scale-out, latency; latency reports on the rows run before it;\nwith --openstack: registration, fake (servers on nova's fake driver and on xcatbm), openstack (both))")
	fs.StringVar(&o.openstack, "openstack", "", "run the rows against a real OpenStack control plane started by scripts/openstack/plane.sh\nstart `DIR` (make bench-openstack): only those rows, unless --rows names others")
	fs.IntVar(&o.runs, "runs", 3, "run the ceiling, the power storm and the control-plane row `n` times each (alternately for the first two); each reports its median run")
	fs.DurationVar(&o.coalesce, "coalesce-window", 20*time.Millisecond, "xCAT request coalescing window of the rows' workers (the spawn storm also runs with it off)")
	fs.Usage = config.Usage(fs, synopsis, "")
	if code, done := config.ParseCommandLine(fs, args, os.LookupEnv, stdout, stderr); done {
		return code
	}
	if o.scale <= 0 || o.scale > 1 {
		return config.UsageError(stderr, "xcatbm-bench", "--scale %v: want a factor in (0, 1]", o.scale)
	}
	if o.runs < 1 {
		return config.UsageError(stderr, "xcatbm-bench", "--runs %d: want at least 1", o.runs)
	}
	lvl, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		return config.UsageError(stderr, "xcatbm-bench", "--log-level: %v", err)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "xcatbm-bench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "xcatbm-bench:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	b := &bench{o: o, errw: stderr, log: zerolog.New(stderr).Level(lvl).With().Timestamp().Logger()}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "xcatbm-bench: "+format+"\n", a...) }
	e, err := newEnv(ctx, o.dbURL, o.amqpURL, logf)
	if err != nil {
		logf("%v", err)
		return 1
	}
	b.env = e
	defer e.close()

	// The rows' workers run in this process (the scale-out row's in processes of their
	// own, which set the same): it collects as xcatbm-worker does.
	gogc, memLimit := worker.SetGCDefaults(os.LookupEnv)
	began := time.Now()
	fmt.Fprintf(stdout, "xcatbm-bench  %s  scale %g  GOMAXPROCS %d  %s  GOGC %s  GOMEMLIMIT %s\n", began.Format(time.RFC3339), o.scale,
		runtime.GOMAXPROCS(0), runtime.Version(), gogc, memLimit)
	fmt.Fprintf(stdout, "worker settings: %s\n\n", describe(workerConfig("<host>", 0)))
	steps := []struct {
		name  string
		fn    func(context.Context) error
		plane bool // runs against the control plane of --openstack
	}{
		{"ceiling and power storm", b.rowCeiling, false},
		{"spawn storm", b.rowSpawnStorm, false},
		{"control-plane rate", b.rowControlPlane, false},
		{"scale", b.rowScale, false},
		{"scale-out", b.rowScaleOut, false},
		{"notification latency", b.rowLatency, false},
		{"openstack registration", b.rowOSRegistration, true},
		{"openstack servers vs fake driver", b.rowOSSpawnVsFake, true},
	}
	failed := false
	for _, s := range steps {
		named := o.only != "" && slices.ContainsFunc(strings.Split(o.only, ","), func(part string) bool { return strings.Contains(s.name, strings.TrimSpace(part)) })
		switch {
		case o.only != "" && !named:
			continue
		case o.only == "" && s.plane != (o.openstack != ""):
			// Without --rows: the plane's rows with --openstack, the others without.
			continue
		case s.plane && o.openstack == "":
			failed = true
			b.add(row{measure: s.name, value: "error: needs a control plane: --openstack DIR (make bench-openstack)", result: "error"})
			continue
		}
		logf("%s ...", s.name)
		if err := s.fn(ctx); err != nil {
			failed = true
			logf("%s: %v", s.name, err)
			b.add(row{measure: s.name, value: "error: " + err.Error(), result: "error"})
			if ctx.Err() != nil {
				break
			}
		}
	}
	b.print(stdout)
	if o.scale < 1 {
		fmt.Fprintf(stdout, "\nscale %g: the targets are set for scale 1 (make bench); every verdict is informational, a smoke check that the rows run, not a judgment on the targets\n", o.scale)
	}
	fmt.Fprintf(stdout, "\ntotal %s\n", time.Since(began).Round(time.Second))
	if failed {
		return 1
	}
	return 0
}

// scaled returns n scaled, at least lo.
func (b *bench) scaled(n, lo int) int {
	return max(lo, int(float64(n)*b.o.scale+0.5))
}

// add records a row and reports it on stderr at once, so a long run shows its
// progress.
func (b *bench) add(r row) {
	r.load = loadNow()
	b.rows = append(b.rows, r)
	fmt.Fprintf(b.errw, "xcatbm-bench: row %s: %s: %s  [%s %s] %s\n", r.n, r.measure, r.value, r.target, r.result, r.load)
}

// workerConfig is the bench's worker: production defaults except where a field is
// set here, with PollInterval given per row.
func workerConfig(host string, poll time.Duration) worker.Config {
	return worker.Config{
		ComputeHost:       host,
		MgmtNode:          "mn1", // sim.GenerateCluster's nodes name mn1 as servicenode and xcatmaster
		Notifications:     "versioned",
		Concurrency:       256,
		ClaimInterval:     250 * time.Millisecond,
		ClaimBatch:        500,
		MaxInFlight:       worker.DefaultMaxInFlight,
		Lease:             10 * time.Second,
		PollInterval:      poll,
		PowerPollInterval: 2 * time.Second,
		XCATTimeout:       2 * time.Minute,
		XCATParallel:      16,
		Backoff:           broker.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second},
		PowerSyncInterval: -1, // sweeps are run by the scale row itself
		ConsoleLogDir:     os.TempDir(),
	}
}

func describe(c worker.Config) string {
	poll := "per row"
	if c.PollInterval > 0 {
		poll = c.PollInterval.String()
	}
	return fmt.Sprintf("notifications=%s concurrency(prefetch)=%d claim_interval=%v claim_batch=%d max_in_flight=%d lease=%v poll=%s power_poll=%v xcat_parallel=%d xcat_timeout=%v backoff=%v..%v power_sync=off",
		c.Notifications, c.Concurrency, c.ClaimInterval, c.ClaimBatch, c.MaxInFlight, c.Lease, poll, c.PowerPollInterval, c.XCATParallel, c.XCATTimeout, c.Backoff.Min, c.Backoff.Max)
}

func (b *bench) print(w io.Writer) {
	head := row{n: "#", measure: "measure", value: "measured", target: "target", result: "result", load: "machine load (1/5/15 min)"}
	all := append([]row{head}, b.rows...)
	var wn, wm, wv, wt, wr int
	for _, r := range all {
		wn, wm, wv, wt, wr = max(wn, len(r.n)), max(wm, len(r.measure)), max(wv, len(r.value)), max(wt, len(r.target)), max(wr, len(r.result))
	}
	for i, r := range all {
		fmt.Fprintf(w, "%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", wn, r.n, wm, r.measure, wv, r.value, wt, r.target, wr, r.result, r.load)
		if i == 0 {
			fmt.Fprintln(w, strings.Repeat("-", wn+wm+wv+wt+wr+36))
		}
	}
}
