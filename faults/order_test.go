package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/worker/configdrive"
	"xcatbm/xcat/sim"
)

// badImage is an xcat_image_name that passes the worker's checks but that nodeset
// rejects (the simulator knows no such osimage): its spawn fails after changing xCAT.
const badImage = "no-such-image"

// residueIgnored are the lsdef attributes xCAT keeps as its record of what happened to
// a node (status, the last image and its boot state); every other attribute of a node
// whose instance failed or was deleted must be as it was before the spawn.
var residueIgnored = map[string]bool{"status": true, "statustime": true, "currstate": true, "currchain": true,
	"provmethod": true, "os": true, "arch": true, "profile": true}

// castStep is one cast of an instance's sequence and the job kind it makes.
type castStep struct{ file, kind string }

var (
	spawnStep   = castStep{"cast-build_and_run_instance.json", "spawn"}
	destroyStep = castStep{"cast-terminate_instance.json", "destroy"}
	stopStep    = castStep{"cast-stop_instance.json", "power_off"}
	startStep   = castStep{"cast-start_instance.json", "power_on"}
	rebootStep  = castStep{"cast-reboot_instance.json", "reboot"}
)

// planned is one instance of an order storm: its node, its casts in nova's order and
// the rpower actions its node must see, in order (consecutive on/off repeats folded).
type planned struct {
	i      int
	image  string
	steps  []castStep
	rpower []string
	// gone: the instance ends deleted or failed (verify checks its node for residue).
	gone bool
	// late: its destroy is cast while the faults run, after a random pause, instead of
	// right behind its spawn.
	late bool
}

// TestOrderUnderFaults publishes storms of casts and, while the worker runs them,
// terminates its PostgreSQL backends and closes its AMQP connections every few
// hundred milliseconds (every batch in flight then fails and everything prefetched
// behind it is redelivered). Three kinds of instance share the storm: spawn+destroy
// pairs on distinct nodes, one instance per node walking spawn → stop → start →
// reboot, and a spawn whose image nodeset rejects. Afterwards every instance's jobs
// must have been recorded in nova's order and have run one after the other (from the
// jobs table and job_history), every node must have seen its xCAT calls in that
// order (from the simulator's record: nothing provisions, boots or powers a node
// after its destroy, a node is powered only after it was provisioned), and no node
// of a deleted or failed instance may keep residue (checkResidue).
func TestOrderUnderFaults(t *testing.T) {
	t.Parallel()
	pairs, walks := sized(12, 100), sized(3, 10)
	rounds := sized(6, 20)
	var plan []planned
	for i := 1; i <= pairs; i++ {
		plan = append(plan, planned{i: i, steps: []castStep{spawnStep, destroyStep}, gone: true, late: i%2 == 0})
	}
	for i := pairs + 1; i <= pairs+walks; i++ {
		plan = append(plan, planned{i: i, steps: []castStep{spawnStep, stopStep, startStep, rebootStep},
			rpower: []string{"boot", "off", "on", "boot"}})
	}
	plan = append(plan, planned{i: pairs + walks + 1, image: badImage, steps: []castStep{spawnStep}, gone: true})
	e := newEnv(t, len(plan))
	e.start()
	// The casts of all instances interleaved, as nova sends them: step k of every
	// instance, then step k+1.
	casts := 0
	for k := 0; ; k++ {
		sent := false
		for _, p := range plan {
			if k >= len(p.steps) || p.late && p.steps[k] == destroyStep {
				continue
			}
			c := spawnCast(p.i)
			c.file, c.image = p.steps[k].file, p.image
			if k > 0 {
				c.ip = ""
			}
			e.cast(c)
			casts++
			sent = true
		}
		if !sent {
			break
		}
	}
	// Faults from now until every job has ended, and at least `rounds` of each.
	var pgRounds, amqpRounds, backends atomic.Int64
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			n, err := e.terminateBackends()
			if err != nil {
				t.Logf("terminate backends: %v", err)
			}
			backends.Add(int64(n))
			pgRounds.Add(1)
			time.Sleep(150 * time.Millisecond)
			out, err := exec.Command("rabbitmqctl", "-q", "close_all_connections", "-p", e.vh.Name, "fault harness: order storm").CombinedOutput()
			if err != nil {
				t.Logf("close_all_connections: %v: %s", err, out)
			} else {
				amqpRounds.Add(1)
			}
			time.Sleep(time.Duration(200+100*(k%4)) * time.Millisecond)
		}
	}()
	// The late destroys go out while the faults go on, each once its spawn reached a
	// step of its own (or later), so that spawns are overtaken at every stage and
	// some finish before their destroy: not only before their first step.
	stages := []string{"nodeset", "boot", "wait_booted", "done"}
	late := 0
	for _, p := range plan {
		if p.late {
			e.waitState(instanceUUID(p.i), "spawn", stages[late%len(stages)], 60*time.Second)
			late++
			time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
			c := spawnCast(p.i)
			c.file, c.ip = destroyStep.file, ""
			e.publishConfirmed(castBody(t, c))
			casts++
		}
	}
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		if pgRounds.Load() >= int64(rounds) && amqpRounds.Load() >= int64(rounds) {
			if _, open := e.waitJobs(casts, 0); len(open) == 0 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	<-stopped
	e.redial()
	t.Logf("%d casts; %d rounds of pg_terminate_backend (%d backends), %d of close_all_connections", casts, pgRounds.Load(), backends.Load(), amqpRounds.Load())
	if backends.Load() == 0 {
		t.Error("no database backend was terminated: the fault never happened")
	}
	jobs, _ := e.waitJobs(casts, 2*time.Minute)
	// A spawn overtaken by its destroy ends cancelled (with create.error); the one
	// with the bad image ends failed.
	want := expect{}
	outcomes := map[string]int{}
	for _, j := range jobs {
		if j.Kind == "spawn" {
			outcomes[j.State]++
		}
	}
	t.Logf("spawns by outcome: %v", outcomes)
	for _, p := range plan {
		u := instanceUUID(p.i)
		if p.image == badImage {
			want[key(u, "spawn")] = "failed"
			continue
		}
		for _, j := range jobs {
			if j.UUID == u && j.Kind == "spawn" && j.State == "cancelled" && slices.Contains(p.steps, destroyStep) {
				want[key(u, "spawn")] = "cancelled"
			}
		}
	}
	row := e.verify(fmt.Sprintf("order storm: %d spawn+destroy pairs, %d spawn→stop→start→reboot, 1 failed spawn; pg_terminate_backend + close_all_connections", pairs, walks),
		int(pgRounds.Load()+amqpRounds.Load()), casts, want, 2*time.Minute)
	gone := goneNodes(jobs)
	for _, p := range plan {
		if _, ok := gone[nodeName(p.i)]; p.gone && !ok {
			t.Errorf("instance %s on %s did not end deleted or failed", instanceUUID(p.i), nodeName(p.i))
		}
	}
	table.Add(Row{Fault: row.Fault, Reordered: e.checkOrder(plan), OrderChecked: true})
}

// terminateBackends ends every PostgreSQL session of the scenario's worker (the test's
// own pool may lose a connection too: it asks twice).
func (e *env) terminateBackends() (int, error) {
	q := `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`
	var killed int
	err := e.db.QueryRow(q, e.db.Schema).Scan(&killed)
	if err != nil {
		err = e.db.QueryRow(q, e.db.Schema).Scan(&killed)
	}
	if err != nil {
		return 0, fmt.Errorf("pg_terminate_backend: %w", err)
	}
	return killed, nil
}

// publishConfirmed publishes body to compute.<host> until the broker confirms it,
// reconnecting after broker faults; a cast published twice is one job (same
// _unique_id).
func (e *env) publishConfirmed(body []byte) {
	e.t.Helper()
	var err error
	for attempt := 0; attempt < 100; attempt++ {
		if attempt > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		e.redial()
		var ch *amqp.Channel
		if ch, err = e.pub.Channel(); err != nil {
			continue
		}
		err = func() error {
			defer ch.Close()
			if err := ch.Confirm(false); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "nova", "compute."+host, true, false,
				amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Body: body})
			if err != nil {
				return err
			}
			ok, err := dc.WaitContext(ctx)
			if err == nil && !ok {
				err = errors.New("nacked")
			}
			return err
		}()
		if err == nil {
			return
		}
	}
	e.t.Fatalf("publish a cast: %v", err)
}

// redial reopens the test's publishing connection after a broker fault closed it.
func (e *env) redial() {
	e.t.Helper()
	if e.pub != nil && !e.pub.IsClosed() {
		return
	}
	var err error
	for k := 0; k < 50; k++ {
		if e.pub, err = amqp.Dial(e.vh.URL); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatalf("redial the broker: %v", err)
	}
	pub := e.pub
	e.t.Cleanup(func() { _ = pub.Close() })
	if e.ch, err = e.pub.Channel(); err != nil {
		e.t.Fatalf("redial the broker: %v", err)
	}
}

// lsdef returns the lsdef attributes of node, without residueIgnored.
func (e *env) lsdef(node string) map[string]string {
	e.t.Helper()
	ns, ok := e.sim.Node(node)
	if !ok {
		e.t.Fatalf("no simulated node %s", node)
	}
	a := map[string]string{}
	for k, v := range ns.Attrs {
		if !residueIgnored[k] {
			a[k] = v
		}
	}
	return a
}

// checkOrder counts the instances of plan whose jobs were recorded or run out of
// nova's order: the kinds of the instance's jobs in id order must be its casts'
// kinds; no job may start a step before the instance's previous job ended; and the
// node's xCAT calls (the simulator's record) must follow: nothing provisions, boots
// or powers the node, or adds its postscript, after the destroy began; the node is
// powered only after nodeset installed it; its rpower actions are plan's.
func (e *env) checkOrder(plan []planned) int {
	e.t.Helper()
	type hjob struct {
		id               int64
		kind, state      string
		firstStart, fin  time.Time
		started, hasDone bool
	}
	bad := 0
	records := e.sim.Requests()
	for _, p := range plan {
		u, node := instanceUUID(p.i), nodeName(p.i)
		rows, err := e.db.Query(`SELECT j.id, j.kind, j.state, coalesce(j.finished_at, 'infinity'), j.finished_at IS NOT NULL,
			(SELECT min(h.at) FROM job_history h WHERE h.job_id = j.id AND h.detail = 'started')
			FROM jobs j WHERE j.instance_uuid = $1 ORDER BY j.id`, u)
		if err != nil {
			e.t.Errorf("order of %s: %v", u, err)
			bad++
			continue
		}
		var js []hjob
		for rows.Next() {
			var j hjob
			var fs *time.Time
			if err := rows.Scan(&j.id, &j.kind, &j.state, &j.fin, &j.hasDone, &fs); err != nil {
				e.t.Errorf("order of %s: %v", u, err)
			}
			if fs != nil {
				j.firstStart, j.started = *fs, true
			}
			js = append(js, j)
		}
		_ = rows.Close()
		var problems []string
		var got, wantKinds []string
		for _, j := range js {
			got = append(got, j.kind)
		}
		for _, s := range p.steps {
			wantKinds = append(wantKinds, s.kind)
		}
		if !slices.Equal(got, wantKinds) {
			problems = append(problems, fmt.Sprintf("jobs recorded as %v, nova sent %v", got, wantKinds))
		}
		var destroyStart time.Time
		for k, j := range js {
			if j.kind == "destroy" && j.started {
				destroyStart = j.firstStart
			}
			if k > 0 && j.started && js[k-1].hasDone && j.firstStart.Before(js[k-1].fin) {
				problems = append(problems, fmt.Sprintf("%s (job %d) started at %s before %s (job %d) ended at %s",
					j.kind, j.id, j.firstStart.Format("15:04:05.000"), js[k-1].kind, js[k-1].id, js[k-1].fin.Format("15:04:05.000")))
			}
		}
		// The node's calls, in the order the simulator read them, but for those of the
		// cleaning a destroy leaves (it boots genesis to erase the disks).
		cleaning := e.cleanIntervals(node)
		provisioned := false
		var rp []string
		for _, r := range records {
			if !slices.Contains(r.Nodes, node) {
				continue
			}
			what := callKind(r)
			if what == "" || slices.ContainsFunc(cleaning, func(iv [2]time.Time) bool { return !r.Time.Before(iv[0]) && !r.Time.After(iv[1]) }) {
				continue
			}
			if !destroyStart.IsZero() && r.Time.After(destroyStart) && what != "rpower off" && what != "postscript -" {
				problems = append(problems, fmt.Sprintf("%s at %s after the destroy began (%s)", what, r.Time.Format("15:04:05.000"), destroyStart.Format("15:04:05.000")))
			}
			switch what {
			case "nodeset osimage":
				provisioned = true
			case "rpower on", "rpower off", "rpower boot":
				a := strings.TrimPrefix(what, "rpower ")
				if a == "boot" && !provisioned {
					problems = append(problems, fmt.Sprintf("rpower boot at %s before nodeset provisioned the node", r.Time.Format("15:04:05.000")))
				}
				if a != "boot" && len(rp) > 0 && rp[len(rp)-1] == a {
					continue // rpower on/off again changes nothing
				}
				rp = append(rp, a)
			}
		}
		if p.rpower != nil && !slices.Equal(rp, p.rpower) {
			problems = append(problems, fmt.Sprintf("rpower actions %v, nova's order gives %v", rp, p.rpower))
		}
		if len(problems) > 0 {
			bad++
			e.t.Errorf("instance %s on %s out of nova's order:\n\t%s", u, node, strings.Join(problems, "\n\t"))
		}
	}
	return bad
}

// cleanIntervals returns from when to when the clean jobs of node ran (from their
// recording to their end, or to the far future while they run).
func (e *env) cleanIntervals(node string) [][2]time.Time {
	e.t.Helper()
	rows, err := e.db.Query(`SELECT created_at, coalesce(finished_at, 'infinity') FROM jobs WHERE kind = 'clean' AND node = $1`, node)
	if err != nil {
		e.t.Errorf("clean jobs of %s: %v", node, err)
		return nil
	}
	defer rows.Close()
	var out [][2]time.Time
	for rows.Next() {
		var iv [2]time.Time
		if err := rows.Scan(&iv[0], &iv[1]); err != nil {
			e.t.Errorf("clean jobs of %s: %v", node, err)
			continue
		}
		out = append(out, iv)
	}
	return out
}

// callKind names the xCAT calls that change a node as checkOrder sees them ("" for
// the others).
func callKind(r sim.Record) string {
	arg := func(i int) string {
		if i < len(r.Args) {
			return r.Args[i]
		}
		return ""
	}
	switch r.Command {
	case "nodeset":
		if strings.HasPrefix(arg(0), "osimage") {
			return "nodeset osimage"
		}
	case "rpower":
		switch arg(0) {
		case "on", "off", "boot":
			return "rpower " + arg(0)
		}
	case "rnetboot":
		return "rpower boot"
	case "chdef":
		all := strings.Join(r.Args, " ") + " " + r.Stdin
		if strings.Contains(all, "config_ops_bmnode") {
			if slices.Contains(r.Args, "-m") {
				return "postscript -"
			}
			return "postscript +"
		}
	}
	return ""
}

// logWorkerLines logs (up to 60) lines of the worker's log that hold any of words:
// what a residue of tenant data needs to be explained.
func (e *env) logWorkerLines(words ...string) {
	b, err := os.ReadFile(e.logPath)
	if err != nil {
		e.t.Logf("worker log: %v", err)
		return
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if n < 60 && slices.ContainsFunc(words, func(w string) bool { return strings.Contains(l, w) }) {
			e.t.Logf("worker log: %.400s", l)
			n++
		}
	}
}

// goneNodes returns, for the instances whose last job (by id) is a done destroy or a
// spawn that failed or was cancelled, their node and uuid.
func goneNodes(jobs []jobRow) map[string]string {
	last := map[string]jobRow{}
	for _, j := range jobs {
		if j.UUID != "" && j.Kind != "clean" {
			last[j.UUID] = j
		}
	}
	out := map[string]string{}
	for u, j := range last {
		if j.Node != "" && (j.Kind == "destroy" && j.State == "done" || j.Kind == "spawn" && (j.State == "failed" || j.State == "cancelled")) {
			out[j.Node] = u
		}
	}
	return out
}

// checkResidue counts the nodes of deleted or failed instances (gone: node → instance)
// that kept something of them: an lsdef attribute other than when the scenario began,
// a config_ops_bmnode postbootscript, power on, or a binding in xcatbm's nodes table;
// and tenant data trees left in the install directory (every job has ended, so no
// tree may remain).
func (e *env) checkResidue(fault string, gone map[string]string) int {
	e.t.Helper()
	residue := 0
	nodes := make([]string, 0, len(gone))
	for n := range gone {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, node := range nodes {
		var problems []string
		after := e.lsdef(node)
		for k, v := range e.before[node] {
			if after[k] != v {
				problems = append(problems, fmt.Sprintf("%s=%q (was %q)", k, after[k], v))
			}
		}
		for k, v := range after {
			if _, ok := e.before[node][k]; !ok {
				problems = append(problems, fmt.Sprintf("%s=%q (was unset)", k, v))
			}
		}
		ns, _ := e.sim.Node(node)
		for _, s := range ns.PostBootScripts {
			if strings.Contains(s, "config_ops_bmnode") {
				problems = append(problems, "postbootscripts keeps "+s)
			}
		}
		if ns.Power != "off" {
			problems = append(problems, "power "+ns.Power)
		}
		var bound string
		if err := e.db.QueryRow(`SELECT instance_uuid FROM nodes WHERE name = $1`, node).Scan(&bound); err == nil && bound != "" {
			problems = append(problems, "bound to instance "+bound)
		}
		if len(problems) > 0 {
			residue++
			slices.Sort(problems)
			e.t.Errorf("%s: residue on %s after instance %s ended: %s", fault, node, gone[node], strings.Join(problems, "; "))
		}
	}
	// Trees: one a job names (every job has ended) should have gone with its job.
	// One no job names was written for a cast whose worker died before recording
	// it: when the scenario SIGKILLed a worker, that is the sweeper's to remove
	// (DriveSweepAge, 5 minutes), and it is only logged; otherwise it is residue too.
	named := map[string]bool{}
	rows, err := e.db.Query(`SELECT request->>'config_drive' FROM jobs WHERE request ? 'config_drive'`)
	if err != nil {
		e.t.Errorf("%s: tenant data of the jobs: %v", fault, err)
	} else {
		for rows.Next() {
			var p string
			if rows.Scan(&p) == nil {
				named[strings.TrimPrefix(p, configdrive.StoreDir+"/")] = true
			}
		}
		_ = rows.Close()
	}
	e.mu.Lock()
	killed := e.killed
	e.mu.Unlock()
	// A cast redelivered after its job was recorded (its ack was lost with a broker
	// connection) gets a tree of its own until the worker finds it a duplicate and
	// removes it: that can be after every job has ended. Such trees go within
	// moments; a tree still there after settle is residue.
	const settle = 15 * time.Second
	var trees []os.DirEntry
	for deadline := time.Now().Add(settle); ; {
		trees, err = os.ReadDir(filepath.Join(e.installDir, configdrive.StoreDir))
		if err != nil && !os.IsNotExist(err) {
			e.t.Errorf("read the tenant data store: %v", err)
		}
		pending := slices.ContainsFunc(trees, func(d os.DirEntry) bool {
			_, perr := configdrive.ParseLocation(d.Name())
			return perr == nil && !named[d.Name()] && killed == 0
		})
		if !pending || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, d := range trees {
		if _, err := configdrive.ParseLocation(d.Name()); err != nil {
			continue // not a tree: the cleaning images live here too
		}
		if !named[d.Name()] && killed > 0 {
			e.t.Logf("%s: tenant data of a cast never recorded before a SIGKILL, left to the sweeper: xcatbm/%s", fault, d.Name())
			continue
		}
		if residue == 0 {
			e.logWorkerLines("batch", "tenant data", "duplicate", `"level":"warn"`, `"level":"error"`)
		}
		residue++
		e.t.Errorf("%s: tenant data left in the install directory: xcatbm/%s (named by a job: %v)", fault, d.Name(), named[d.Name()])
	}
	return residue
}

// TestFailedBatchKeepsOrder is the requeue-reorder case made deterministic: a
// trigger makes the first three transactions that record a spawn wait 300 ms and fail
// (a sequence counts across rollbacks). The spawns of several instances are cast
// first; their stop → start → reboot casts follow while the failing batch is in its
// transaction, so the worker has them prefetched behind it. Each failed batch must go
// back to the queue with everything behind it, and every instance's jobs must be
// recorded and run in nova's order. (With the old reject-only requeue, the prefetched
// stops were recorded before their spawns: this test failed on it.)
func TestFailedBatchKeepsOrder(t *testing.T) {
	t.Parallel()
	const fails = 3
	n := sized(4, 10)
	var plan []planned
	for i := 1; i <= n; i++ {
		plan = append(plan, planned{i: i, steps: []castStep{spawnStep, stopStep, startStep, rebootStep},
			rpower: []string{"boot", "off", "on", "boot"}})
	}
	e := newEnv(t, n)
	q := fmt.Sprintf(`CREATE SEQUENCE %[1]q.faults_failed_batches;
		CREATE FUNCTION %[1]q.faults_fail_batch() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('%[1]s.faults_failed_batches') <= %[2]d THEN
				PERFORM pg_sleep(0.3);
				RAISE EXCEPTION 'fault harness: this batch fails';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER faults_fail_batch BEFORE INSERT ON %[1]q.jobs FOR EACH ROW
			WHEN (NEW.kind = 'spawn') EXECUTE FUNCTION %[1]q.faults_fail_batch();`, e.db.Schema, fails)
	if _, err := e.db.Exec(q); err != nil {
		t.Fatalf("install the failing trigger: %v", err)
	}
	e.start()
	casts := 0
	for k := 0; k < 4; k++ {
		for _, p := range plan {
			c := spawnCast(p.i)
			c.file = p.steps[k].file
			if k > 0 {
				c.ip = ""
			}
			e.cast(c)
			casts++
		}
		if k == 0 {
			time.Sleep(100 * time.Millisecond) // the spawns' batch is in its transaction
		}
	}
	row := e.verify("failed batch commit with later casts prefetched", fails, casts, expect{}, 2*time.Minute)
	var calls int64
	if err := e.db.QueryRow(fmt.Sprintf(`SELECT last_value FROM %q.faults_failed_batches`, e.db.Schema)).Scan(&calls); err != nil {
		t.Fatalf("read the trigger's count: %v", err)
	}
	if calls <= fails {
		t.Errorf("the trigger ran %d times: the batches never failed %d times", calls, fails)
	}
	table.Add(Row{Fault: row.Fault, Reordered: e.checkOrder(plan), OrderChecked: true})
}
