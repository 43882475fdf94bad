package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/internal/testkit/rabbitcluster"
	"xcatbm/internal/testkit/testamqp"
	"xcatbm/internal/testkit/testdb"
	"xcatbm/messages/novacast"
	"xcatbm/worker/store"
	"xcatbm/xcat/sim"
)

const (
	host  = "xcat-mn1"
	image = "rhels7.5-x86_64-install-compute"
)

// workerBin is the worker binary built once by TestMain.
var workerBin string

// table collects every scenario's results; TestMain prints it.
var table Table

func full() bool { return os.Getenv("XCATBM_FAULTS") == "full" }

// sized is short in the short form (make test) and long in the full one (make faults).
func sized(short, long int) int {
	if full() {
		return long
	}
	return short
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xcatbm-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "xcatbm-worker")
	out, err := exec.Command("go", "build", "-o", workerBin, "xcatbm/cmd/xcatbm-worker").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build worker: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if !table.Empty() {
		fmt.Println("\nreliability table:")
		table.Write(os.Stdout)
		if p := os.Getenv("XCATBM_FAULTS_TABLE"); p != "" {
			if f, err := os.Create(p); err == nil {
				table.Write(f)
				_ = f.Close()
			}
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// env is one scenario's world: a simulator, a schema, a vhost and the worker process.
type env struct {
	t       *testing.T
	sim     *sim.Server
	db      *testdb.DB
	st      *store.Store
	vh      *testamqp.Vhost
	node    *rabbitcluster.Node // the private broker, when the scenario stops it
	pub     *amqp.Connection
	ch      *amqp.Channel
	notes   *noteLog
	logPath string
	extra   []string // extra worker flags
	// installDir is the install directory the worker writes tenant data to and
	// the simulator's nodes fetch it from.
	installDir string
	// before holds every node's lsdef attributes (but residueIgnored) as the
	// scenario began: what a node of a deleted or failed instance must be again.
	before map[string]map[string]string

	mu      sync.Mutex
	proc    *exec.Cmd
	exited  chan struct{}
	starts  int
	killed  int // worker processes SIGKILLed
	resumes []time.Duration
}

// newEnv starts the simulator with n IPMI nodes named n01.. and the canary as BMC
// password, and prepares a schema and a vhost; the worker is not started.
func newEnv(t *testing.T, n int, extra ...string) *env {
	t.Helper()
	return newEnvOn(t, nil, n, extra...)
}

// newEnvOn is newEnv with the worker, the casts and the notifications on node, a
// private broker the scenario may stop, instead of a vhost of the shared one.
func newEnvOn(t *testing.T, node *rabbitcluster.Node, n int, extra ...string) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cl := sim.GenerateCluster("n", n, "mn1")
	cl.Passwd["ipmi"] = sim.PasswdEntry{Username: "ADMIN", Password: Canary}
	cl.OSImages[rescueImage] = map[string]string{"profile": "compute", "imagetype": "linux", "provmethod": "netboot",
		"osname": "Linux", "osvers": "rescue", "osarch": "x86_64"}
	for i := range cl.Nodes {
		cl.Nodes[i].Name = nodeName(i + 1)
		cl.Nodes[i].Attrs["bmcpassword"] = Canary
		cl.Nodes[i].Attrs["bmcusername"] = "ADMIN"
	}
	// xcatd's behaviours on: nodes answered in completion order, kept connections
	// closed by the server as xcatd closes them.
	installDir := t.TempDir()
	srv, err := sim.Start(ctx, sim.Config{Cluster: cl, InstallDir: installDir,
		// A node takes over a second from rpower boot to its installer's first report,
		// as a real one takes many: within one second of note_status, "installing"
		// again would read as unchanged (statustime has whole seconds), and the boot
		// recovery could not tell that rpower boot had run.
		Timeline:  sim.Timeline{PoweringOn: 1100 * time.Millisecond, Installing: 300 * time.Millisecond, Postbooting: 100 * time.Millisecond},
		Latency:   sim.Latency{Fixed: 40 * time.Millisecond},
		Shuffle:   true,
		CloseKept: &sim.XcatdKeptClose})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	fsys, dir := store.Migrations()
	e := &env{t: t, sim: srv, db: testdb.New(t, fsys, dir), extra: extra, installDir: installDir, node: node,
		before: map[string]map[string]string{}}
	for i := 1; i <= n; i++ {
		e.before[nodeName(i)] = e.lsdef(nodeName(i))
	}
	if node != nil {
		e.vh = &testamqp.Vhost{Name: "/", URL: node.URL()}
	} else {
		e.vh = testamqp.New(t)
	}
	e.st = store.New(e.db.DB)
	e.logPath = filepath.Join(t.TempDir(), "worker.log")
	e.pub, err = amqp.Dial(e.vh.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.pub.Close() })
	e.ch, err = e.pub.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ch.ExchangeDeclare("nova", "topic", e.durable(), false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	e.notes = listen(t, e.vh.URL, e.durable())
	t.Cleanup(e.stop)
	return e
}

// durable reports whether the worker declares durable objects (oslo: durable or
// quorum queues), which the test's own declarations of the exchange must match.
func (e *env) durable() bool {
	for _, a := range e.extra {
		if a == "--amqp-durable-queues" || a == "--rabbit-quorum-queue" {
			return true
		}
	}
	return false
}

// start runs a new worker process and waits until it consumes its queues. After a
// kill it also measures the time to the first transition the new process records.
func (e *env) start() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	began := time.Now()
	e.proc, e.exited = e.launch("")
	e.starts++
	if e.starts > 1 {
		go e.measureResume(began)
	}
}

// launch runs a worker process with the scenario's command line (plus --worker-id
// id when id is set), logging to the scenario's log, and waits until it consumes;
// the channel closes when the process has exited.
func (e *env) launch(id string) (*exec.Cmd, chan struct{}) {
	e.t.Helper()
	before := readyLines(e.logPath)
	f, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	args := e.workerArgs()
	if id != "" {
		args = append(args, "--worker-id", id)
	}
	cmd := exec.Command(workerBin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "HOME="+e.t.TempDir())
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	_ = f.Close()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.After(30 * time.Second)
	for readyLines(e.logPath) <= before {
		select {
		case <-exited:
			e.t.Fatalf("worker %s exited before consuming; log:\n%s", id, tail(e.logPath))
		case <-deadline:
			e.t.Fatalf("worker %s not consuming after 30s; log:\n%s", id, tail(e.logPath))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return cmd, exited
}

// workerArgs is the command line of a worker process of the scenario.
func (e *env) workerArgs() []string {
	args := []string{"--compute-host", host, "--mgmt-node", "mn1",
		"--database-url", e.db.URL, "--transport-url", e.vh.URL,
		"--xcat-host", e.sim.Addr(), "--xcat-cred-dir", e.sim.CredDir(),
		"--poll-interval", "50ms", "--power-poll-interval", "50ms", "--lease", workerLease.String(),
		"--xcat-timeout", "5s", "--power-sync-interval", "0",
		"--listen", "", "--log-format", "json", "--log-level", "info", "--database-max-conns", "4",
		"--console-log-dir", e.t.TempDir(), "--install-dir", e.installDir}
	return append(args, e.extra...)
}

// workerLease is the job lease of the scenarios' workers: a job whose worker died is
// taken over once it ran out.
const workerLease = 2 * time.Second

// measureResume records how long after began the first transition was recorded.
func (e *env) measureResume(began time.Time) {
	for time.Since(began) < 60*time.Second {
		var n int
		err := e.db.QueryRow(`SELECT count(*) FROM job_history WHERE at > $1`, began).Scan(&n)
		if err == nil && n > 0 {
			var first time.Time
			if e.db.QueryRow(`SELECT min(at) FROM job_history WHERE at > $1`, began).Scan(&first) == nil {
				e.mu.Lock()
				e.resumes = append(e.resumes, first.Sub(began))
				e.mu.Unlock()
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs the worker and waits for it to die.
func (e *env) kill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc == nil {
		return
	}
	_ = e.proc.Process.Signal(syscall.SIGKILL)
	<-e.exited
	e.proc = nil
	e.killed++
}

// restart kills the worker and starts a new one.
func (e *env) restart() { e.kill(); e.start() }

// stop ends the worker with SIGTERM (SIGKILL after 10s).
func (e *env) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc == nil {
		return
	}
	_ = e.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(10 * time.Second):
		_ = e.proc.Process.Signal(syscall.SIGKILL)
		<-e.exited
	}
	e.proc = nil
}

func readyLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "consuming compute queues")
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// cast describes one cast to publish, adapted from a golden vector.
type cast struct {
	file, node, uuid string
	ip               string // tenant IP (spawn), in 192.168.0.0/16
	image            string // xcat_image_name of a spawn ("" is the scenarios' image)
	replyQ           string // a call's _reply_q
	uniqueID         string
	version, method  string
	mutate           func(msg map[string]any)
}

// castBody builds the oslo envelope of c from worker/testdata, with the canary as
// auth token and admin password.
func castBody(t *testing.T, c cast) []byte {
	t.Helper()
	img := image
	if c.image != "" {
		img = c.image
	}
	spec := novacast.Spec{Node: c.node, UUID: c.uuid, Hostname: "h-" + c.node, Image: img, Method: c.method,
		Version: c.version, UniqueID: c.uniqueID, AuthToken: Canary, AdminPassword: Canary,
		UserData: SecretForms[1], ReplyQueue: c.replyQ}
	if c.ip != "" {
		spec.IP, spec.CIDR = c.ip, "192.168.0.0/16"
	}
	if spec.UniqueID == "" {
		spec.UniqueID = fmt.Sprintf("%032x", time.Now().UnixNano())
	}
	body, err := novacast.Body(c.file, spec)
	if err != nil {
		t.Fatal(err)
	}
	if c.mutate == nil {
		return body
	}
	var envl map[string]string
	var msg map[string]any
	if err := json.Unmarshal(body, &envl); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(envl["oslo.message"]), &msg); err != nil {
		t.Fatal(err)
	}
	c.mutate(msg)
	inner, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	body, err = json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": string(inner)})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// publish sends a body to compute.<host> through the nova exchange (mandatory, so an
// unroutable cast fails the test instead of vanishing).
func (e *env) publish(body []byte) {
	e.t.Helper()
	err := e.ch.PublishWithContext(context.Background(), "nova", "compute."+host, false, false,
		amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Body: body})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) cast(c cast) { e.t.Helper(); e.publish(castBody(e.t, c)) }

// spawnCast is a build_and_run_instance for node i (n01..) with its own instance.
func spawnCast(i int) cast {
	return cast{file: "cast-build_and_run_instance.json", node: nodeName(i), uuid: instanceUUID(i), ip: fmt.Sprintf("192.168.%d.%d", i/250, i%250+1)}
}

func nodeName(i int) string { return fmt.Sprintf("n%02d", i) }

func instanceUUID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// jobRow is what the harness reads of a job.
type jobRow struct {
	ID                   int64
	Kind, State, UUID    string
	Node, Error, Message string
	Finished             bool
}

func (e *env) jobs() []jobRow {
	e.t.Helper()
	var out []jobRow
	for attempt := 0; ; attempt++ {
		rows, err := e.db.Query(`SELECT id, kind, state, instance_uuid, node, error, coalesce(message_id,''), finished_at IS NOT NULL FROM jobs ORDER BY id`)
		if err != nil {
			if attempt < 20 { // the database fault scenario terminates our connections too
				time.Sleep(50 * time.Millisecond)
				continue
			}
			e.t.Fatal(err)
		}
		out = out[:0]
		for rows.Next() {
			var j jobRow
			if err := rows.Scan(&j.ID, &j.Kind, &j.State, &j.UUID, &j.Node, &j.Error, &j.Message, &j.Finished); err != nil {
				e.t.Fatal(err)
			}
			out = append(out, j)
		}
		err = rows.Err()
		_ = rows.Close()
		if err != nil && attempt < 20 {
			continue
		}
		return out
	}
}

// waitState waits until some job of kind for uuid is in state (or beyond: any final
// state also ends the wait); it returns the state seen.
func (e *env) waitState(uuid, kind, state string, within time.Duration) string {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var st string
		err := e.db.QueryRow(`SELECT state FROM jobs WHERE instance_uuid = $1 AND kind = $2 ORDER BY id DESC LIMIT 1`, uuid, kind).Scan(&st)
		if err == nil && (st == state || st == "done" || st == "failed" || st == "cancelled") {
			return st
		}
		time.Sleep(3 * time.Millisecond)
	}
	e.t.Fatalf("%s job of %s never reached %s", kind, uuid, state)
	return ""
}

// waitJobs waits until there are at least n jobs and all have finished; it returns
// the unfinished ones when within runs out.
func (e *env) waitJobs(n int, within time.Duration) (jobs []jobRow, open []jobRow) {
	deadline := time.Now().Add(within)
	for {
		jobs = e.jobs()
		open = open[:0]
		for _, j := range jobs {
			if !j.Finished {
				open = append(open, j)
			}
		}
		if len(jobs) >= n && len(open) == 0 || time.Now().After(deadline) {
			return jobs, open
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noteLog collects every notification published on the vhost, across broker
// connection losses (its queue is named, so it keeps what arrives meanwhile).
type noteLog struct {
	mu    sync.Mutex
	raw   []string
	notes []map[string]any
}

func listen(t *testing.T, url string, durable bool) *noteLog {
	t.Helper()
	l := &noteLog{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		first := true
		for ctx.Err() == nil {
			err := l.consume(ctx, url, durable, func() {
				if first {
					first = false
					ready <- nil
				}
			})
			if first {
				ready <- err
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *noteLog) consume(ctx context.Context, url string, durable bool, up func()) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.ExchangeDeclare("nova", "topic", durable, false, false, false, nil); err != nil {
		return err
	}
	q, err := ch.QueueDeclare("faults.notifications", durable, false, false, false, nil)
	if err != nil {
		return err
	}
	for _, key := range []string{"versioned_notifications.*", "notifications.*", "xcatbm_notifications.*"} {
		if err := ch.QueueBind(q.Name, key, "nova", false, nil); err != nil {
			return err
		}
	}
	// Acked once recorded: with automatic acks, a notification on its way to this
	// listener when the fault harness closes every connection of the vhost would be
	// lost here, and counted as missing against the worker. Redelivered, it is
	// recorded twice and seen deduplicates it by message_id.
	ds, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	up()
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-ds:
			if !ok {
				return nil
			}
			var envl map[string]string
			var n map[string]any
			if json.Unmarshal(d.Body, &envl) == nil && json.Unmarshal([]byte(envl["oslo.message"]), &n) == nil {
				l.mu.Lock()
				l.raw = append(l.raw, string(d.Body))
				l.notes = append(l.notes, n)
				l.mu.Unlock()
			}
			if err := d.Ack(false); err != nil {
				return err
			}
		}
	}
}

// seen returns, per instance uuid, the versioned event types seen (deduplicated by
// message_id), and how many duplicate deliveries there were.
func (l *noteLog) seen() (map[string]map[string]bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]map[string]bool{}
	ids := map[string]bool{}
	dups := 0
	for _, n := range l.notes {
		id, _ := n["message_id"].(string)
		if ids[id] {
			dups++
			continue
		}
		ids[id] = true
		ev, _ := n["event_type"].(string)
		if !strings.HasPrefix(ev, "instance.") {
			continue
		}
		b, _ := json.Marshal(n["payload"])
		var p struct {
			Data struct {
				UUID string `json:"uuid"`
			} `json:"nova_object.data"`
		}
		if json.Unmarshal(b, &p) == nil && p.Data.UUID != "" {
			if out[p.Data.UUID] == nil {
				out[p.Data.UUID] = map[string]bool{}
			}
			out[p.Data.UUID][ev] = true
		}
	}
	return out, dups
}

// deadLetters reads every message on the dead-letter queue.
func (e *env) deadLetters() []amqp.Delivery {
	e.t.Helper()
	ch, err := e.pub.Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	defer ch.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get("xcatbm.dead_letter", true)
		if err != nil {
			e.t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// expect says how a scenario's jobs must end: by instance uuid and kind, the final
// state ("" means done).
type expect map[string]string

func key(uuid, kind string) string { return uuid + "/" + kind }

// verify checks the scenario's outcome and adds it to the table under fault:
// every job ended in the expected state, none was lost, no nodeset or rpower boot
// repeated after a node began installing, every expected notification published,
// and the canary nowhere it must not be.
func (e *env) verify(fault string, runs, wantJobs int, want expect, within time.Duration) Row {
	e.t.Helper()
	jobs, open := e.waitJobs(wantJobs, within)
	row := Row{Fault: fault, Runs: runs, Jobs: len(jobs)}
	row.Lost = len(open)
	if len(jobs) < wantJobs {
		row.Lost += wantJobs - len(jobs)
		e.t.Errorf("%s: %d jobs recorded, want %d", fault, len(jobs), wantJobs)
	}
	for _, j := range open {
		e.t.Errorf("%s: job %d (%s %s) still %s", fault, j.ID, j.Kind, j.UUID, j.State)
	}
	for _, j := range jobs {
		if !j.Finished {
			continue
		}
		w := want[key(j.UUID, j.Kind)]
		if w == "" {
			w = "done"
		}
		if j.State != w {
			row.WronglyFailed++
			e.t.Errorf("%s: job %d (%s %s on %s) ended %s (%s), want %s", fault, j.ID, j.Kind, j.UUID, j.Node, j.State, j.Error, w)
		}
	}
	row.HarmfulRepeats = e.harmfulRepeats(fault)
	// notifications: give the outbox a moment to drain, then compare.
	deadline := time.Now().Add(15 * time.Second)
	for {
		seen, _ := e.notes.seen()
		missing := 0
		var miss []string
		for _, j := range jobs {
			if !j.Finished {
				continue
			}
			for _, ev := range ExpectedEvents(j.Kind, j.State) {
				if !seen[j.UUID][ev] {
					missing++
					miss = append(miss, j.UUID+" "+ev)
				}
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			row.MissingNotes = missing
			if missing > 0 {
				e.t.Errorf("%s: %d notifications missing: %v", fault, missing, miss)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	row.Residue, row.ResidueChecked = e.checkResidue(fault, goneNodes(jobs)), true
	row.Canary = e.checkCanary(fault)
	e.mu.Lock()
	row.Resume = append(row.Resume, e.resumes...)
	for _, d := range e.resumes {
		if d > 10*time.Second {
			e.t.Errorf("%s: resume took %v (target ≤ 10s)", fault, d)
		}
	}
	e.mu.Unlock()
	table.Add(row)
	return row
}

// harmfulRepeats counts, per node, nodeset and rpower boot requests sent after the
// node's first rpower boot (the moment it starts installing). A node spawned twice
// in a scenario is not supported by this count.
func (e *env) harmfulRepeats(fault string) int {
	// Only requests up to the end of the node's spawn count: a later reboot sends
	// rpower boot rightly.
	spawnEnd := map[string]time.Time{}
	rows, err := e.db.Query(`SELECT node, finished_at FROM jobs WHERE kind = 'spawn' AND finished_at IS NOT NULL`)
	if err != nil {
		e.t.Errorf("spawn end times: %v", err)
		return 0
	}
	for rows.Next() {
		var node string
		var at time.Time
		if rows.Scan(&node, &at) == nil {
			spawnEnd[node] = at
		}
	}
	_ = rows.Close()
	bootedAt := map[string]bool{}
	n := 0
	for _, r := range e.sim.Requests() {
		boot := r.Command == "rpower" && len(r.Args) > 0 && r.Args[0] == "boot" || r.Command == "rnetboot"
		if r.Command != "nodeset" && !boot {
			continue
		}
		if r.Command == "nodeset" && len(r.Args) > 0 && !strings.HasPrefix(r.Args[0], "osimage") {
			continue // nodeset boot/offline from other flows
		}
		for _, node := range r.Nodes {
			if end, ok := spawnEnd[node]; ok && r.Time.After(end) {
				continue
			}
			if bootedAt[node] {
				n++
				e.t.Errorf("%s: %s %v repeated on %s after it began installing", fault, r.Command, r.Args, node)
			}
			if boot {
				bootedAt[node] = true
			}
		}
	}
	return n
}

// checkCanary looks for the secrets (SecretForms) everywhere a message or a record
// can rest: the worker's log, the notifications (nova's and xcatbm's own), every text
// column of the schema except nodes.bmc_password (where the credential belongs), the
// dead-letter queue (bodies and headers, read without taking them), and the
// simulator's record of the requests xCAT received. It returns the places found.
func (e *env) checkCanary(fault string) int {
	e.t.Helper()
	found := 0
	f, err := os.Open(e.logPath)
	if err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			if ContainsCanary(sc.Text()) {
				found++
				e.t.Errorf("%s: canary in the worker log: %.300s", fault, sc.Text())
				break
			}
		}
		_ = f.Close()
	}
	e.notes.mu.Lock()
	for _, r := range e.notes.raw {
		if ContainsCanary(r) {
			found++
			e.t.Errorf("%s: canary in a notification: %.300s", fault, r)
			break
		}
	}
	e.notes.mu.Unlock()
	for _, d := range e.peekDeadLetters() {
		if ContainsCanary(string(d.Body)) || ContainsCanary(fmt.Sprint(d.Headers)) {
			found++
			e.t.Errorf("%s: canary in a dead-lettered message: headers %v body %.300s", fault, d.Headers, d.Body)
		}
	}
	for _, r := range e.sim.Requests() {
		if ContainsCanary(fmt.Sprint(r.Args, r.Env, r.Stdin, r.Noderange)) {
			found++
			e.t.Errorf("%s: canary in a request to xCAT: %s %v", fault, r.Command, r.Args)
			break
		}
	}
	rows, err := e.db.Query(`SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND data_type IN ('text','jsonb','json','bytea','character varying')`, e.db.Schema)
	if err != nil {
		e.t.Errorf("list columns: %v", err)
		return found + 1
	}
	type col struct{ table, name, typ string }
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.table, &c.name, &c.typ); err == nil {
			cols = append(cols, c)
		}
	}
	_ = rows.Close()
	if len(cols) == 0 {
		e.t.Errorf("no text columns found in schema %s", e.db.Schema)
	}
	for _, c := range cols {
		if c.table == "nodes" && c.name == "bmc_password" || c.table == "schema_migrations" {
			continue
		}
		expr := fmt.Sprintf(`%q::text`, c.name)
		if c.typ == "bytea" {
			expr = fmt.Sprintf(`convert_from(%q, 'UTF8')`, c.name)
		}
		for _, form := range SecretForms {
			var n int
			if err := e.db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM %q WHERE strpos(%s, $1) > 0`, c.table, expr), form).Scan(&n); err != nil {
				e.t.Errorf("search %s.%s: %v", c.table, c.name, err)
				continue
			}
			if n > 0 {
				found++
				e.t.Errorf("%s: canary in %d rows of %s.%s", fault, n, c.table, c.name)
			}
		}
	}
	return found
}

// peekDeadLetters reads the dead-letter queue without taking its messages: they are
// fetched unacknowledged and go back to the queue when the channel closes.
func (e *env) peekDeadLetters() []amqp.Delivery {
	e.t.Helper()
	e.redial()
	ch, err := e.pub.Channel()
	if err != nil {
		e.t.Errorf("peek the dead-letter queue: %v", err)
		return nil
	}
	defer ch.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get("xcatbm.dead_letter", false)
		if err != nil {
			// No dead-letter queue yet is no dead letter; anything else is an error.
			if !strings.Contains(err.Error(), "NOT_FOUND") {
				e.t.Errorf("peek the dead-letter queue: %v", err)
			}
			return out
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// restartBroker stops the private broker's app, waits down for the given time, starts it and
// reopens the test's own publishing connection, which died with it.
func (e *env) restartBroker(down time.Duration) {
	e.t.Helper()
	ctl := func(cmd string) {
		if out, err := e.node.Ctl(cmd); err != nil {
			e.t.Fatalf("%v\n%s", err, out)
		}
	}
	ctl("stop_app")
	time.Sleep(down)
	ctl("start_app")
	ctl("await_startup")
	var err error
	for k := 0; k < 50; k++ {
		if e.pub, err = amqp.Dial(e.vh.URL); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatal(err)
}
