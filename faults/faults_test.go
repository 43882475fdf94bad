package faults

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"xcatbm/internal/testkit/rabbitcluster"
	"xcatbm/internal/testkit/testamqp"
	"xcatbm/messages/novacast"
	"xcatbm/xcat/sim"
)

// TestKillAtStepBoundaries SIGKILLs the worker when a job reaches a given state, in
// every flow, and checks the new process finishes the job without repeating what
// must not be repeated.
func TestKillAtStepBoundaries(t *testing.T) {
	t.Parallel()
	spawnKills := []string{"set_ip", "nodeset", "boot", "wait_booted"}
	if full() {
		spawnKills = append(spawnKills, "resolve", "add_postscript", "set_boot", "boot", "wait_booted")
	}
	e := newEnv(t, len(spawnKills)+1)
	e.start()
	want := expect{}
	jobs, kills := 0, 0
	for i, st := range spawnKills {
		c := spawnCast(i + 1)
		e.cast(c)
		jobs++
		if got := e.waitState(c.uuid, "spawn", st, 20*time.Second); got == st {
			e.restart()
			kills++
		} else {
			t.Logf("spawn %s passed %s before the kill (now %s)", c.uuid, st, got)
		}
	}
	// The last node walks the other flows with a kill in each.
	last := len(spawnKills) + 1
	c := spawnCast(last)
	e.cast(c)
	jobs++
	e.waitState(c.uuid, "spawn", "done", 30*time.Second)
	for _, s := range []struct{ file, kind, state string }{
		{"cast-stop_instance.json", "power_off", "verify_power"},
		{"cast-start_instance.json", "power_on", "power"},
		{"cast-reboot_instance.json", "reboot", "verify_power"},
		{"cast-terminate_instance.json", "destroy", "power_off"},
	} {
		e.cast(cast{file: s.file, node: nodeName(last), uuid: c.uuid})
		jobs++
		if got := e.waitState(c.uuid, s.kind, s.state, 20*time.Second); got == s.state {
			e.restart()
			kills++
		} else {
			t.Logf("%s passed %s before the kill (now %s)", s.kind, s.state, got)
		}
		e.waitState(c.uuid, s.kind, "done", 30*time.Second)
	}
	e.verify("SIGKILL at step boundary", kills, jobs, want, 60*time.Second)
}

// TestKillAfterBootSent kills the worker after rpower boot reached xCAT but before
// its answer (slowed down) was recorded: recovery must see the install started and
// not boot again.
func TestKillAfterBootSent(t *testing.T) {
	t.Parallel()
	n := sized(2, 5)
	e := newEnv(t, n)
	e.start()
	kills := 0
	for i := 1; i <= n; i++ {
		c := spawnCast(i)
		e.sim.SetFault(sim.Fault{Kind: sim.FaultSlow, Command: "rpower", Delay: 1500 * time.Millisecond})
		e.cast(c)
		deadline := time.Now().Add(20 * time.Second)
		for e.sim.CountRequests("rpower", "boot") < i && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		var st string
		_ = e.db.QueryRow(`SELECT state FROM jobs WHERE instance_uuid = $1`, c.uuid).Scan(&st)
		if st != "boot" {
			t.Fatalf("rpower boot not sent in state boot (state %s)", st)
		}
		e.kill()
		kills++
		e.sim.ClearFaults()
		e.start()
		e.waitState(c.uuid, "spawn", "done", 30*time.Second)
	}
	e.verify("SIGKILL after rpower boot sent", kills, n, expect{}, 60*time.Second)
	if got := e.sim.CountRequests("rpower", "boot"); got != n {
		t.Errorf("rpower boot sent %d times for %d spawns", got, n)
	}
}

// TestDuplicateCasts publishes the same cast twice (and once more after a restart):
// one job each.
func TestDuplicateCasts(t *testing.T) {
	t.Parallel()
	n := sized(3, 10)
	e := newEnv(t, n)
	e.start()
	for i := 1; i <= n; i++ {
		c := spawnCast(i)
		c.uniqueID = fmt.Sprintf("dup%029d", i)
		e.cast(c)
		e.cast(c)
	}
	e.waitJobs(n, 30*time.Second)
	e.restart()
	for i := 1; i <= n; i++ {
		c := spawnCast(i)
		c.uniqueID = fmt.Sprintf("dup%029d", i)
		e.cast(c)
	}
	time.Sleep(time.Second)
	row := e.verify("duplicate casts (same _unique_id ×3)", n, n, expect{}, 60*time.Second)
	if row.Jobs != n {
		t.Errorf("%d jobs for %d distinct casts", row.Jobs, n)
	}
}

// TestDestroyBeforeSpawnFinished sends terminate while the spawn still runs: the
// spawn ends cancelled, the destroy done.
func TestDestroyBeforeSpawnFinished(t *testing.T) {
	t.Parallel()
	n := sized(2, 6)
	e := newEnv(t, n)
	e.start()
	want := expect{}
	at := []string{"nodeset", "wait_booted", "set_ip"}
	for i := 1; i <= n; i++ {
		c := spawnCast(i)
		e.cast(c)
		st := e.waitState(c.uuid, "spawn", at[i%len(at)], 20*time.Second)
		e.cast(cast{file: "cast-terminate_instance.json", node: c.node, uuid: c.uuid})
		if st == "done" {
			t.Logf("spawn of %s finished before the destroy", c.uuid)
		} else {
			want[key(c.uuid, "spawn")] = "cancelled"
		}
	}
	e.verify("destroy during spawn", n, 2*n, want, 60*time.Second)
}

// TestPoisonInput feeds malformed casts: each must be dead-lettered with a reason
// and a good cast after them must still complete.
func TestPoisonInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	e.start()
	// Calls the worker refuses are answered with an error reply: it must not carry
	// the secrets of the call either.
	const replyQ = "faults.replies"
	if _, err := e.ch.QueueDeclare(replyQ, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	calls := [][]byte{
		castBody(t, cast{file: novacast.StopCall, node: "n01", uuid: instanceUUID(906), method: "frobnicate_instance", replyQ: replyQ}),
		castBody(t, cast{file: novacast.StopCall, node: "n01", uuid: instanceUUID(907), version: "99.0", replyQ: replyQ}),
	}
	for _, b := range calls {
		e.publish(b)
	}
	good := castBody(t, spawnCast(1))
	poison := map[string][]byte{
		"truncated JSON": good[:len(good)/2],
		"wrong types": castBody(t, cast{file: "cast-build_and_run_instance.json", node: "n01", uuid: instanceUUID(900),
			mutate: func(m map[string]any) { m["args"].(map[string]any)["instance"] = 5 }}),
		"unknown method":      castBody(t, cast{file: "cast-stop_instance.json", node: "n01", uuid: instanceUUID(901), method: "frobnicate_instance"}),
		"unsupported version": castBody(t, cast{file: "cast-stop_instance.json", node: "n01", uuid: instanceUUID(902), version: "99.0"}),
		"not an envelope":     []byte(`{"oslo.version": "2.0", "oslo.message": 7}`),
		// Casts carrying every secret nova sends (auth token, user data, admin, new and
		// rescue passwords), in a version the worker refuses: dead-lettered whole.
		"build, unsupported version":   castBody(t, cast{file: "cast-build_and_run_instance.json", node: "n01", uuid: instanceUUID(903), version: "99.0"}),
		"rebuild, unsupported version": castBody(t, cast{file: novacast.TenantRebuild, node: "n01", uuid: instanceUUID(904), version: "99.0"}),
		"rescue, unsupported version":  castBody(t, cast{file: novacast.TenantRescue, node: "n01", uuid: instanceUUID(905), version: "99.0"}),
	}
	for _, b := range poison {
		e.publish(b)
	}
	e.publish(good)
	row := e.verify("poison input", len(poison), 1, expect{}, 30*time.Second)
	var dl []string
	leaks := 0
	deadline := time.Now().Add(10 * time.Second)
	for len(dl) < len(poison) && time.Now().Before(deadline) {
		for _, d := range e.deadLetters() {
			reason, _ := d.Headers["x-xcatbm-reason"].(string)
			if reason == "" {
				t.Errorf("dead letter without x-xcatbm-reason: %.200s", d.Body)
			}
			if ContainsCanary(string(d.Body)) || ContainsCanary(fmt.Sprint(d.Headers)) {
				leaks++
				t.Errorf("a secret in a dead-lettered message (%s): %s", reason, d.Body)
			}
			// What an operator needs stays: a refused version keeps its method.
			if strings.Contains(reason, "version") && !strings.Contains(string(d.Body), "_instance") {
				t.Errorf("dead-lettered cast (%s) lost its method: %.300s", reason, d.Body)
			}
			dl = append(dl, reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(dl) != len(poison) {
		t.Errorf("%d dead letters for %d poison messages: %q", len(dl), len(poison), dl)
	}
	for _, r := range dl {
		t.Logf("dead-letter reason: %s", r)
	}
	if row.Jobs != 1 {
		t.Errorf("%d jobs, want only the good cast's", row.Jobs)
	}
	var replies int
	deadline = time.Now().Add(10 * time.Second)
	for replies < len(calls) && time.Now().Before(deadline) {
		d, ok, err := e.ch.Get(replyQ, true)
		if err != nil {
			t.Fatalf("read the replies: %v", err)
		}
		if !ok {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		replies++
		if ContainsCanary(string(d.Body)) || ContainsCanary(fmt.Sprint(d.Headers)) {
			leaks++
			t.Errorf("a secret in an error reply: %s", d.Body)
		}
		if !strings.Contains(string(d.Body), "failure") {
			t.Errorf("the reply to a refused call carries no failure: %.300s", d.Body)
		}
	}
	if replies != len(calls) {
		t.Errorf("%d error replies for %d refused calls", replies, len(calls))
	}
	table.Add(Row{Fault: row.Fault, Canary: leaks})
}

// storm spawns n instances and injects a fault while they run.
func storm(t *testing.T, fault string, n int, inject func(e *env)) {
	e := newEnv(t, n)
	e.start()
	for i := 1; i <= n; i++ {
		e.cast(spawnCast(i))
	}
	// wait until some work is under way.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var started int
		_ = e.db.QueryRow(`SELECT count(*) FROM jobs WHERE state NOT IN ('resolve')`).Scan(&started)
		if started >= n/3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	inject(e)
	e.verify(fault, 1, n, expect{}, 120*time.Second)
}

// TestBrokerConnectionsClosed closes every connection of the vhost mid-storm.
func TestBrokerConnectionsClosed(t *testing.T) {
	t.Parallel()
	n := sized(12, 60)
	storm(t, "broker: close_all_connections mid-storm", n, func(e *env) {
		testamqp.Ctl(t, "close_all_connections", "-p", e.vh.Name, "fault harness")
	})
}

// TestDatabaseConnectionsTerminated terminates the worker's PostgreSQL sessions
// mid-storm.
func TestDatabaseConnectionsTerminated(t *testing.T) {
	t.Parallel()
	n := sized(12, 60)
	storm(t, "database: pg_terminate_backend mid-storm", n, func(e *env) {
		terminated := 0
		for k := 0; k < 3; k++ {
			killed, err := e.terminateBackends()
			if err != nil {
				t.Logf("terminate: %v", err)
			}
			terminated += killed
			time.Sleep(300 * time.Millisecond)
		}
		if terminated == 0 {
			t.Error("no database backend was terminated: the fault never happened")
		}
		t.Logf("terminated %d backends", terminated)
	})
}

// TestXCATFaults runs spawns against the simulator's faults: a dropped connection, a
// transient BMC timeout, slow answers (all must end done) and a failing install
// (must end failed).
func TestXCATFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		fault func(node string) sim.Fault
		want  string
	}{
		{"drop before serverdone (nodeset)", func(string) sim.Fault {
			return sim.Fault{Kind: sim.FaultDropConnection, Command: "nodeset", Count: 1}
		}, "done"},
		{"drop before serverdone (rpower)", func(string) sim.Fault {
			return sim.Fault{Kind: sim.FaultDropConnection, Command: "rpower", Count: 1}
		}, "done"},
		{"BMC timeout ×2", func(n string) sim.Fault { return sim.Fault{Kind: sim.FaultBMCTimeout, Nodes: []string{n}, Count: 2} }, "done"},
		{"slow answers", func(string) sim.Fault {
			return sim.Fault{Kind: sim.FaultSlow, Delay: 700 * time.Millisecond, Count: 6}
		}, "done"},
		{"install fails", func(n string) sim.Fault { return sim.Fault{Kind: sim.FaultInstallFail, Nodes: []string{n}} }, "failed"},
	}
	reps := sized(1, 3)
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, reps)
			e.start()
			want := expect{}
			for i := 1; i <= reps; i++ {
				sc := spawnCast(i)
				e.sim.SetFault(c.fault(sc.node))
				e.cast(sc)
				want[key(sc.uuid, "spawn")] = c.want
				e.waitState(sc.uuid, "spawn", "done", 60*time.Second)
			}
			e.verify("xCAT: "+c.name, reps, reps, want, 60*time.Second)
		})
	}
}

// TestStormRandomKills (full form) spawns 200 instances and SIGKILLs the worker at
// random moments until all are done.
func TestStormRandomKills(t *testing.T) {
	if !full() {
		t.Skip("full form only (XCATBM_FAULTS=full)")
	}
	const n = 200
	e := newEnv(t, n)
	e.start()
	for i := 1; i <= n; i++ {
		e.cast(spawnCast(i))
	}
	kills := 0
	for k := 0; k < 8; k++ {
		time.Sleep(time.Duration(500+rand.IntN(2500)) * time.Millisecond)
		e.restart()
		kills++
	}
	e.verify("storm of 200 spawns, random SIGKILL", kills, n, expect{}, 10*time.Minute)
}

// TestBrokerRestartDurable stops and starts a private broker's app while casts wait
// in durable queues: with --amqp-durable-queues they survive.
func TestBrokerRestartDurable(t *testing.T) {
	t.Parallel()
	n := sized(8, 20)
	e := newEnvOn(t, rabbitcluster.Start(t, 1).Nodes[0], n, "--amqp-durable-queues")
	e.start()
	e.kill() // casts wait in the queue while no worker consumes
	for i := 1; i <= n; i++ {
		e.cast(spawnCast(i))
	}
	e.restartBroker(0)
	e.start()
	e.verify("broker stop_app/start_app, durable queues", 1, n, expect{}, 3*time.Minute)
}

// TestBrokerRestartMidStorm stops and starts a private broker's app while a worker
// runs a storm of spawns, with durable and with quorum queues: the worker reconnects
// on its own, and every cast it had received (recorded in PostgreSQL) or that waited
// in a queue finishes, with its notifications.
func TestBrokerRestartMidStorm(t *testing.T) {
	t.Parallel()
	for _, q := range []struct{ name, flag string }{{"durable", "--amqp-durable-queues"}, {"quorum", "--rabbit-quorum-queue"}} {
		t.Run(q.name, func(t *testing.T) {
			t.Parallel()
			n := sized(12, 40)
			e := newEnvOn(t, rabbitcluster.Start(t, 1).Nodes[0], n, q.flag)
			e.start()
			for i := 1; i <= n; i++ {
				e.cast(spawnCast(i))
			}
			time.Sleep(time.Second) // some casts taken, some still queued
			e.restartBroker(2 * time.Second)
			e.verify("broker stop_app/start_app mid-storm, "+q.name+" queues", 1, n, expect{}, 5*time.Minute)
		})
	}
}
