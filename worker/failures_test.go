package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/worker"
	"xcatbm/xcat/sim"
)

// TestSpawnFailures: each permanent problem fails the spawn at once with its reason
// and an instance.create.error notification; the consumer keeps going.
func TestSpawnFailures(t *testing.T) {
	t.Parallel()
	foreign := ipmiNode("n04", "10.0.0.14")
	foreign.Attrs["servicenode"] = "sn9"
	kvm := ipmiNode("n05", "10.0.0.15")
	kvm.Attrs["mgt"] = "kvm"
	e := newEnv(t, ipmiNode("n01", "10.0.0.11"), ipmiNode("n02", "10.0.0.12"), foreign, kvm)
	e.sim.SetFault(sim.Fault{Kind: sim.FaultInstallFail, Nodes: []string{"n01"}})
	e.startWorker(testConfig())
	tests := []struct {
		name, node, image, wantErr string
	}{
		{"install fails", "n01", image, "install failed"},
		{"missing image property", "n02", "", "xcat_image_name"},
		{"unknown node", "nosuch", image, "unknown xCAT node"},
		{"node of another management node", "n04", image, "managed by sn9"},
		{"unsupported nodehm.mgt", "n05", image, `nodehm.mgt="kvm"`},
	}
	for i, tc := range tests {
		uuid := "22222222-2222-4222-8222-00000000000" + string(rune('0'+i))
		e.cast(castSpec{file: "cast-build_and_run_instance.json", node: tc.node, uuid: uuid, image: tc.image})
		j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second)
		if j.State != string(worker.StateFailed) || !strings.Contains(j.Error, tc.wantErr) {
			t.Errorf("%s: job ended %s with %q, want failed with %q", tc.name, j.State, j.Error, tc.wantErr)
		}
		e.notes.waitFor(t, uuid, "instance.create.error")
	}
	if n := e.sim.CountRequests("rpower", "boot"); n != 1 {
		t.Errorf("rpower boot sent %d times; only n01's install should have booted", n)
	}
	// One lsdef learns that a node is unknown; asking again would learn nothing.
	lsdefs := 0
	for _, r := range e.sim.Requests() {
		if r.Command == "lsdef" && slices.Contains(r.Args, "nosuch") { // lsdef -o nosuch
			lsdefs++
		}
	}
	if lsdefs != 1 {
		t.Errorf("lsdef sent %d times for the unknown node, want 1", lsdefs)
	}
	// n01's failed install was undone: powered off, its postscript entry gone, its
	// boot state offline, and the node free again.
	if n := e.sim.CountRequests("rpower", "off"); n != 1 {
		t.Errorf("rpower off sent %d times; the failed install of n01 should be powered off once", n)
	}
	attrs, err := e.xc.LsDefNodes(context.Background(), "n01", nil, "postbootscripts", "currstate")
	if err != nil {
		t.Fatal(err)
	}
	if a := attrs["n01"]; strings.Contains(a["postbootscripts"], "config_ops_bmnode") || a["currstate"] != "offline" {
		t.Errorf("n01 after the undo: postbootscripts %q, currstate %q; want no config_ops_bmnode entry and offline", a["postbootscripts"], a["currstate"])
	}
	if node, err := e.st.Node(context.Background(), "n01"); err != nil || node.InstanceUUID != "" {
		t.Errorf("n01's record after the undo: %+v, %v; want it free", node, err)
	}
}

// TestHungInstallPastDeadline fails a spawn whose node stays installing.
func TestHungInstallPastDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n06", "10.0.0.16"))
	e.sim.SetFault(sim.Fault{Kind: sim.FaultInstallHang, Nodes: []string{"n06"}})
	cfg := testConfig()
	cfg.Deadlines = map[worker.Kind]time.Duration{worker.KindSpawn: 2 * time.Second}
	e.startWorker(cfg)
	const uuid = "66666666-6666-4666-8666-666666666666"
	e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n06", uuid: uuid, image: image})
	j := e.waitJob(uuid, worker.KindSpawn, 20*time.Second)
	if j.State != "failed" || !strings.Contains(j.Error, `still "installing"`) {
		t.Fatalf("job ended %s: %q", j.State, j.Error)
	}
}

// TestDestroyDuringSpawn cancels the spawn at its next step boundary, then cleans up.
func TestDestroyDuringSpawn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n07", "10.0.0.17"))
	e.sim.SetFault(sim.Fault{Kind: sim.FaultInstallHang, Nodes: []string{"n07"}})
	e.startWorker(testConfig())
	const uuid = "77777777-7777-4777-8777-777777777777"
	e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n07", uuid: uuid, image: image, ip: "192.168.1.7", cidr: "192.168.1.0/24"})
	if err := e.sim.WaitStatus(context.Background(), "n07", "installing"); err != nil {
		t.Fatal(err)
	}
	e.cast(castSpec{file: "cast-terminate_instance.json", node: "n07", uuid: uuid})
	spawn := e.waitJob(uuid, worker.KindSpawn, 20*time.Second)
	destroy := e.waitJob(uuid, worker.KindDestroy, 20*time.Second)
	if spawn.State != string(worker.StateCancelled) || destroy.State != string(worker.StateDone) {
		t.Fatalf("spawn %s (%s), destroy %s (%s)", spawn.State, spawn.Error, destroy.State, destroy.Error)
	}
	n, _ := e.sim.Node("n07")
	if n.Power != "off" || len(n.PostBootScripts) != 0 {
		t.Errorf("after destroy: power %s postbootscripts %v", n.Power, n.PostBootScripts)
	}
	e.notes.waitFor(t, uuid, "instance.delete.end")
}

// TestDuplicateCastIsNoOp delivers the same cast twice: one job, one boot.
func TestDuplicateCastIsNoOp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n08", "10.0.0.18"))
	e.startWorker(testConfig())
	const uuid = "88888888-8888-4888-8888-888888888888"
	spec := castSpec{file: "cast-build_and_run_instance.json", node: "n08", uuid: uuid, image: image, uniqueID: "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0"}
	e.cast(spec)
	e.cast(spec)
	e.waitJob(uuid, worker.KindSpawn, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	jobs, err := e.st.JobsByInstance(context.Background(), uuid)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("%d jobs (%v), want 1", len(jobs), err)
	}
	if n := count(commands(e.sim, "n08"), "rpower boot"); n != 1 {
		t.Errorf("rpower boot sent %d times", n)
	}
}

// deadCanary is the secret planted in a dead-lettered cast.
const deadCanary = "CANARY-dead-letter-5e2a"

// TestBadInputIsDeadLettered: each unusable message lands on the dead-letter queue
// with its reason and without the request's secrets, and the consumer carries on.
func TestBadInputIsDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n09", "10.0.0.19"))
	e.startWorker(testConfig())
	good := string(castBody(t, castSpec{file: "cast-start_instance.json", node: "n09", uuid: "99999999-9999-4999-8999-999999999999"}))
	bad := []struct {
		name, body, reason string
	}{
		{"truncated JSON", good[:len(good)/2], "undecodable"},
		{"oslo.message not a string", `{"oslo.version": "2.0", "oslo.message": 42}`, "oslo.message"},
		{"args not an object", string(castBody(t, castSpec{file: "cast-start_instance.json"})), ""}, // replaced below
		{"unknown method", string(castBody(t, castSpec{file: "cast-start_instance.json", method: "frobnicate_instance"})), "frobnicate_instance"},
		{"unsupported version", string(castBody(t, castSpec{file: "cast-start_instance.json", version: "7.0"})), "7.0"},
		{"unsupported version, with secrets", string(castBody(t, castSpec{file: "cast-build_and_run_instance.json", version: "7.1", secret: deadCanary})), "7.1"},
	}
	bad[2].body = `{"oslo.version": "2.0", "oslo.message": "{\"method\": \"start_instance\", \"args\": [1], \"version\": \"6.0\", \"_unique_id\": \"ab\"}"}`
	bad[2].reason = "args"
	for _, b := range bad {
		if err := e.ch.PublishWithContext(context.Background(), "nova", "compute."+host, false, false, amqp.Publishing{Body: []byte(b.body)}); err != nil {
			t.Fatal(err)
		}
	}
	e.cast(castSpec{file: "cast-start_instance.json", node: "n09", uuid: "99999999-9999-4999-8999-999999999999"})
	if j := e.waitJob("99999999-9999-4999-8999-999999999999", worker.KindPowerOn, 20*time.Second); j.State != "done" {
		t.Fatalf("good cast after bad ones: %s %s", j.State, j.Error)
	}
	var reasons []string
	deadline := time.Now().Add(10 * time.Second)
	for len(reasons) < len(bad) && time.Now().Before(deadline) {
		d, ok, err := e.ch.Get("xcatbm.dead_letter", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		reasons = append(reasons, d.Headers["x-xcatbm-reason"].(string))
		if strings.Contains(string(d.Body), deadCanary) {
			t.Errorf("a dead-lettered body keeps the request's secrets: %.300s", d.Body)
		}
		if strings.Contains(string(d.Body), "7.1") && !strings.Contains(string(d.Body), "build_and_run_instance") {
			t.Errorf("the redacted body lost what a diagnosis needs: %.300s", d.Body)
		}
	}
	if len(reasons) != len(bad) {
		t.Fatalf("dead letters %d, want %d: %v", len(reasons), len(bad), reasons)
	}
	for i, b := range bad {
		if !strings.Contains(reasons[i], b.reason) {
			t.Errorf("%s: reason %q lacks %q", b.name, reasons[i], b.reason)
		}
	}
}

// TestTwoWorkersShareOneHost: two workers consume the same queues; every spawn runs
// once.
func TestTwoWorkersShareOneHost(t *testing.T) {
	t.Parallel()
	var nodes []sim.NodeSpec
	for i := 10; i < 16; i++ {
		nodes = append(nodes, ipmiNode("n"+itoa(i), "10.0.0."+itoa(i)))
	}
	e := newEnv(t, nodes...)
	e.startWorker(testConfig())
	e.startWorker(testConfig())
	for i := 10; i < 16; i++ {
		e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n" + itoa(i), uuid: "aaaaaaaa-aaaa-4aaa-8aaa-0000000000" + itoa(i), image: image})
	}
	for i := 10; i < 16; i++ {
		if j := e.waitJob("aaaaaaaa-aaaa-4aaa-8aaa-0000000000"+itoa(i), worker.KindSpawn, 30*time.Second); j.State != "done" {
			t.Errorf("n%d: %s %s", i, j.State, j.Error)
		}
		if n := count(commands(e.sim, "n"+itoa(i)), "rpower boot"); n != 1 {
			t.Errorf("n%d: rpower boot sent %d times", i, n)
		}
	}
}

// TestWorkerStoppedMidJobResumes stops a worker while installs run and starts
// another: the jobs finish without booting any node twice.
func TestWorkerStoppedMidJobResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n20", "10.0.0.20"), ipmiNode("n21", "10.0.0.21"))
	stop := e.startWorker(testConfig())
	for _, n := range []string{"20", "21"} {
		e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n" + n, uuid: "bbbbbbbb-bbbb-4bbb-8bbb-0000000000" + n, image: image})
	}
	if err := e.sim.WaitStatus(context.Background(), "n21", "installing"); err != nil {
		t.Fatal(err)
	}
	stop()
	e.startWorker(testConfig())
	for _, n := range []string{"20", "21"} {
		if j := e.waitJob("bbbbbbbb-bbbb-4bbb-8bbb-0000000000"+n, worker.KindSpawn, 30*time.Second); j.State != "done" {
			t.Errorf("n%s: %s %s", n, j.State, j.Error)
		}
		if c := count(commands(e.sim, "n"+n), "rpower boot"); c != 1 {
			t.Errorf("n%s: rpower boot sent %d times", n, c)
		}
	}
}

func itoa(i int) string { return fmt.Sprintf("%02d", i) }

// TestPowerOffRacingReboot: a stop cast right behind a reboot runs after it, in
// arrival order, and the node ends off.
func TestPowerOffRacingReboot(t *testing.T) {
	t.Parallel()
	n := ipmiNode("n40", "10.0.0.40")
	n.Power = "on"
	e := newEnv(t, n)
	e.startWorker(testConfig())
	const uuid = "40404040-4040-4040-8040-404040404040"
	e.cast(castSpec{file: "cast-reboot_instance.json", node: "n40", uuid: uuid})
	e.cast(castSpec{file: "cast-stop_instance.json", node: "n40", uuid: uuid})
	reboot := e.waitJob(uuid, worker.KindReboot, 20*time.Second)
	stop := e.waitJob(uuid, worker.KindPowerOff, 20*time.Second)
	if reboot.State != "done" || stop.State != "done" {
		t.Fatalf("reboot %s (%s), stop %s (%s)", reboot.State, reboot.Error, stop.State, stop.Error)
	}
	if stop.FinishedAt.Before(*reboot.FinishedAt) {
		t.Errorf("stop finished at %v before the reboot it followed (%v)", stop.FinishedAt, reboot.FinishedAt)
	}
	if st, _ := e.sim.Node("n40"); st.Power != "off" {
		t.Errorf("node ends %s, want off", st.Power)
	}
	cmds := commands(e.sim, "n40")
	boot, off := -1, -1
	for i, c := range cmds {
		if c == "rpower boot" && boot < 0 {
			boot = i
		}
		if c == "rpower off" {
			off = i
		}
	}
	if boot < 0 || off < boot {
		t.Errorf("xCAT calls out of order: %v", cmds)
	}
}

// TestSpawnOnANodeInUseFails: a second instance on a node that runs one fails at
// resolve and never reaches xCAT's nodeset.
func TestSpawnOnANodeInUseFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n41", "10.0.0.41"))
	e.startWorker(testConfig())
	const first, second = "41414141-4141-4141-8141-414141414141", "42424242-4242-4242-8242-424242424242"
	e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n41", uuid: first, image: image})
	if j := e.waitJob(first, worker.KindSpawn, 30*time.Second); j.State != "done" {
		t.Fatalf("first spawn: %s %s", j.State, j.Error)
	}
	e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n41", uuid: second, image: image})
	j := e.waitJob(second, worker.KindSpawn, 30*time.Second)
	if j.State != "failed" || !strings.Contains(j.Error, "in use") || !strings.Contains(j.Error, first) {
		t.Fatalf("second spawn ended %s: %q", j.State, j.Error)
	}
	if n := e.sim.CountRequests("nodeset"); n != 1 {
		t.Errorf("nodeset sent %d times, want only the first spawn's", n)
	}
}

// TestComputeRPC5Casts: a conductor pinned to compute RPC 5.x (a rolling upgrade)
// is served as nova-compute 26 serves it through its _ComputeV5Proxy: 5.0 to 5.13;
// 5.14 and 4.x are refused with UnsupportedVersion.
func TestComputeRPC5Casts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n31", "10.0.0.31"))
	e.startWorker(testConfig())
	const uuid = "55555555-5555-4555-8555-555555555531"
	for _, c := range []struct {
		file, version string
		kind          worker.Kind
	}{
		{"cast-build_and_run_instance.json", "5.13", worker.KindSpawn},
		{"cast-stop_instance.json", "5.0", worker.KindPowerOff},
		{"cast-start_instance.json", "5.11", worker.KindPowerOn},
		{"cast-reboot_instance.json", "5.2", worker.KindReboot},
	} {
		e.cast(castSpec{file: c.file, node: "n31", uuid: uuid, image: image, version: c.version})
		if j := e.waitJob(uuid, c.kind, 30*time.Second); j.State != string(worker.StateDone) {
			t.Errorf("%s at %s: %s %s", c.kind, c.version, j.State, j.Error)
		}
	}
	for _, v := range []string{"5.14", "4.22"} {
		e.cast(castSpec{file: "cast-stop_instance.json", node: "n31", uuid: uuid, version: v})
	}
	var reasons []string
	deadline := time.Now().Add(10 * time.Second)
	for len(reasons) < 2 && time.Now().Before(deadline) {
		d, ok, err := e.ch.Get("xcatbm.dead_letter", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		reasons = append(reasons, d.Headers["x-xcatbm-reason"].(string))
	}
	if len(reasons) != 2 || !strings.Contains(reasons[0], "UnsupportedVersion") || !strings.Contains(reasons[1], "UnsupportedVersion") {
		t.Errorf("5.14 and 4.22 should be dead-lettered as UnsupportedVersion: %q", reasons)
	}
}
