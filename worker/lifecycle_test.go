package worker_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"xcatbm/worker"
)

const image = "rhels7.5-x86_64-install-compute"

// TestInstanceLifecycle drives one node through spawn, stop, start, reboot and
// destroy with nova's casts, checking the xCAT calls, the rows and the notifications.
func TestInstanceLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n01", "10.0.0.11"), ipmiNode("n02", "10.0.0.12"))
	e.startWorker(testConfig())
	ctx := context.Background()
	const uuid = "11111111-1111-4111-8111-111111111111"

	// spawn with a tenant IP outside the xCAT subnet: the postscript adds it as alias.
	e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n01", uuid: uuid, hostname: "tenant-a", image: image, ip: "192.168.7.20", cidr: "192.168.7.0/24"})
	j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second)
	if j.State != string(worker.StateDone) {
		t.Fatalf("spawn ended %s: %s", j.State, j.Error)
	}
	n, ok := e.sim.Node("n01")
	if !ok || n.Status != "booted" || n.Power != "on" {
		t.Fatalf("sim n01 after spawn: %+v", n)
	}
	if !slices.Contains(n.PostBootScripts, "config_ops_bmnode tenant-a 192.168.7.20 255.255.255.0") {
		t.Errorf("postbootscripts = %v", n.PostBootScripts)
	}
	if got := e.sim.CountRequests("nodeset", "osimage="+image); got != 1 {
		t.Errorf("nodeset osimage=%s sent %d times, want 1", image, got)
	}
	cmds := commands(e.sim, "n01")
	for _, want := range []string{"nodeset", "rsetboot net", "rpower boot"} {
		if count(cmds, want) != 1 {
			t.Errorf("%q ran %d times for n01, want once; calls %v", want, count(cmds, want), cmds)
		}
	}
	if len(commands(e.sim, "n02")) != 0 {
		t.Errorf("n02 was touched: %v", commands(e.sim, "n02"))
	}
	node, err := e.st.Node(ctx, "n01")
	if err != nil || node.InstanceUUID != uuid || node.OriginalIP != "10.0.0.11" {
		t.Fatalf("nodes row: %+v, %v", node, err)
	}
	hist, err := e.st.History(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, h := range hist {
		if h.From != h.To {
			path = append(path, h.To)
		}
	}
	want := []string{"resolve", "set_ip", "add_postscript", "nodeset", "set_boot", "note_status", "boot", "wait_booted", "done"}
	if !slices.Equal(path, want) {
		t.Errorf("history path %v, want %v", path, want)
	}
	e.notes.waitFor(t, uuid, "instance.create.end")
	e.notes.waitFor(t, uuid, "compute.instance.create.end")

	steps := []struct {
		file  string
		kind  worker.Kind
		power string
		event string
	}{
		{"cast-stop_instance.json", worker.KindPowerOff, "off", "instance.power_off.end"},
		{"cast-start_instance.json", worker.KindPowerOn, "on", "instance.power_on.end"},
		{"cast-reboot_instance.json", worker.KindReboot, "on", "instance.reboot.end"},
	}
	for _, s := range steps {
		e.cast(castSpec{file: s.file, node: "n01", uuid: uuid})
		j := e.waitJob(uuid, s.kind, 20*time.Second)
		if j.State != string(worker.StateDone) {
			t.Fatalf("%s ended %s: %s", s.kind, j.State, j.Error)
		}
		if n, _ := e.sim.Node("n01"); n.Power != s.power {
			t.Errorf("after %s power is %s", s.kind, n.Power)
		}
		e.notes.waitFor(t, uuid, s.event)
	}

	e.cast(castSpec{file: "cast-terminate_instance.json", node: "n01", uuid: uuid})
	j = e.waitJob(uuid, worker.KindDestroy, 20*time.Second)
	if j.State != string(worker.StateDone) {
		t.Fatalf("destroy ended %s: %s", j.State, j.Error)
	}
	n, _ = e.sim.Node("n01")
	if n.Power != "off" {
		t.Errorf("after destroy power is %s", n.Power)
	}
	for _, s := range n.PostBootScripts {
		if strings.HasPrefix(s, "config_ops_bmnode") {
			t.Errorf("postscript left after destroy: %v", n.PostBootScripts)
		}
	}
	if !slices.Contains(n.RanScripts, "deconfig_ops_bmnode 192.168.7.20") {
		t.Errorf("deconfig not run on the node: %v", n.RanScripts)
	}
	node, _ = e.st.Node(ctx, "n01")
	if node.InstanceUUID != "" || node.PowerState != "off" {
		t.Errorf("nodes row after destroy: %+v", node)
	}
	e.notes.waitFor(t, uuid, "instance.delete.end")
}

// TestSpawnInSubnetChangesIP covers the tenant IP in the node's own subnet: chdef ip
// and makehosts, restored on destroy.
func TestSpawnInSubnetChangesIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n03", "10.0.0.13"))
	e.startWorker(testConfig())
	const uuid = "33333333-3333-4333-8333-333333333333"
	e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n03", uuid: uuid, hostname: "t3", image: image, ip: "10.0.0.99", cidr: "10.0.0.0/24"})
	if j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second); j.State != "done" {
		t.Fatalf("spawn: %s %s", j.State, j.Error)
	}
	n, _ := e.sim.Node("n03")
	if n.IP != "10.0.0.99" || n.HostsEntry != "10.0.0.99" {
		t.Errorf("ip %q hosts %q, want 10.0.0.99", n.IP, n.HostsEntry)
	}
	if !slices.Contains(n.PostBootScripts, "config_ops_bmnode t3") {
		t.Errorf("postbootscripts = %v", n.PostBootScripts)
	}
	e.cast(castSpec{file: "cast-terminate_instance.json", node: "n03", uuid: uuid})
	if j := e.waitJob(uuid, worker.KindDestroy, 20*time.Second); j.State != "done" {
		t.Fatalf("destroy: %s %s", j.State, j.Error)
	}
	n, _ = e.sim.Node("n03")
	if n.IP != "10.0.0.13" || n.HostsEntry != "10.0.0.13" {
		t.Errorf("after destroy ip %q hosts %q, want 10.0.0.13", n.IP, n.HostsEntry)
	}
}
