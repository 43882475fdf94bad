package xcat_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// The conformance suite: every case runs against a fresh simulator through each
// backend, so the native and CLI backends answer the same calls the same way. The
// simulator runs with xcatd's behaviours on: nodes answered in completion (random)
// order, nodels' tables in random order, and kept connections closed as xcatd closes
// them; the native backend keeps connections as the worker does by default.

// newClientFunc returns a Client talking to srv through one backend.
type newClientFunc func(t *testing.T, srv *sim.Server) xcat.Client

func TestConformanceNative(t *testing.T) {
	t.Parallel()
	runConformance(t, func(t *testing.T, srv *sim.Server) xcat.Client {
		b, err := xcat.NewNative(xcat.NativeConfig{
			Addr:      srv.Addr(),
			CredFile:  filepath.Join(srv.CredDir(), "client-cred.pem"),
			CAFile:    filepath.Join(srv.CredDir(), "ca.pem"),
			ReuseIdle: 2 * time.Second, // xcatbm-worker's default
		})
		if err != nil {
			t.Fatalf("NewNative: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return xcat.NewClient(b)
	})
}

func TestConformanceCLI(t *testing.T) {
	t.Parallel()
	dir := simCommands(t)
	runConformance(t, func(t *testing.T, srv *sim.Server) xcat.Client {
		return xcat.NewClient(xcat.NewCLI(xcat.CLIConfig{
			Dir: dir,
			Env: append(os.Environ(), "XCATHOST="+srv.Addr(), "XCATBM_SIM_CRED_DIR="+srv.CredDir()),
		}))
	})
}

// cliCommands are the xCAT commands the client sends; each is a link to xcatbm-sim.
var cliCommands = []string{"rpower", "rsetboot", "rbootseq", "rnetboot", "nodeset", "chdef",
	"makehosts", "nodels", "lsdef", "tabdump", "updatenode", "rinv", "rvitals"}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// simCommands builds cmd/xcatbm-sim once per test binary run and returns a directory
// holding it under every xCAT command name.
func simCommands(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "xcatbm-conformance-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		bin := filepath.Join(dir, "xcatbm-sim")
		out, err := exec.Command("go", "build", "-o", bin, "xcatbm/cmd/xcatbm-sim").CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build xcatbm-sim: " + err.Error() + ": " + string(out))
			return
		}
		for _, c := range cliCommands {
			if err := os.Symlink(bin, filepath.Join(dir, c)); err != nil {
				buildErr = err
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// conformanceCluster: node1 on, node2 off, both installable; node3 has no MAC.
func conformanceCluster() *sim.Cluster {
	return sim.NewCluster(
		sim.NodeSpec{Name: "node1", Groups: []string{"all", "compute"}, Power: "on", Attrs: map[string]string{
			"mgt": "ipmi", "bmc": "10.1.0.1", "mac": "52:54:00:00:00:01", "ip": "10.0.0.11",
			"postbootscripts": "otherpkgs", "status": "booted", "xcatmaster": "mn1", "cpucount": "32",
		}},
		sim.NodeSpec{Name: "node2", Groups: []string{"all", "compute"}, Power: "off", Attrs: map[string]string{
			"mgt": "ipmi", "bmc": "10.1.0.2", "mac": "52:54:00:00:00:02", "ip": "10.0.0.12",
			"postbootscripts": "otherpkgs,confignetwork", "xcatmaster": "mn1",
		}},
		sim.NodeSpec{Name: "node3", Groups: []string{"all", "spare"}, Power: "off", Attrs: map[string]string{
			"mgt": "ipmi", "bmc": "10.1.0.3", "ip": "10.0.0.13",
		}},
	)
}

func startSim(t *testing.T) *sim.Server {
	t.Helper()
	srv, err := sim.Start(t.Context(), sim.Config{Cluster: conformanceCluster(), Timeline: sim.Timeline{
		PoweringOn: time.Hour, Installing: time.Hour, Postbooting: time.Hour},
		Shuffle: true, CloseKept: &sim.XcatdKeptClose})
	if err != nil {
		t.Fatalf("sim.Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// env is one case's world: a fresh simulator and a client of the backend under test.
type env struct {
	ctx context.Context
	srv *sim.Server
	c   xcat.Client
}

func (e env) node(t *testing.T, name string) sim.NodeState {
	t.Helper()
	ns, ok := e.srv.Node(name)
	if !ok {
		t.Fatalf("sim has no node %s", name)
	}
	return ns
}

// wantValues checks that res holds exactly the nodes of want, each without error and
// with the wanted Value.
func wantValues(t *testing.T, res xcat.Results, err error, want map[string]string) {
	t.Helper()
	if err != nil {
		t.Fatalf("call error: %v", err)
	}
	if len(res) != len(want) {
		t.Errorf("got results for %d nodes %v, want %d", len(res), keys(res), len(want))
	}
	for node, v := range want {
		r, ok := res[node]
		if !ok {
			t.Errorf("%s: no result", node)
			continue
		}
		if r.Err != nil {
			t.Errorf("%s: error %v", node, r.Err)
			continue
		}
		if r.Value != v {
			t.Errorf("%s: value %q, want %q (lines %q)", node, r.Value, v, r.Lines)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func runConformance(t *testing.T, newClient newClientFunc) {
	cases := []struct {
		name string
		run  func(t *testing.T, e env)
	}{
		{"power", testPower},
		{"boot devices", testBoot},
		{"nodeset", testNodeSet},
		{"chdef postbootscripts", testChDef},
		{"chdef -z per-node values", testChDefEach},
		{"chdef site", testChDefSite},
		{"makehosts", testMakeHosts},
		{"nodels", testNodeLs},
		{"lsdef nodes", testLsDefNodes},
		{"lsdef osimages", testLsDefOSImages},
		{"tabdump", testTabDump},
		{"updatenode", testUpdateNode},
		{"rinv rvitals", testInventory},
		{"unknown node", testUnknownNode},
		{"bmc timeout", testBMCTimeout},
		{"dropped connection", testDropped},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startSim(t)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			tc.run(t, env{ctx: ctx, srv: srv, c: newClient(t, srv)})
		})
	}
}

func testPower(t *testing.T, e env) {
	steps := []struct {
		nr     string
		action xcat.PowerAction
		want   map[string]string
		power  map[string]string // sim power state afterwards
	}{
		{"node1,node2", xcat.PowerStat, map[string]string{"node1": "on", "node2": "off"}, map[string]string{"node1": "on", "node2": "off"}},
		// boot on an on node resets it, on an off node powers it on.
		{"node1,node2", xcat.PowerBoot, map[string]string{"node1": "reset", "node2": "on"}, map[string]string{"node1": "on", "node2": "on"}},
		{"node1", xcat.PowerOff, map[string]string{"node1": "off"}, map[string]string{"node1": "off"}},
		{"node1", xcat.PowerStat, map[string]string{"node1": "off"}, nil},
		{"node1", xcat.PowerOn, map[string]string{"node1": "on"}, map[string]string{"node1": "on"}},
		{"node[1-2]", xcat.PowerStat, map[string]string{"node1": "on", "node2": "on"}, nil},
	}
	for _, s := range steps {
		res, err := e.c.Power(e.ctx, s.nr, s.action)
		wantValues(t, res, err, s.want)
		for n, p := range s.power {
			if got := e.node(t, n).Power; got != p {
				t.Errorf("after rpower %s %s: sim %s power %q, want %q", s.nr, s.action, n, got, p)
			}
		}
	}
}

func testBoot(t *testing.T, e env) {
	res, err := e.c.SetBoot(e.ctx, "node1,node2", "net")
	wantValues(t, res, err, map[string]string{"node1": "net", "node2": "net"})
	if bt := e.node(t, "node2").BootTarget; bt != "net" {
		t.Errorf("rsetboot net: sim boot target %q", bt)
	}
	res, err = e.c.SetBoot(e.ctx, "node1", "stat")
	wantValues(t, res, err, map[string]string{"node1": "net"})
	res, err = e.c.BootSeq(e.ctx, "node2", "hd")
	wantValues(t, res, err, map[string]string{"node2": "hd"})
	if bt := e.node(t, "node2").BootTarget; bt != "hd" {
		t.Errorf("rbootseq hd: sim boot target %q", bt)
	}
	res, err = e.c.NetBoot(e.ctx, "node2")
	wantValues(t, res, err, map[string]string{"node2": "Success"})
	if ns := e.node(t, "node2"); ns.Power != "on" || ns.BootTarget != "net" {
		t.Errorf("rnetboot: sim power %q boot %q, want on net", ns.Power, ns.BootTarget)
	}
}

func testNodeSet(t *testing.T, e env) {
	const img = "rhels7.5-x86_64-install-compute"
	// xCAT's boot state names OS, architecture and profile, not the image.
	const state = "install rhels7.5-x86_64-compute"
	res, err := e.c.NodeSet(e.ctx, "node1,node2", "osimage="+img)
	wantValues(t, res, err, map[string]string{"node1": state, "node2": state})
	if cs := e.node(t, "node2").CurrState; cs != state {
		t.Errorf("sim currstate %q", cs)
	}
	res, err = e.c.NodeSet(e.ctx, "node1", "stat")
	wantValues(t, res, err, map[string]string{"node1": state})

	// An unknown image refuses the whole request, once; every node carries the
	// refusal as a permanent error. A node without MAC fails alone.
	res, err = e.c.NodeSet(e.ctx, "node1,node2", "osimage=nosuch")
	var ce *xcat.CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "Cannot find the OS image nosuch") {
		t.Fatalf("nodeset unknown image: call error %v, want a *CommandError naming the image", err)
	}
	for _, n := range []string{"node1", "node2"} {
		var ne *xcat.NodeError
		if !errors.As(res[n].Err, &ne) || !strings.Contains(ne.Message, "nosuch") || ne.Transient {
			t.Errorf("%s: err %v, want a permanent NodeError naming the image", n, res[n].Err)
		}
	}
	if cs := e.node(t, "node1").CurrState; cs != state {
		t.Errorf("refused nodeset changed currstate to %q", cs)
	}
	res, err = e.c.NodeSet(e.ctx, "node2,node3", "osimage="+img)
	if err != nil {
		t.Fatalf("nodeset node2,node3: %v", err)
	}
	if res["node2"].Err != nil || res["node2"].Value != state {
		t.Errorf("node2: %+v, want install", res["node2"])
	}
	var ne *xcat.NodeError
	if !errors.As(res["node3"].Err, &ne) || ne.Node != "node3" {
		t.Errorf("node3 (no MAC): err %v, want its NodeError", res["node3"].Err)
	}
}

func testChDef(t *testing.T, e env) {
	steps := []struct {
		op   xcat.ChDefOp
		val  string
		want map[string][]string
	}{
		{xcat.ChDefSet, "otherpkgs", map[string][]string{"node1": {"otherpkgs"}, "node2": {"otherpkgs"}}},
		{xcat.ChDefAdd, "config_ops_bmnode", map[string][]string{"node1": {"otherpkgs", "config_ops_bmnode"}, "node2": {"otherpkgs", "config_ops_bmnode"}}},
		{xcat.ChDefRemove, "otherpkgs", map[string][]string{"node1": {"config_ops_bmnode"}, "node2": {"config_ops_bmnode"}}},
	}
	for _, s := range steps {
		res, err := e.c.ChDef(e.ctx, "node1,node2", s.op, xcat.Attrs{"postbootscripts": s.val})
		if err != nil {
			t.Fatalf("chdef op %d %s: %v", s.op, s.val, err)
		}
		for n, want := range s.want {
			if r, ok := res[n]; !ok || r.Err != nil {
				t.Errorf("chdef op %d: %s result %+v", s.op, n, r)
			}
			if got := e.node(t, n).PostBootScripts; !slices.Equal(got, want) {
				t.Errorf("chdef op %d %s: sim %s postbootscripts %q, want %q", s.op, s.val, n, got, want)
			}
		}
	}
	// Adding what is there is a warning for that node, not a failure.
	res, err := e.c.ChDef(e.ctx, "node1", xcat.ChDefAdd, xcat.Attrs{"postbootscripts": "config_ops_bmnode"})
	if err != nil {
		t.Fatalf("chdef -p existing: %v", err)
	}
	if r := res["node1"]; r.Err != nil || len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0], "already included") {
		t.Errorf("chdef -p existing: node1 %+v, want no error and the warning", r)
	}
	if got := e.node(t, "node1").PostBootScripts; !slices.Equal(got, []string{"config_ops_bmnode"}) {
		t.Errorf("chdef -p existing changed the list: %q", got)
	}
}

func testChDefEach(t *testing.T, e env) {
	const a1, a2 = "config_ops_bmnode h1 192.168.5.1 255.255.255.0", "config_ops_bmnode h2"
	steps := []struct {
		op    xcat.ChDefOp
		attrs map[string]xcat.Attrs
		want  map[string][]string // postbootscripts afterwards
		warn  string              // node that gets an "already included" warning
	}{
		{xcat.ChDefAdd, map[string]xcat.Attrs{"node1": {"postbootscripts": a1}, "node2": {"postbootscripts": a2}},
			map[string][]string{"node1": {"otherpkgs", a1}, "node2": {"otherpkgs", "confignetwork", a2}}, ""},
		// Adding what is there is a warning for that node only.
		{xcat.ChDefAdd, map[string]xcat.Attrs{"node1": {"postbootscripts": a1}, "node2": {"postbootscripts": "syslog"}},
			map[string][]string{"node1": {"otherpkgs", a1}, "node2": {"otherpkgs", "confignetwork", a2, "syslog"}}, "node1"},
		{xcat.ChDefRemove, map[string]xcat.Attrs{"node1": {"postbootscripts": a1}, "node2": {"postbootscripts": "otherpkgs,syslog"}},
			map[string][]string{"node1": {"otherpkgs"}, "node2": {"confignetwork", a2}}, ""},
	}
	for i, s := range steps {
		res, err := e.c.ChDefEach(e.ctx, s.op, s.attrs)
		if err != nil {
			t.Fatalf("step %d: chdef -z: %v", i, err)
		}
		if len(res) != len(s.attrs) {
			t.Errorf("step %d: results for %v, want %v", i, keys(res), keys(s.attrs))
		}
		for n, want := range s.want {
			r := res[n]
			if r.Err != nil {
				t.Errorf("step %d: %s error %v", i, n, r.Err)
			}
			if warned := len(r.Warnings) > 0 && strings.Contains(r.Warnings[0], "already included"); warned != (n == s.warn) {
				t.Errorf("step %d: %s warnings %q", i, n, r.Warnings)
			}
			if got := e.node(t, n).PostBootScripts; !slices.Equal(got, want) {
				t.Errorf("step %d: sim %s postbootscripts %q, want %q", i, n, got, want)
			}
		}
	}
	res, err := e.c.ChDefEach(e.ctx, xcat.ChDefSet, map[string]xcat.Attrs{"node1": {"ip": "10.0.0.21"}, "node2": {"ip": "10.0.0.22"}})
	wantValues(t, res, err, map[string]string{"node1": "", "node2": ""})
	if ip1, ip2 := e.node(t, "node1").IP, e.node(t, "node2").IP; ip1 != "10.0.0.21" || ip2 != "10.0.0.22" {
		t.Errorf("chdef -z ip: sim ips %s %s", ip1, ip2)
	}
	// One request per call: the stanza carries every node.
	if n := e.srv.CountRequests("chdef", "-z"); n != len(steps)+1 {
		t.Errorf("chdef -z requests %d, want %d", n, len(steps)+1)
	}

	// An unknown node (no groups to create it with) fails the request as xCAT's
	// chdef does, naming it; the other nodes are changed all the same, and no node is
	// created.
	res, err = e.c.ChDefEach(e.ctx, xcat.ChDefSet, map[string]xcat.Attrs{"node1": {"ip": "10.0.0.31"}, "nosuch": {"ip": "10.0.0.32"}})
	var ce *xcat.CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "'nosuch'") {
		t.Fatalf("chdef -z with an unknown node: call error %v, want a *CommandError naming it", err)
	}
	var ne *xcat.NodeError
	if !errors.As(res["nosuch"].Err, &ne) || ne.Node != "nosuch" || !strings.Contains(ne.Message, "nosuch") {
		t.Errorf("nosuch: %v, want its NodeError", res["nosuch"].Err)
	}
	if ip := e.node(t, "node1").IP; ip != "10.0.0.31" {
		t.Errorf("node1 beside an unknown node: ip %s, want it changed", ip)
	}
	if _, ok := e.srv.Node("nosuch"); ok {
		t.Errorf("chdef -z created nosuch without groups")
	}
	// An unknown attribute refuses the whole request; nothing changes.
	_, err = e.c.ChDefEach(e.ctx, xcat.ChDefSet, map[string]xcat.Attrs{"node1": {"ip": "10.0.0.41"}, "node2": {"nosuchattr": "x"}})
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "nosuchattr") {
		t.Errorf("chdef -z unknown attribute: %v, want a *CommandError naming it", err)
	}
	if ip := e.node(t, "node1").IP; ip != "10.0.0.31" {
		t.Errorf("refused chdef -z changed node1 ip to %s", ip)
	}
}

func testChDefSite(t *testing.T, e env) {
	if err := e.c.ChDefSite(e.ctx, xcat.Attrs{"sshbetweennodes": "NOGROUPS"}); err != nil {
		t.Fatalf("ChDefSite: %v", err)
	}
	if v := e.srv.Site("sshbetweennodes"); v != "NOGROUPS" {
		t.Errorf("site.sshbetweennodes %q, want NOGROUPS", v)
	}
}

func testMakeHosts(t *testing.T, e env) {
	res, err := e.c.MakeHosts(e.ctx, "node1", true)
	wantValues(t, res, err, map[string]string{"node1": ""})
	if h := e.node(t, "node1").HostsEntry; h != "" {
		t.Errorf("makehosts -d: hosts entry %q remains", h)
	}
	res, err = e.c.MakeHosts(e.ctx, "node1,node2", false)
	wantValues(t, res, err, map[string]string{"node1": "", "node2": ""})
	if h := e.node(t, "node1").HostsEntry; h != "10.0.0.11" {
		t.Errorf("makehosts: hosts entry %q, want 10.0.0.11", h)
	}
}

func testNodeLs(t *testing.T, e env) {
	attrs, res, err := e.c.NodeLs(e.ctx, "node1,node2", "nodelist.status")
	// node2's status was never set: xCAT leaves it empty.
	wantValues(t, res, err, map[string]string{"node1": "booted", "node2": ""})
	if attrs["node1"]["nodelist.status"] != "booted" {
		t.Errorf("nodels one attribute: %v", attrs)
	}
	attrs, _, err = e.c.NodeLs(e.ctx, "node1,node3", "nodelist.status", "mac.mac")
	if err != nil {
		t.Fatalf("nodels two attributes: %v", err)
	}
	want := map[string]xcat.Attrs{
		"node1": {"nodelist.status": "booted", "mac.mac": "52:54:00:00:00:01"},
		"node3": {"nodelist.status": "", "mac.mac": ""},
	}
	for n, w := range want {
		for k, v := range w {
			got, ok := attrs[n][k]
			if !ok || got != v {
				t.Errorf("nodels %s %s = %q (present %v), want %q", n, k, got, ok, v)
			}
		}
	}
	if len(attrs) != 2 {
		t.Errorf("nodels two attributes: nodes %v", keys(attrs))
	}
}

func testLsDefNodes(t *testing.T, e env) {
	got, err := e.c.LsDefNodes(e.ctx, "node1,node2", nil, "mac", "xcatmaster")
	if err != nil {
		t.Fatalf("lsdef noderange: %v", err)
	}
	if len(got) != 2 || got["node1"]["mac"] != "52:54:00:00:00:01" || got["node2"]["xcatmaster"] != "mn1" {
		t.Errorf("lsdef noderange: %v", got)
	}
	got, err = e.c.LsDefNodes(e.ctx, "", []string{"groups=all,spare"}, "bmc")
	if err != nil {
		t.Fatalf("lsdef -w: %v", err)
	}
	if len(got) != 1 || got["node3"]["bmc"] != "10.1.0.3" {
		t.Errorf("lsdef -w groups=all,spare: %v, want node3 only", got)
	}
	got, err = e.c.LsDefNodes(e.ctx, "", []string{"status==nosuch"})
	if err != nil {
		t.Fatalf("lsdef -w matching nothing: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("lsdef -w matching nothing: %v, want empty", got)
	}
}

func testLsDefOSImages(t *testing.T, e env) {
	got, err := e.c.LsDefOSImages(e.ctx, nil)
	if err != nil {
		t.Fatalf("lsdef -t osimage: %v", err)
	}
	img := got["rhels7.5-x86_64-install-compute"]
	if len(got) != 1 || img["osvers"] != "rhels7.5" || img["provmethod"] != "install" {
		t.Errorf("lsdef -t osimage: %v", got)
	}
	got, err = e.c.LsDefOSImages(e.ctx, []string{"rhels7.5-x86_64-install-compute"}, "osarch")
	if err != nil {
		t.Fatalf("lsdef -t osimage -o: %v", err)
	}
	if got["rhels7.5-x86_64-install-compute"]["osarch"] != "x86_64" {
		t.Errorf("lsdef -t osimage -o -i osarch: %v", got)
	}
}

func testTabDump(t *testing.T, e env) {
	cases := []struct {
		table string
		where []string
		want  []xcat.Attrs
	}{
		{"site", []string{"key==master"}, []xcat.Attrs{{"key": "master", "value": "10.0.0.1"}}},
		{"nodehm", nil, []xcat.Attrs{{"node": "node1", "mgt": "ipmi"}, {"node": "node2", "mgt": "ipmi"}, {"node": "node3", "mgt": "ipmi"}}},
		{"ipmi", []string{"node==node2"}, []xcat.Attrs{{"node": "node2", "bmc": "10.1.0.2"}}},
	}
	for _, tc := range cases {
		rows, err := e.c.TabDump(e.ctx, tc.table, tc.where...)
		if err != nil {
			t.Errorf("tabdump %s: %v", tc.table, err)
			continue
		}
		if len(rows) != len(tc.want) {
			t.Errorf("tabdump %s: %d rows %v, want %v", tc.table, len(rows), rows, tc.want)
			continue
		}
		for i, w := range tc.want {
			if len(rows[i]) != len(w) {
				t.Errorf("tabdump %s row %d: %v, want %v", tc.table, i, rows[i], w)
			}
			for k, v := range w {
				if rows[i][k] != v {
					t.Errorf("tabdump %s row %d: %s=%q, want %q", tc.table, i, k, rows[i][k], v)
				}
			}
		}
	}
	rows, err := e.c.TabDump(e.ctx, "site")
	if err != nil || len(rows) < 4 {
		t.Errorf("tabdump site: %d rows, %v", len(rows), err)
	}
}

func testUpdateNode(t *testing.T, e env) {
	res, err := e.c.UpdateNode(e.ctx, "node1", "deconfig_ops_bmnode 10.1.2.3", "syslog")
	wantValues(t, res, err, map[string]string{"node1": "Running of postscripts has completed."})
	if ran := e.node(t, "node1").RanScripts; !slices.Equal(ran, []string{"deconfig_ops_bmnode 10.1.2.3", "syslog"}) {
		t.Errorf("sim ran %q", ran)
	}
	// node2 is off: its own error, node1 unaffected.
	res, err = e.c.UpdateNode(e.ctx, "node1,node2", "syslog")
	if err != nil {
		t.Fatalf("updatenode node1,node2: %v", err)
	}
	if res["node1"].Err != nil || res["node2"].Err == nil {
		t.Errorf("updatenode with node2 off: node1 %v, node2 %v", res["node1"].Err, res["node2"].Err)
	}
}

func testInventory(t *testing.T, e env) {
	res, err := e.c.RInv(e.ctx, "node1,node2", "all")
	if err != nil {
		t.Fatalf("rinv: %v", err)
	}
	if r := res["node1"]; r.Err != nil || !slices.Contains(r.Lines, "CPU Count: 32") || len(r.Lines) != 5 {
		t.Errorf("rinv node1: %+v", r)
	}
	if r := res["node2"]; r.Err != nil || !slices.Contains(r.Lines, "MAC Address 1: 52:54:00:00:00:02") {
		t.Errorf("rinv node2: %+v", r)
	}
	res, err = e.c.RVitals(e.ctx, "node1", "all")
	if err != nil {
		t.Fatalf("rvitals: %v", err)
	}
	if r := res["node1"]; r.Err != nil || !slices.Contains(r.Lines, "Power Status: on") {
		t.Errorf("rvitals node1: %+v", r)
	}
}

func testUnknownNode(t *testing.T, e env) {
	calls := []struct {
		name string
		call func() error
	}{
		{"rpower", func() error { _, err := e.c.Power(e.ctx, "node1,nosuch", xcat.PowerStat); return err }},
		{"nodeset", func() error { _, err := e.c.NodeSet(e.ctx, "nosuch", "stat"); return err }},
		{"nodels", func() error { _, _, err := e.c.NodeLs(e.ctx, "node1,nosuch", "nodelist.status"); return err }},
		{"chdef", func() error {
			_, err := e.c.ChDef(e.ctx, "nosuch", xcat.ChDefSet, xcat.Attrs{"postscripts": "x"})
			return err
		}},
	}
	for _, c := range calls {
		err := c.call()
		var ce *xcat.CommandError
		if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "nosuch") {
			t.Errorf("%s with unknown node: %v, want a *CommandError naming it", c.name, err)
		}
	}
	if n := e.srv.CountRequests("rpower"); n != 1 {
		t.Errorf("rpower requests %d, want 1", n)
	}
}

func testBMCTimeout(t *testing.T, e env) {
	e.srv.SetFault(sim.Fault{Kind: sim.FaultBMCTimeout, Nodes: []string{"node2"}})
	res, err := e.c.Power(e.ctx, "node1,node2", xcat.PowerStat)
	if err != nil {
		t.Fatalf("rpower with one BMC timing out: %v", err)
	}
	if r := res["node1"]; r.Err != nil || r.Value != "on" {
		t.Errorf("node1: %+v, want on", r)
	}
	var ne *xcat.NodeError
	if !errors.As(res["node2"].Err, &ne) || !ne.Transient || ne.Node != "node2" {
		t.Errorf("node2: %v, want a transient NodeError", res["node2"].Err)
	}
	res, err = e.c.SetBoot(e.ctx, "node1,node2", "net")
	if err != nil {
		t.Fatalf("rsetboot with one BMC timing out: %v", err)
	}
	if !errors.As(res["node2"].Err, &ne) || !ne.Transient || res["node1"].Err != nil {
		t.Errorf("rsetboot: node1 %v, node2 %v", res["node1"].Err, res["node2"].Err)
	}
}

func testDropped(t *testing.T, e env) {
	e.srv.SetFault(sim.Fault{Kind: sim.FaultDropConnection, Command: "rpower"})
	_, err := e.c.Power(e.ctx, "node1,node2", xcat.PowerStat)
	if !errors.Is(err, xcat.ErrUnavailable) {
		t.Errorf("dropped connection: %v, want ErrUnavailable", err)
	}
	// The fault is spent: the next call works.
	res, err := e.c.Power(e.ctx, "node1,node2", xcat.PowerStat)
	wantValues(t, res, err, map[string]string{"node1": "on", "node2": "off"})
	if n := e.srv.CountRequests("rpower"); n != 2 {
		t.Errorf("rpower requests %d, want 2", n)
	}
}
