package worker_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"xcatbm/worker"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// gatherConfig makes jobs cast together run their steps together: the executor claims
// only when told of new work, after a window long enough for every cast of the test
// to arrive (and when a batch ends, so waiting jobs still go on).
func gatherConfig() worker.Config {
	cfg := testConfig()
	cfg.GatherWindow = time.Second
	cfg.ClaimInterval = time.Minute
	return cfg
}

// chdefRequests returns the simulator's chdef requests whose arguments are exactly
// args.
func chdefRequests(s *sim.Server, args ...string) []sim.Record {
	var out []sim.Record
	for _, r := range s.Requests() {
		if r.Command == "chdef" && slices.Equal(r.Args, args) {
			out = append(out, r)
		}
	}
	return out
}

// stanzaValues reads attr of every object of a recorded chdef -z request.
func stanzaValues(t *testing.T, r sim.Record, attr string) map[string]string {
	t.Helper()
	objs, err := xcat.ParseStanza(r.Stdin)
	if err != nil {
		t.Fatalf("stanza of %v: %v", r.Args, err)
	}
	out := map[string]string{}
	for _, o := range objs {
		if o.Attrs["objtype"] != "node" {
			t.Errorf("stanza object %s has objtype %q", o.Name, o.Attrs["objtype"])
		}
		out[o.Name] = o.Attrs[attr]
	}
	return out
}

// TestSpawnBatchSendsOneChDefPerChange: four spawns that run together change their
// nodes' ip, stale entries and postbootscripts with one chdef -z request per kind of
// change, each node with its own values; their destroys undo it the same way.
func TestSpawnBatchSendsOneChDefPerChange(t *testing.T) {
	t.Parallel()
	stale1, stale2 := ipmiNode("n51", "10.0.0.51"), ipmiNode("n52", "10.0.0.52")
	stale1.Attrs["postbootscripts"] = "otherpkgs,config_ops_bmnode old51"
	stale2.Attrs["postbootscripts"] = "config_ops_bmnode old52 192.168.9.52 255.255.255.0"
	e := newEnv(t, ipmiNode("n50", "10.0.0.50"), stale1, stale2, ipmiNode("n53", "10.0.0.53"))
	e.startWorker(gatherConfig())

	spawns := []struct {
		node, uuid, ip, cidr, entry, finalIP string
	}{
		{"n50", "50505050-5050-4050-8050-505050505050", "10.0.0.150", "10.0.0.0/24", "config_ops_bmnode t50", "10.0.0.150"},
		{"n51", "51515151-5151-4151-8151-515151515151", "192.168.7.51", "192.168.7.0/24", "config_ops_bmnode t51 192.168.7.51 255.255.255.0", "10.0.0.51"},
		{"n52", "52525252-5252-4252-8252-525252525252", "10.0.0.152", "10.0.0.0/24", "config_ops_bmnode t52", "10.0.0.152"},
		{"n53", "53535353-5353-4353-8353-535353535353", "", "", "config_ops_bmnode t53", "10.0.0.53"},
	}
	for _, s := range spawns {
		e.cast(castSpec{file: "cast-build_and_run_instance.json", node: s.node, uuid: s.uuid, hostname: "t" + s.node[1:], image: image, ip: s.ip, cidr: s.cidr})
	}
	for _, s := range spawns {
		if j := e.waitJob(s.uuid, worker.KindSpawn, 30*time.Second); j.State != string(worker.StateDone) {
			t.Fatalf("spawn on %s ended %s: %s", s.node, j.State, j.Error)
		}
	}
	if n := e.sim.CountRequests("nodeset"); n != 1 {
		t.Errorf("nodeset sent %d times: the spawns did not run as one batch", n)
	}
	adds := chdefRequests(e.sim, "-z", "-p")
	if len(adds) != 1 {
		t.Fatalf("chdef -z -p sent %d times, want 1", len(adds))
	}
	got := stanzaValues(t, adds[0], "postbootscripts")
	for _, s := range spawns {
		if got[s.node] != s.entry {
			t.Errorf("chdef -z -p: %s postbootscripts=%q, want %q", s.node, got[s.node], s.entry)
		}
		n, _ := e.sim.Node(s.node)
		if entries := slices.DeleteFunc(slices.Clone(n.PostBootScripts), func(x string) bool { return !strings.HasPrefix(x, "config_ops_bmnode") }); !slices.Equal(entries, []string{s.entry}) {
			t.Errorf("%s config_ops_bmnode entries %q, want only %q", s.node, entries, s.entry)
		}
		if n.IP != s.finalIP {
			t.Errorf("%s ip %q, want %q", s.node, n.IP, s.finalIP)
		}
	}
	removes := chdefRequests(e.sim, "-z", "-m")
	if len(removes) != 1 || !maps.Equal(stanzaValues(t, removes[0], "postbootscripts"), map[string]string{
		"n51": "config_ops_bmnode old51", "n52": "config_ops_bmnode old52 192.168.9.52 255.255.255.0"}) {
		t.Errorf("stale entries: chdef -z -m requests %+v, want one for n51 and n52", removes)
	}
	sets := chdefRequests(e.sim, "-z")
	if len(sets) != 1 || !maps.Equal(stanzaValues(t, sets[0], "ip"), map[string]string{"n50": "10.0.0.150", "n52": "10.0.0.152"}) {
		t.Errorf("tenant ips: chdef -z requests %+v, want one for n50 and n52", sets)
	}
	if n := e.sim.CountRequests("chdef", "-t"); n != 0 {
		t.Errorf("%d chdef requests node by node, want none", n)
	}

	e.sim.ResetRequests()
	for _, s := range spawns {
		e.cast(castSpec{file: "cast-terminate_instance.json", node: s.node, uuid: s.uuid})
	}
	for _, s := range spawns {
		if j := e.waitJob(s.uuid, worker.KindDestroy, 30*time.Second); j.State != string(worker.StateDone) {
			t.Fatalf("destroy on %s ended %s: %s", s.node, j.State, j.Error)
		}
		n, _ := e.sim.Node(s.node)
		for _, x := range n.PostBootScripts {
			if strings.HasPrefix(x, "config_ops_bmnode") {
				t.Errorf("%s keeps %q after destroy", s.node, x)
			}
		}
	}
	removes = chdefRequests(e.sim, "-z", "-m")
	if len(removes) != 1 || len(stanzaValues(t, removes[0], "postbootscripts")) != len(spawns) {
		t.Errorf("destroy: chdef -z -m requests %+v, want one for the four nodes", removes)
	}
	sets = chdefRequests(e.sim, "-z")
	if len(sets) != 1 || !maps.Equal(stanzaValues(t, sets[0], "ip"), map[string]string{"n50": "10.0.0.50", "n52": "10.0.0.52"}) {
		t.Errorf("destroy: chdef -z requests %+v, want one restoring n50 and n52", sets)
	}
	for _, n := range []string{"n50", "n52"} {
		if st, _ := e.sim.Node(n); st.IP != "10.0.0."+n[1:] {
			t.Errorf("%s ip %q after destroy", n, st.IP)
		}
	}
}

// TestBadNodeInChDefBatchFailsOnlyItsJob: xCAT refuses one node's change inside the
// batch's chdef -z; that spawn fails with the node's error, the others go on, and
// nothing is sent again node by node.
func TestBadNodeInChDefBatchFailsOnlyItsJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n60", "10.0.0.60"), ipmiNode("n61", "10.0.0.61"), ipmiNode("n62", "10.0.0.62"))
	e.sim.SetFault(sim.Fault{Kind: sim.FaultChDefNode, Nodes: []string{"n61"}})
	e.startWorker(gatherConfig())
	uuids := map[string]string{"n60": "60606060-6060-4060-8060-606060606060", "n61": "61616161-6161-4161-8161-616161616161", "n62": "62626262-6262-4262-8262-626262626262"}
	for _, n := range []string{"n60", "n61", "n62"} {
		e.cast(castSpec{file: "cast-build_and_run_instance.json", node: n, uuid: uuids[n], hostname: "t" + n[1:], image: image})
	}
	for _, n := range []string{"n60", "n62"} {
		if j := e.waitJob(uuids[n], worker.KindSpawn, 30*time.Second); j.State != string(worker.StateDone) {
			t.Errorf("spawn on %s ended %s: %s", n, j.State, j.Error)
		}
	}
	j := e.waitJob(uuids["n61"], worker.KindSpawn, 30*time.Second)
	if j.State != string(worker.StateFailed) || !strings.Contains(j.Error, sim.ChDefFaultMessage) || !strings.Contains(j.Error, "chdef -p postbootscripts") {
		t.Errorf("spawn on n61 ended %s with %q, want failed with its chdef error", j.State, j.Error)
	}
	e.notes.waitFor(t, uuids["n61"], "instance.create.error")
	if adds := chdefRequests(e.sim, "-z", "-p"); len(adds) != 1 || len(stanzaValues(t, adds[0], "postbootscripts")) != 3 {
		t.Errorf("chdef -z -p requests %+v, want one for the three nodes", adds)
	}
	if n := e.sim.CountRequests("chdef", "-t"); n != 0 {
		t.Errorf("%d chdef requests node by node, want none", n)
	}
	if c := count(commands(e.sim, "n61"), "rpower"); c != 0 {
		t.Errorf("n61 was booted %d times after its chdef failed", c)
	}
}

// TestChDefBatchFallsBackNodeByNode: when the batch's chdef -z does not complete
// (the connection drops before xCAT's answer), no job is failed by it: each node's
// change is sent again on its own and every spawn goes on.
func TestChDefBatchFallsBackNodeByNode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n63", "10.0.0.63"), ipmiNode("n64", "10.0.0.64"), ipmiNode("n65", "10.0.0.65"))
	e.sim.SetFault(sim.Fault{Kind: sim.FaultDropConnection, Command: "chdef", Count: 1})
	e.startWorker(gatherConfig())
	nodes := []string{"n63", "n64", "n65"}
	uuids := map[string]string{"n63": "63636363-6363-4363-8363-636363636363", "n64": "64646464-6464-4464-8464-646464646464", "n65": "65656565-6565-4565-8565-656565656565"}
	for _, n := range nodes {
		e.cast(castSpec{file: "cast-build_and_run_instance.json", node: n, uuid: uuids[n], hostname: "t" + n[1:], image: image})
	}
	for _, n := range nodes {
		if j := e.waitJob(uuids[n], worker.KindSpawn, 30*time.Second); j.State != string(worker.StateDone) {
			t.Errorf("spawn on %s ended %s: %s", n, j.State, j.Error)
		}
		st, _ := e.sim.Node(n)
		if !slices.Equal(st.PostBootScripts, []string{"config_ops_bmnode t" + n[1:]}) {
			t.Errorf("%s postbootscripts %q", n, st.PostBootScripts)
		}
		var own int
		for _, r := range chdefRequests(e.sim, "-t", "node", "-p", "-o", n, "postbootscripts=config_ops_bmnode t"+n[1:]) {
			if !r.Dropped {
				own++
			}
		}
		if own != 1 {
			t.Errorf("%s: %d chdef requests of its own, want 1 after the batch's failed", n, own)
		}
	}
	if adds := chdefRequests(e.sim, "-z", "-p"); len(adds) != 1 || !adds[0].Dropped {
		t.Errorf("chdef -z -p requests %+v, want the one dropped", adds)
	}
}
