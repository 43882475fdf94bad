package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/internal/testkit/testamqp"
	"xcatbm/internal/testkit/testdb"
	"xcatbm/publisher"
	"xcatbm/worker"
	"xcatbm/worker/store"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

const testHost = "xcat-mn1"

// regEnv is an in-process worker against the simulator, a fresh schema and vhost.
type regEnv struct {
	st  *store.Store
	url string
}

func startRegEnv(t *testing.T, nodes ...sim.NodeSpec) *regEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := sim.Start(ctx, sim.Config{Cluster: sim.NewCluster(nodes...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	fsys, dir := store.Migrations()
	db := testdb.New(t, fsys, dir)
	vh := testamqp.New(t)
	nat, err := xcat.NewNative(xcat.NativeConfig{Addr: srv.Addr(), CredDir: srv.CredDir()})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(db.DB)
	w, err := worker.New(worker.Config{ComputeHost: testHost, MgmtNode: "mn1", ClaimInterval: 30 * time.Millisecond,
		Lease: 2 * time.Second, XCATTimeout: 10 * time.Second, PowerSyncInterval: -1,
		Backoff: broker.Backoff{Min: 30 * time.Millisecond, Max: 300 * time.Millisecond}},
		worker.Deps{Store: st, XCAT: xcat.NewClient(nat), AMQPURLs: []string{vh.URL}, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-w.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("worker not consuming after 20s")
	}
	return &regEnv{st: st, url: vh.URL}
}

// run runs a command with the broker URL in XCATBM_TRANSPORT_URL, as an admin would
// have it set; stdout and stderr apart.
func (e *regEnv) run(t *testing.T, argv ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) (string, bool) {
		if k == "XCATBM_TRANSPORT_URL" {
			return e.url, true
		}
		return "", false
	}}
	code := run(context.Background(), env, argv)
	return code, out.String(), errOut.String()
}

func regNode(name, mac string) sim.NodeSpec {
	return sim.NodeSpec{Name: name, Groups: []string{"all", "compute"}, Attrs: map[string]string{
		"mgt": "ipmi", "bmc": name + "-bmc", "bmcpassword": "pw-" + name, "mac": mac, "cpucount": "16", "memory": "65536MB", "disksize": "sda:240GB",
	}}
}

func TestOpsAddBMNodeEndToEnd(t *testing.T) {
	e := startRegEnv(t, regNode("c01", "aa:bb:cc:00:00:01"), regNode("c02", "aa:bb:cc:00:00:02"), regNode("c03", ""))

	// Installed as opsaddbmnode, noderange first, flags after (xCAT style).
	code, out, errOut := e.run(t, "/usr/bin/opsaddbmnode", "c[01-03]", "-s", testHost)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"c01", "c02", "registered", "c03", "skipped", "2 ok, 0 failed, 1 skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, "pw-c01") {
		t.Error("a BMC password was printed")
	}
	if !strings.Contains(errOut, "register_nodes job") {
		t.Errorf("stderr: %s", errOut)
	}
	if n, err := e.st.Node(context.Background(), "c02"); err != nil || n.ResourceClass != "BAREMETAL_16C64G" {
		t.Errorf("c02: %+v %v", n, err)
	}

	// JSON for scripts, second run: all unchanged.
	code, out, _ = e.run(t, "xcatbm", "opsaddbmnode", "--output", "json", "c01,c02", "-s", testHost)
	var s publisher.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != 0 || s.OK != 2 || s.Kind != "register_nodes" || s.Host != testHost || s.JobID == "" {
		t.Errorf("exit %d, %+v", code, s)
	}
	for _, r := range s.Results {
		if r.Message != "unchanged" {
			t.Errorf("second run %s: %q", r.Name, r.Message)
		}
	}

	// Unknown nodes: the job fails, exit 1, xCAT's message shown.
	code, out, _ = e.run(t, "xcatbm", "opsaddbmnode", "c01,nosuch9", "-s", testHost)
	if code != 1 || !strings.Contains(out, "nosuch9") {
		t.Errorf("unknown node: exit %d\n%s", code, out)
	}

	// rmbmnode removes; removing again skips.
	code, out, errOut = e.run(t, "rmbmnode", "c01", "-s", testHost)
	if code != 0 || !strings.Contains(out, "removed") {
		t.Errorf("rmbmnode: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := e.st.Node(context.Background(), "c01"); err == nil {
		t.Error("c01 still registered")
	}
	if _, err := e.st.DB().Exec(`UPDATE nodes SET instance_uuid='0b0e6f7c-1111-4222-8333-444455556666' WHERE name='c02'`); err != nil {
		t.Fatal(err)
	}
	code, out, _ = e.run(t, "rmbmnode", "c02", "-s", testHost, "--output", "json")
	if code != 1 || !strings.Contains(out, "in use by instance 0b0e6f7c") {
		t.Errorf("rmbmnode of a node in use: exit %d\n%s", code, out)
	}

	// --no-wait prints the job id and returns at once.
	code, out, _ = e.run(t, "opsaddbmnode", "c02", "-s", testHost, "--no-wait")
	if code != 0 || !strings.Contains(out, "published to compute host "+testHost) {
		t.Errorf("--no-wait: exit %d\n%s", code, out)
	}

	// No worker serves the host: an error at once, not a wait.
	code, _, errOut = e.run(t, "opsaddbmnode", "c02", "-s", "nobody-here", "--timeout", "10s")
	if code != 1 || !strings.Contains(errOut, "no worker serves the compute host") {
		t.Errorf("unknown host: exit %d\n%s", code, errOut)
	}
}

// TestOpsAddBMNodeSampleCluster: opsaddbmnode registers the compute nodes of the
// simulator's sample cluster (the one xcatbm-sim --cluster documents).
func TestOpsAddBMNodeSampleCluster(t *testing.T) {
	c, err := sim.LoadCluster("../../xcat/sim/testdata/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := startRegEnv(t, c.Nodes...)
	code, out, errOut := e.run(t, "opsaddbmnode", "compute", "-s", testHost)
	if code != 0 || !strings.Contains(out, "5 ok, 0 failed") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if n, err := e.st.Node(context.Background(), "node03"); err != nil || n.ResourceClass != "BAREMETAL_32C128G" {
		t.Errorf("node03: %+v %v", n, err)
	}
}

func TestRegistrationUsage(t *testing.T) {
	for _, c := range []struct {
		argv []string
		code int
		want string
	}{
		{[]string{"opsaddbmnode", "-h"}, 0, "RETURN VALUE"},
		{[]string{"opsaddimage", "--help"}, 0, "EXAMPLES"},
		{[]string{"rmbmnode", "-h"}, 0, "SYNOPSIS"},
		{[]string{"opsaddbmnode", "n[01-04]"}, 2, "-s <compute_host> is required"},
		{[]string{"opsaddbmnode", "-s", "h"}, 2, "exactly one noderange"},
		{[]string{"opsaddbmnode", "n[01-", "-s", "h"}, 2, "noderange"},
		{[]string{"opsaddbmnode", "n01", "-s", "h", "--resource-class", "a b"}, 2, "--resource-class"},
		{[]string{"opsaddbmnode", "n01", "-s", "h", "--output", "yaml"}, 2, "want text or json"},
		{[]string{"opsaddimage", "img1"}, 2, "-c <cloud> is required"},
		{[]string{"opsaddimage", "img1,img2", "-n", "a", "-c", "x"}, 2, "1 names for 2 images"},
		{[]string{"rmbmnode", "n01"}, 2, "-s <compute_host> is required"},
		// Refused before anything is published, as xcatbm's xCAT client refuses them.
		{[]string{"opsaddbmnode", "n[1-1000000]", "-s", "h"}, 2, "names more than 10000 nodes"},
		{[]string{"opsaddbmnode", "n[1-11]", "-s", "h", "--max-nodes", "10"}, 2, "names more than 10 nodes"},
		{[]string{"rmbmnode", "n[1-10001]", "-s", "h"}, 2, "names more than 10000 nodes"},
		{[]string{"opsaddbmnode", "n01;reboot", "-s", "h"}, 2, "character ';' not allowed"},
		{[]string{"opsaddbmnode", "n01$(id)", "-s", "h"}, 2, "character '$' not allowed"},
		{[]string{"opsaddimage", "img;x", "-c", "c"}, 2, "osimage name"},
		{[]string{"opsaddimage", "../img", "-c", "c"}, 2, "osimage name"},
	} {
		code, out := runCmd(t, c.argv...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", c.argv, code, c.code, c.want, out)
		}
	}
	// The man page has every section in order.
	_, out := runCmd(t, "opsaddbmnode", "-h")
	last := -1
	for _, sec := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "RETURN VALUE", "EXAMPLES"} {
		i := strings.Index(out, "\n"+sec+"\n")
		if sec == "NAME" {
			i = strings.Index(out, sec+"\n")
		}
		if i <= last {
			t.Errorf("section %s missing or out of order:\n%s", sec, out)
		}
		last = i
	}
}
