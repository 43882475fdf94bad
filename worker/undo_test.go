package worker_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"xcatbm/worker"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// residueIgnored are the lsdef attributes xCAT itself keeps as a record of what
// happened to a node (its status, the last image provisioned and its boot state);
// everything else a spawn changed must be as it was once the spawn failed.
var residueIgnored = map[string]bool{"status": true, "statustime": true, "currstate": true, "currchain": true,
	"provmethod": true, "os": true, "arch": true, "profile": true}

func configured(t *testing.T, xc xcat.Client, node string) xcat.Attrs {
	t.Helper()
	all, err := xc.LsDefNodes(context.Background(), node, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all[node]) == 0 {
		t.Fatalf("lsdef %s gave no attributes", node)
	}
	out := xcat.Attrs{}
	for k, v := range all[node] {
		if !residueIgnored[k] {
			out[k] = v
		}
	}
	return out
}

// TestFailedSpawnLeavesNoResidue fails spawns at several points after they changed
// xCAT (tenant IP in the node's subnet, the postscript entry, nodeset, rsetboot,
// rpower boot): the undo steps restore every configured attribute, power the node off
// if it was booted, set its boot state offline, and free it; the job ends failed with
// the original fault and nova hears create.error.
func TestFailedSpawnLeavesNoResidue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		image   string
		fault   func(node string) sim.Fault
		wantErr string
		booted  bool
	}{
		{name: "nodeset refuses the image", image: "no-such-image", wantErr: "nodeset"},
		{name: "install fails", image: image, fault: func(n string) sim.Fault { return sim.Fault{Kind: sim.FaultInstallFail, Nodes: []string{n}} },
			wantErr: "install failed", booted: true},
		{name: "install hangs past the deadline", image: image, fault: func(n string) sim.Fault { return sim.Fault{Kind: sim.FaultInstallHang, Nodes: []string{n}} },
			wantErr: "deadline passed", booted: true},
	}
	var specs []sim.NodeSpec
	for i := range cases {
		specs = append(specs, ipmiNode(fmt.Sprintf("n%02d", 40+i), fmt.Sprintf("10.0.0.%d", 40+i)))
	}
	e := newEnv(t, specs...)
	cfg := testConfig()
	cfg.Deadlines = map[worker.Kind]time.Duration{worker.KindSpawn: 3 * time.Second}
	e.startWorker(cfg)
	for i, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			node := specs[i].Name
			before := configured(t, e.xc, node)
			if tc.fault != nil {
				e.sim.SetFault(tc.fault(node))
			}
			uuid := fmt.Sprintf("44444444-4444-4444-8444-%012d", i)
			// The tenant IP is in the node's subnet: set_ip changes the node's ip.
			e.cast(castSpec{file: "cast-build_and_run_instance.json", node: node, uuid: uuid, hostname: "t" + node, image: tc.image,
				ip: fmt.Sprintf("10.0.0.%d", 140+i), cidr: "10.0.0.0/24"})
			j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second)
			if j.State != string(worker.StateFailed) || !strings.Contains(j.Error, tc.wantErr) {
				t.Fatalf("job ended %s with %q; want failed with %q", j.State, j.Error, tc.wantErr)
			}
			if strings.Contains(j.Error, "undoing") {
				t.Fatalf("the undo itself failed: %s", j.Error)
			}
			e.notes.waitFor(t, uuid, "instance.create.error")
			after := configured(t, e.xc, node)
			if !maps.Equal(before, after) {
				t.Errorf("residue on %s:\nbefore %v\nafter  %v", node, before, after)
			}
			// makehosts ran for the tenant's IP; the restore writes the node's own
			// again (xCAT cannot tell whether there was an entry before).
			if st, _ := e.sim.Node(node); st.HostsEntry != "" && st.HostsEntry != before["ip"] {
				t.Errorf("/etc/hosts names %s as %s after the undo; want its own %s", node, st.HostsEntry, before["ip"])
			}
			cmds := commands(e.sim, node)
			if got := count(cmds, "chdef"); got < 2 {
				t.Errorf("the spawn should have changed the node with chdef and the undo restored it: %v", cmds)
			}
			if tc.booted {
				if count(cmds, "rpower off") != 1 {
					t.Errorf("a booted node is powered off once by the undo: %v", cmds)
				}
				if st, _ := e.sim.Node(node); st.Power != "off" {
					t.Errorf("power after the undo: %s", st.Power)
				}
				if count(cmds, "nodeset offline") != 1 {
					t.Errorf("the undo sets the boot state offline once: %v", cmds)
				}
			} else if count(cmds, "rpower") != 0 {
				t.Errorf("a node never booted is not powered: %v", cmds)
			}
			rec, err := e.st.Node(context.Background(), node)
			if err != nil || rec.InstanceUUID != "" {
				t.Errorf("node record after the undo: %+v, %v; want free", rec, err)
			}
		})
	}
}
