package faults

import (
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// process is one of several worker processes serving the same compute host.
type process struct {
	id     string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startNamed runs one more worker process for the scenario's compute host, named id in
// the job leases, and waits until it consumes. All of them log to the scenario's log,
// so the canary check reads every process's lines.
func (e *env) startNamed(id string) *process {
	e.t.Helper()
	cmd, exited := e.launch(id)
	p := &process{id: id, cmd: cmd, exited: exited}
	e.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// TestKillOneOfThreeWorkers runs three worker processes for one compute host on the
// same queues and database. Mid-storm (a spawn then a stop per instance), the process
// leasing the most unfinished jobs is SIGKILLed. The two others must take each of its
// jobs over within the lease plus a poll, and every cast must end done, in nova's
// order per instance, with no nodeset or boot repeated and every notification sent.
func TestKillOneOfThreeWorkers(t *testing.T) {
	t.Parallel()
	n := sized(15, 60)
	e := newEnv(t, n)
	procs := []*process{e.startNamed("w1"), e.startNamed("w2"), e.startNamed("w3")}
	for i := 1; i <= n; i++ {
		e.cast(spawnCast(i))
	}
	for i := 1; i <= n; i++ {
		e.cast(cast{file: "cast-stop_instance.json", node: nodeName(i), uuid: instanceUUID(i)})
	}

	// Wait until the work is spread and some process holds jobs mid-flow.
	var victim *process
	deadline := time.Now().Add(30 * time.Second)
	for victim == nil && time.Now().Before(deadline) {
		rows, err := e.db.Query(`SELECT locked_by, count(*) FROM jobs
			WHERE finished_at IS NULL AND locked_by <> '' AND state <> 'resolve'
			GROUP BY locked_by ORDER BY count(*) DESC LIMIT 1`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			var held int
			if err := rows.Scan(&id, &held); err != nil {
				t.Fatal(err)
			}
			if held >= 2 {
				for _, p := range procs {
					if p.id == id {
						victim = p
					}
				}
			}
		}
		_ = rows.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if victim == nil {
		t.Fatal("no worker held two unfinished jobs within 30s")
	}
	_ = victim.cmd.Process.Signal(syscall.SIGKILL)
	<-victim.exited
	e.mu.Lock()
	e.killed++
	e.mu.Unlock()
	killed := time.Now()
	var held []int64
	rows, err := e.db.Query(`SELECT id FROM jobs WHERE locked_by = $1 AND finished_at IS NULL ORDER BY id`, victim.id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		held = append(held, id)
	}
	_ = rows.Close()
	t.Logf("SIGKILLed %s holding %d unfinished jobs", victim.id, len(held))
	if len(held) == 0 {
		t.Fatal("the killed process held no unfinished job: no takeover to measure")
	}

	// Takeover: the first transition another process recorded for each job the
	// killed one held.
	if _, open := e.waitJobs(2*n, 3*time.Minute); len(open) > 0 {
		t.Errorf("%d jobs unfinished after 3 minutes", len(open))
	}
	var takeovers []time.Duration
	for _, id := range held {
		var at time.Time
		if err := e.db.QueryRow(`SELECT min(at) FROM job_history WHERE job_id = $1 AND at > $2`, id, killed).Scan(&at); err != nil {
			t.Errorf("job %d: no transition after the kill: %v", id, err)
			continue
		}
		takeovers = append(takeovers, at.Sub(killed))
	}
	slices.Sort(takeovers)
	if len(takeovers) > 0 {
		worst := takeovers[len(takeovers)-1]
		t.Logf("takeover of the killed process's %d jobs: first %v, last %v (lease %v, poll 50ms)",
			len(takeovers), takeovers[0].Round(time.Millisecond), worst.Round(time.Millisecond), workerLease)
		// lease + one poll, with a second for a loaded two-core machine.
		if limit := workerLease + 50*time.Millisecond + time.Second; worst > limit {
			t.Errorf("a job of the killed process was taken over after %v, more than %v", worst, limit)
		}
	}
	// The table's resume column holds the takeover times.
	e.mu.Lock()
	e.resumes = takeovers
	e.mu.Unlock()
	e.verify("worker: 1 of 3 processes SIGKILLed mid-storm", 1, 2*n, expect{}, 3*time.Minute)

	// nova's order per instance on the node: booted before it was stopped.
	for i := 1; i <= n; i++ {
		node := nodeName(i)
		var cmds []string
		for _, r := range e.sim.Requests() {
			if slices.Contains(r.Nodes, node) && r.Command == "rpower" && len(r.Args) > 0 {
				cmds = append(cmds, r.Args[0])
			}
		}
		boot, off := slices.Index(cmds, "boot"), slices.Index(cmds, "off")
		if boot < 0 || off < 0 || off < boot {
			t.Errorf("%s: rpower %s; want boot before off", node, strings.Join(cmds, ", "))
		}
	}
}
