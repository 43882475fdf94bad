package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"xcatbm/worker"
	"xcatbm/worker/store"
	"xcatbm/xcat"
)

// The memory row measures the worker alone: it runs in a child process of the bench
// (the same executable, started with childEnv set), so that its peak RSS holds neither
// the simulator's 10,000 nodes nor the casts the bench builds.
const childEnv = "XCATBM_BENCH_WORKER"

// childSpec is what the child needs to run the row's worker.
type childSpec struct {
	DatabaseURL string        `json:"database_url"`
	AMQPURL     string        `json:"amqp_url"`
	XCATAddr    string        `json:"xcat_addr"`
	XCATCredDir string        `json:"xcat_cred_dir"`
	Host        string        `json:"host"`
	Poll        time.Duration `json:"poll"`
	Coalesce    time.Duration `json:"coalesce"`
	LogLevel    string        `json:"log_level"`
	// MaxConns bounds the worker's database pool (0: 32). Ten workers of the
	// scale-out row share one PostgreSQL, whose max_connections is 100 by default.
	MaxConns int `json:"max_conns"`
}

// runChild runs the worker of spec until stdin closes; it prints "ready" on stdout
// once the worker consumes.
func runChild(ctx context.Context, raw string, stdin io.Reader, stdout, stderr io.Writer) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(stderr, "xcatbm-bench worker: %s: %v\n", childEnv, err)
		return 2
	}
	lvl, err := zerolog.ParseLevel(spec.LogLevel)
	if err != nil {
		lvl = zerolog.WarnLevel
	}
	log := zerolog.New(stderr).Level(lvl).With().Timestamp().Str("process", "bench-worker").Logger()
	worker.SetGCDefaults(os.LookupEnv) // as xcatbm-worker does
	db, err := sql.Open("postgres", spec.DatabaseURL)
	if err != nil {
		fmt.Fprintln(stderr, "xcatbm-bench worker:", err)
		return 1
	}
	defer db.Close()
	conns := spec.MaxConns
	if conns <= 0 {
		conns = 32
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	nat, err := xcat.NewNative(xcat.NativeConfig{Addr: spec.XCATAddr, CredDir: spec.XCATCredDir})
	if err != nil {
		fmt.Fprintln(stderr, "xcatbm-bench worker:", err)
		return 1
	}
	xc := xcat.NewClient(xcat.NewCoalescer(nat, xcat.CoalesceConfig{Window: spec.Coalesce}))
	w, err := worker.New(workerConfig(spec.Host, spec.Poll), worker.Deps{Store: store.New(db), XCAT: xc, AMQPURLs: []string{spec.AMQPURL}, Log: log})
	if err != nil {
		fmt.Fprintln(stderr, "xcatbm-bench worker:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, stdin); cancel() }() // the bench closes stdin to stop us
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Ready():
		fmt.Fprintln(stdout, "ready")
	case err := <-done:
		fmt.Fprintln(stderr, "xcatbm-bench worker: stopped before consuming:", err)
		return 1
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "xcatbm-bench worker:", err)
		return 1
	}
	return 0
}

// childWorker is a worker running in a child process.
type childWorker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
	once  sync.Once
}

// startChildWorker starts the bench's executable as a worker for spec and waits until
// it consumes.
func startChildWorker(ctx context.Context, spec childSpec, stderr io.Writer) (*childWorker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the bench executable: %w", err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the worker process: %w", err)
	}
	c := &childWorker{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
			}
		}
		ready <- false
		c.done <- cmd.Wait()
	}()
	select {
	case ok := <-ready:
		if ok {
			return c, nil
		}
		return nil, fmt.Errorf("worker process ended before consuming: %v", <-c.done)
	case <-time.After(60 * time.Second):
		c.stop()
		return nil, errors.New("worker process not consuming after 60s")
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// status reads a kB field of the child's /proc/<pid>/status, in bytes.
func (c *childWorker) status(field string) int64 {
	return procStatusOf(strconv.Itoa(c.cmd.Process.Pid), field)
}

// stop closes the child's stdin (a clean stop) and waits for it, killing it after 30 s.
func (c *childWorker) stop() {
	c.once.Do(func() {
		_ = c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// procStatusOf reads a kB field of /proc/<pid>/status, in bytes (0 when unreadable).
func procStatusOf(pid, field string) int64 {
	raw, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}
