package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"xcatbm/worker"
	"xcatbm/xcat/sim"
)

// nodeRecord reads xcatbm's record of a node.
func (e *env) maintenance(node string) string {
	e.t.Helper()
	n, err := e.st.Node(context.Background(), node)
	if err != nil {
		e.t.Fatal(err)
	}
	return n.Maintenance
}

// waitNodeJob waits until the newest job of kind on node has finished.
func (e *env) waitNodeJob(node string, kind worker.Kind, n int, within time.Duration) (state, jobErr string) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var done int
		err := e.db.QueryRow(`SELECT count(*) FROM jobs WHERE node = $1 AND kind = $2 AND finished_at IS NOT NULL`, node, string(kind)).Scan(&done)
		if err == nil && done >= n {
			_ = e.db.QueryRow(`SELECT state, error FROM jobs WHERE node = $1 AND kind = $2 ORDER BY id DESC LIMIT 1`, node, string(kind)).Scan(&state, &jobErr)
			return state, jobErr
		}
		time.Sleep(25 * time.Millisecond)
	}
	e.t.Fatalf("no %d finished %s jobs on %s within %v", n, kind, node, within)
	return "", ""
}

// TestCleaningBetweenTenants: a destroyed node is held out of scheduling from the
// destroy's commit, genesis erases its disks with the cleaning image, and only then
// is it available; a spawn cast for it meanwhile waits for the cleaning. A failed
// cleaning keeps the node held with the reason until it is retried.
func TestCleaningBetweenTenants(t *testing.T) {
	t.Parallel()
	e, cfg := tenantEnv(t, "", ipmiNode("n71", "10.0.0.71"))
	cfg.CleanMode = worker.CleanMetadata
	e.startWorker(cfg)
	const first, second = "71717171-7171-4171-8171-000000000001", "71717171-7171-4171-8171-000000000002"
	e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n71", uuid: first, image: image})
	if j := e.waitJob(first, worker.KindSpawn, 30*time.Second); j.State != "done" {
		t.Fatalf("spawn: %s %s", j.State, j.Error)
	}
	e.sim.SetFault(sim.Fault{Kind: sim.FaultSlow, Command: "rpower", Delay: 300 * time.Millisecond, Count: 1})
	e.cast(castSpec{file: "cast-terminate_instance.json", node: "n71", uuid: first})
	if j := e.waitJob(first, worker.KindDestroy, 30*time.Second); j.State != "done" {
		t.Fatalf("destroy: %s %s", j.State, j.Error)
	}
	// Right at the destroy's end the node is held, whatever the cleaning's progress.
	if m := e.maintenance("n71"); m != "cleaning" {
		var state string
		_ = e.db.QueryRow(`SELECT state FROM jobs WHERE kind = 'clean'`).Scan(&state)
		if state != "done" {
			t.Errorf("maintenance after the destroy: %q (clean job %s); want cleaning", m, state)
		}
	}
	// The next tenant's spawn, cast while the node is cleaned, runs after it.
	e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n71", uuid: second, image: image})
	if state, err := e.waitNodeJob("n71", worker.KindClean, 1, 30*time.Second); state != "done" {
		t.Fatalf("clean job: %s %s", state, err)
	}
	cl := e.sim.Cleanings("n71")
	if len(cl) != 1 || cl[0].Err != "" || cl[0].Mode != "metadata" || !strings.HasSuffix(cl[0].URL, "/install/xcatbm/clean-metadata.tgz") {
		t.Fatalf("cleanings of n71: %+v", cl)
	}
	if j := e.waitJob(second, worker.KindSpawn, 30*time.Second); j.State != "done" {
		t.Fatalf("second spawn: %s %s", j.State, j.Error)
	}
	var cleanEnd, spawnStart time.Time
	_ = e.db.QueryRow(`SELECT finished_at FROM jobs WHERE kind = 'clean'`).Scan(&cleanEnd)
	_ = e.db.QueryRow(`SELECT min(h.at) FROM job_history h JOIN jobs j ON j.id = h.job_id WHERE j.instance_uuid = $1 AND j.kind = 'spawn' AND h.detail = 'started'`, second).Scan(&spawnStart)
	if !spawnStart.After(cleanEnd) {
		t.Errorf("the next tenant's spawn started at %v, before the cleaning ended at %v", spawnStart, cleanEnd)
	}
	cmds := commands(e.sim, "n71")
	if count(cmds, "nodeset runimage=http://10.0.0.1/install/xcatbm/clean-metadata.tgz") != 1 || count(cmds, "nodeset offline") != 1 {
		t.Errorf("cleaning commands: %v", cmds)
	}

	// The second tenant goes; its cleaning fails; the node stays held.
	e.sim.SetFault(sim.Fault{Kind: sim.FaultCleanFail, Nodes: []string{"n71"}})
	e.cast(castSpec{file: "cast-terminate_instance.json", node: "n71", uuid: second})
	if state, err := e.waitNodeJob("n71", worker.KindClean, 2, 30*time.Second); state != "failed" || !strings.Contains(err, "erasing its disks") {
		t.Fatalf("failing clean job: %s %q", state, err)
	}
	if m := e.maintenance("n71"); !strings.HasPrefix(m, "cleaning failed:") {
		t.Fatalf("maintenance after a failed cleaning: %q", m)
	}
	// Retried once the disk is fixed, it is available again.
	e.sim.ClearFaults()
	ok, err := e.st.RetryCleaning(context.Background(), "n71", worker.NewCleanJob(host, "n71", time.Now(), 0))
	if err != nil || !ok {
		t.Fatalf("retry: %v %v", ok, err)
	}
	if state, err := e.waitNodeJob("n71", worker.KindClean, 3, 30*time.Second); state != "done" {
		t.Fatalf("retried clean job: %s %s", state, err)
	}
	if m := e.maintenance("n71"); m != "" {
		t.Errorf("maintenance after the retried cleaning: %q", m)
	}
	if st, _ := e.sim.Node("n71"); st.Power != "off" {
		t.Errorf("a cleaned node is left off, not %s", st.Power)
	}
}
