package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/messages"
	"xcatbm/publisher"
	"xcatbm/worker"
	"xcatbm/worker/store"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// hwNode is a simulated IPMI node with a hardware inventory.
func hwNode(name, mac string) sim.NodeSpec {
	return sim.NodeSpec{Name: name, Groups: []string{"all", "compute"}, Power: "off", Attrs: map[string]string{
		"mgt": "ipmi", "bmc": name + "-bmc", "mac": mac, "ip": "10.0.0." + name[len(name)-1:],
		"cpucount": "32", "memory": "131072MB", "disksize": "sda:480GB,sdb:1TB", "servicenode": "mn1", "xcatmaster": "mn1",
	}}
}

// submit casts a job to the test worker and waits for its end.
func (e *env) submit(method string, args messages.JobArgs) *publisher.Summary {
	e.t.Helper()
	p, err := publisher.Dial(publisher.Config{URLs: []string{e.vh.URL}})
	if err != nil {
		e.t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := p.Submit(ctx, host, method, args, true)
	if err != nil {
		e.t.Fatal(err)
	}
	defer j.Close()
	end, err := j.Follow(ctx, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return publisher.Summarize(j, end)
}

func results(s *publisher.Summary) map[string]messages.JobItemResult {
	out := map[string]messages.JobItemResult{}
	for _, r := range s.Results {
		out[r.Name] = r
	}
	return out
}

func TestRegisterNodes(t *testing.T) {
	noMAC := hwNode("n04", "")
	noHW := hwNode("n05", "aa:bb:cc:00:00:05")
	delete(noHW.Attrs, "cpucount")
	delete(noHW.Attrs, "disksize")
	noBMC := hwNode("n06", "aa:bb:cc:00:00:06")
	delete(noBMC.Attrs, "bmc")
	e := newEnv(t, hwNode("n01", "AA:BB:CC:00:00:01"), hwNode("n02", "aa:bb:cc:00:00:02|aa:bb:cc:00:01:02"),
		hwNode("n03", "aa:bb:cc:00:00:03!n03-eth1"), noMAC, noHW, noBMC)
	e.startWorker(testConfig())
	ctx := context.Background()

	s := e.submit(messages.MethodRegisterNodes, &messages.RegisterNodesArgs{NodeRange: "n[01-06]", ComputeHost: host})
	res := results(s)
	if len(res) != 6 || s.OK != 3 || s.Failed != 2 || s.Skipped != 1 {
		t.Fatalf("first run: %+v", s)
	}
	for _, n := range []string{"n01", "n02", "n03"} {
		if !strings.HasPrefix(res[n].Message, "registered") {
			t.Errorf("%s: %+v", n, res[n])
		}
	}
	if r := res["n04"]; r.Status != messages.ItemSkipped || !strings.Contains(r.Message, "mac.mac") {
		t.Errorf("n04 without MAC: %+v", r)
	}
	if r := res["n05"]; r.Status != messages.ItemFailed || !strings.Contains(r.Message, "hwinv.cpucount") || !strings.Contains(r.Message, "hwinv.disksize") {
		t.Errorf("n05 without cpucount/disksize: %+v", r)
	}
	if r := res["n06"]; r.Status != messages.ItemFailed || !strings.Contains(r.Message, "ipmi.bmc") {
		t.Errorf("n06 without bmc: %+v", r)
	}
	want := map[string]string{"n01": "aa:bb:cc:00:00:01", "n02": "aa:bb:cc:00:00:02", "n03": "aa:bb:cc:00:00:03"}
	for name, mac := range want {
		n, err := e.st.Node(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if n.MAC != mac || n.ComputeHost != host || n.Mgt != "ipmi" || n.BMC != name+"-bmc" || n.BMCUsername != "ADMIN" ||
			n.BMCPassword.Reveal() != "admin" || n.CPUs != 32 || n.MemoryMB != 131072 || n.DiskGB != 480 ||
			n.ResourceClass != "BAREMETAL_32C128G" || n.OriginalIP != "10.0.0."+name[2:] {
			t.Errorf("%s row: %+v", name, n)
		}
	}
	for _, name := range []string{"n04", "n05", "n06"} {
		if _, err := e.st.Node(ctx, name); err == nil {
			t.Errorf("%s was recorded", name)
		}
	}

	// A second run changes nothing.
	before, _ := e.st.Node(ctx, "n01")
	s = e.submit(messages.MethodRegisterNodes, &messages.RegisterNodesArgs{NodeRange: "n01,n02,n03", ComputeHost: host})
	for name, r := range results(s) {
		if r.Status != messages.ItemOK || r.Message != "unchanged" {
			t.Errorf("second run %s: %+v", name, r)
		}
	}
	if after, _ := e.st.Node(ctx, "n01"); !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("unchanged node rewritten: %v → %v", before.UpdatedAt, after.UpdatedAt)
	}

	// A changed node is updated; an explicit resource class wins.
	if _, err := e.xc.ChDef(ctx, "n02", xcat.ChDefSet, xcat.Attrs{"memory": "64GB", "bmcpassword": "s3cret"}); err != nil {
		t.Fatal(err)
	}
	s = e.submit(messages.MethodRegisterNodes, &messages.RegisterNodesArgs{NodeRange: "n02", ComputeHost: host, ResourceClass: "gpu.large"})
	r := results(s)["n02"]
	if r.Status != messages.ItemOK || !strings.HasPrefix(r.Message, "updated: ") || !strings.Contains(r.Message, "memory_mb") ||
		!strings.Contains(r.Message, "bmc_password") || !strings.Contains(r.Message, "resource_class") || strings.Contains(r.Message, "s3cret") {
		t.Errorf("changed node: %+v", r)
	}
	if n, _ := e.st.Node(ctx, "n02"); n.MemoryMB != 65536 || n.ResourceClass != "gpu.large" || n.BMCPassword.Reveal() != "s3cret" {
		t.Errorf("n02 after update: %+v", n)
	}

	// A node an instance uses on another compute host stays there; a free one moves here.
	if _, err := e.st.DB().ExecContext(ctx, `UPDATE nodes SET compute_host='other-host', instance_uuid=CASE WHEN name='n03' THEN 'inst-3' ELSE '' END
		WHERE name IN ('n01','n03')`); err != nil {
		t.Fatal(err)
	}
	s = e.submit(messages.MethodRegisterNodes, &messages.RegisterNodesArgs{NodeRange: "n01,n03", ComputeHost: host})
	res = results(s)
	if r := res["n03"]; r.Status != messages.ItemFailed || r.Message != "in use by instance inst-3 on compute host other-host" {
		t.Errorf("n03 in use: %+v", r)
	}
	if r := res["n01"]; r.Status != messages.ItemOK || r.Message != "updated: compute_host" {
		t.Errorf("n01 moved: %+v", r)
	}
	for name, want := range map[string]string{"n01": host, "n03": "other-host"} {
		if n, err := e.st.Node(ctx, name); err != nil || n.ComputeHost != want {
			t.Errorf("%s after the move: %+v, %v; want compute host %s", name, n, err, want)
		}
	}
}

// novaStub stands in for the nova integration: SyncNodes answers the state set for
// each node (none for a node left out) and records the names it was asked.
type novaStub struct {
	mu     sync.Mutex
	states map[string]store.NodeRegistration
	asked  []string
}

func (n *novaStub) JobStarted(worker.JobEvent) []store.NovaOp { return nil }
func (n *novaStub) JobEnded(worker.JobEvent) []store.NovaOp   { return nil }
func (n *novaStub) NodesChanged()                             {}

func (n *novaStub) SyncNodes(_ context.Context, names []string) map[string]store.NodeRegistration {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.asked = append(n.asked, names...)
	out := map[string]store.NodeRegistration{}
	for _, name := range names {
		if r, ok := n.states[name]; ok {
			out[name] = r
		}
	}
	return out
}

// TestRegisterNodesReportsNovaState: with the nova integration, a recorded node is
// ok only when its compute node and resource provider are ready; otherwise the job
// says per node what is pending or failed, and the command's exit code follows.
func TestRegisterNodesReportsNovaState(t *testing.T) {
	e := newEnv(t, hwNode("n01", "aa:bb:cc:00:00:01"), hwNode("n02", "aa:bb:cc:00:00:02"), hwNode("n03", "aa:bb:cc:00:00:03"),
		hwNode("n04", "aa:bb:cc:00:00:04"), hwNode("n05", ""))
	nova := &novaStub{states: map[string]store.NodeRegistration{
		"n01": {Name: "n01", State: store.RegistrationReady, Detail: "compute node and resource provider u-1, inventory CUSTOM_BAREMETAL_32C128G: 1"},
		"n02": {Name: "n02", State: store.RegistrationPending, Detail: "compute node u-2 exists, no resource provider; placement did not answer"},
		"n03": {Name: "n03", State: store.RegistrationFailed, Detail: "compute node u-3 exists, no resource provider; name taken"},
	}}
	e.startWorkerWith(testConfig(), nova)
	ctx := context.Background()

	s := e.submit(messages.MethodRegisterNodes, &messages.RegisterNodesArgs{NodeRange: "n[01-05]", ComputeHost: host})
	want := map[string]struct{ status, text string }{
		"n01": {messages.ItemOK, "; ready: compute node and resource provider u-1"},
		"n02": {messages.ItemPending, "; pending in nova and placement (the worker keeps trying): compute node u-2 exists"},
		"n03": {messages.ItemFailed, "; refused by nova or placement: compute node u-3 exists"},
		"n04": {messages.ItemPending, "; not yet synced to nova and placement"},
		"n05": {messages.ItemSkipped, "mac.mac"},
	}
	res := results(s)
	for name, w := range want {
		r := res[name]
		if r.Status != w.status || !strings.Contains(r.Message, w.text) || (name != "n05" && !strings.HasPrefix(r.Message, "registered (")) {
			t.Errorf("%s: %s %q, want %s with %q", name, r.Status, r.Message, w.status, w.text)
		}
	}
	if s.OK != 1 || s.Pending != 2 || s.Failed != 1 || s.Skipped != 1 || s.ExitCode() != publisher.ExitFailed {
		t.Errorf("summary %d ok, %d pending, %d failed, %d skipped, exit %d", s.OK, s.Pending, s.Failed, s.Skipped, s.ExitCode())
	}
	for i := 1; i < len(s.Results); i++ {
		if s.Results[i-1].Name >= s.Results[i].Name {
			t.Errorf("results not by name: %v", s.Results)
		}
	}
	nova.mu.Lock()
	asked := slices.Clone(nova.asked)
	nova.mu.Unlock()
	slices.Sort(asked)
	if !slices.Equal(asked, []string{"n01", "n02", "n03", "n04"}) {
		t.Errorf("synced %v, want the four recorded nodes", asked)
	}
	// Newly recorded nodes are pending until the integration records their state.
	st, err := e.st.NodeStatuses(ctx, host, []string{"n04"})
	if err != nil || len(st) != 1 || st[0].Registration.State != store.RegistrationPending {
		t.Errorf("n04 registration: %+v %v", st, err)
	}

	// Nothing failed, something pending: exit code 3.
	s = e.submit(messages.MethodRegisterNodes, &messages.RegisterNodesArgs{NodeRange: "n01,n02", ComputeHost: host})
	if r := results(s)["n01"]; r.Status != messages.ItemOK || !strings.HasPrefix(r.Message, "unchanged; ready: ") {
		t.Errorf("second run n01: %+v", r)
	}
	if s.ExitCode() != publisher.ExitPending {
		t.Errorf("exit code %d with a pending node, want %d", s.ExitCode(), publisher.ExitPending)
	}
}

func TestRegisterNodesBadInput(t *testing.T) {
	e := newEnv(t, hwNode("n01", "aa:bb:cc:00:00:01"))
	e.startWorker(testConfig())
	for _, c := range []struct {
		name string
		args messages.RegisterNodesArgs
		want string
	}{
		{"unknown node", messages.RegisterNodesArgs{NodeRange: "n01,ghost7", ComputeHost: host}, "ghost7"},
		{"bad noderange", messages.RegisterNodesArgs{NodeRange: "n[01-", ComputeHost: host}, "n[01-"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := e.submit(messages.MethodRegisterNodes, &c.args)
			if s.Failed != 1 || len(s.Results) != 1 || !strings.Contains(s.Results[0].Message, c.want) {
				t.Errorf("%+v", s)
			}
		})
	}
}

// TestRegistrationBoundInWorker: a registration naming more nodes than the bound,
// cast by something other than xcatbm's admin tools (which refuse it themselves),
// fails in the worker before any xCAT request.
func TestRegistrationBoundInWorker(t *testing.T) {
	e := newEnv(t, hwNode("n01", "aa:bb:cc:00:00:01"))
	e.startWorker(testConfig())
	for _, c := range []struct {
		method string
		args   messages.JobArgs
	}{
		{messages.MethodRegisterNodes, &messages.RegisterNodesArgs{NodeRange: "n[1-1000000]", ComputeHost: host}},
		{messages.MethodRemoveNodes, &messages.RemoveNodesArgs{NodeRange: "n[1-20000]"}},
	} {
		req, err := messages.NewJobRequest(c.method, c.args, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := messages.EncodeRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.ch.PublishWithContext(context.Background(), "nova", "compute."+host, false, false, amqp.Publishing{Body: body}); err != nil {
			t.Fatal(err)
		}
		var state, jobErr string
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			err := e.db.QueryRow(`SELECT state, error FROM jobs WHERE message_id = $1 AND finished_at IS NOT NULL`, req.UniqueID).Scan(&state, &jobErr)
			if err == nil {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		if state != "failed" || !strings.Contains(jobErr, "more than 10000 nodes") {
			t.Errorf("%s: job %q %q; want failed over the bound", c.method, state, jobErr)
		}
	}
	if reqs := e.sim.Requests(); len(reqs) != 0 {
		t.Errorf("a noderange over the bound reached xCAT: %v", reqs)
	}
}

func TestRemoveNodes(t *testing.T) {
	e := newEnv(t, hwNode("n01", "aa:bb:cc:00:00:01"), hwNode("n02", "aa:bb:cc:00:00:02"), hwNode("n03", "aa:bb:cc:00:00:03"))
	e.startWorker(testConfig())
	ctx := context.Background()
	if s := e.submit(messages.MethodRegisterNodes, &messages.RegisterNodesArgs{NodeRange: "n[01-03]", ComputeHost: host}); s.OK != 3 {
		t.Fatalf("register: %+v", s)
	}
	busy := "7e1b6c8a-4a1e-4c55-9d55-0c2f3f1a0b11"
	if _, err := e.st.DB().ExecContext(ctx, `UPDATE nodes SET instance_uuid=$1 WHERE name='n02'`, busy); err != nil {
		t.Fatal(err)
	}
	s := e.submit(messages.MethodRemoveNodes, &messages.RemoveNodesArgs{NodeRange: "n[01-04]"})
	res := results(s)
	if res["n01"].Status != messages.ItemOK || res["n03"].Status != messages.ItemOK {
		t.Errorf("free nodes: %+v", s)
	}
	if r := res["n02"]; r.Status != messages.ItemFailed || !strings.Contains(r.Message, busy) {
		t.Errorf("node in use: %+v", r)
	}
	if r := res["n04"]; r.Status != messages.ItemSkipped {
		t.Errorf("node xCAT does not know: %+v", r)
	}
	if _, err := e.st.Node(ctx, "n02"); err != nil {
		t.Errorf("node in use was removed: %v", err)
	}
	for _, n := range []string{"n01", "n03"} {
		if _, err := e.st.Node(ctx, n); err == nil {
			t.Errorf("%s still registered", n)
		}
	}
	if s.ExitCode() != 1 {
		t.Errorf("exit code %d with a refused node", s.ExitCode())
	}
}

// TestRegisterNodesProgress: a registration of 120 nodes reports progress every 25
// nodes, each notification carrying only the nodes done since the previous one, so
// that a job's notifications grow linearly with its nodes; the end carries them all.
func TestRegisterNodesProgress(t *testing.T) {
	var specs []sim.NodeSpec
	for i := 1; i <= 120; i++ {
		name := fmt.Sprintf("p%03d", i)
		specs = append(specs, hwNode(name, fmt.Sprintf("aa:bb:cc:00:%02x:%02x", i/256, i%256)))
	}
	e := newEnv(t, specs...)
	e.startWorker(testConfig())
	p, err := publisher.Dial(publisher.Config{URLs: []string{e.vh.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j, err := p.Submit(ctx, host, messages.MethodRegisterNodes, &messages.RegisterNodesArgs{NodeRange: "p[001-120]", ComputeHost: host}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var dones []int
	seen := map[string]int{}
	end, err := j.Follow(ctx, func(pp *messages.JobPayload) {
		dones = append(dones, pp.Done)
		if pp.Total != 120 {
			t.Errorf("progress total %d, want 120", pp.Total)
		}
		for _, r := range pp.Results {
			seen[r.Name]++
		}
		if len(pp.Results) != 25 {
			t.Errorf("progress at %d carries %d results, want the 25 since the previous one", pp.Done, len(pp.Results))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{25, 50, 75, 100}; !slices.Equal(dones, want) {
		t.Errorf("progress at %v, want %v", dones, want)
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s in %d progress notifications", name, n)
		}
	}
	if len(seen) != 100 {
		t.Errorf("%d nodes in progress notifications, want 100", len(seen))
	}
	if end.Done != 120 || len(end.Results) != 120 {
		t.Errorf("end: done %d with %d results, want 120 and 120", end.Done, len(end.Results))
	}
}
