package sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"xcatbm/xcat"
)

// src is how the default server's name prefixes its top-level errors and warnings.
const src = "[mn1]: "

func start(t *testing.T, c *Cluster, cfg Config) *Server {
	t.Helper()
	cfg.Cluster = c
	cfg.Logf = t.Logf
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func do(t *testing.T, srv *Server, req xcat.Request) *xcat.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := Call(ctx, srv.Addr(), srv.ClientTLS(), req)
	if err != nil {
		t.Fatalf("%s: %v", req, err)
	}
	return ToResponse(rs)
}

func TestRawProtocolRoundTrip(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 3, "mn1"), Config{})
	conf, err := ClientTLSConfig(srv.CredDir())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", srv.Addr(), conf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	readAll := func() string {
		var b strings.Builder
		for !strings.Contains(b.String(), "<serverdone></serverdone>") || !strings.HasSuffix(b.String(), "</xcatresponse>\n") {
			line, err := br.ReadString('\n')
			b.WriteString(line)
			if err != nil {
				t.Fatalf("read: %v after %q", err, b.String())
			}
		}
		return b.String()
	}
	// Elements in any order, as xcatd accepts them.
	if _, err := conn.Write([]byte("<xcatrequest><arg>stat</arg><noderange>n[1-2]</noderange><command>rpower</command><cwd>/</cwd></xcatrequest>")); err != nil {
		t.Fatal(err)
	}
	out := readAll()
	for _, want := range []string{"<name>n1</name>", "<name>n2</name>", "<contents>off</contents>"} {
		if !strings.Contains(out, want) {
			t.Errorf("answer lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "<name>n3</name>") {
		t.Errorf("answer has n3:\n%s", out)
	}
	// A second request on the same connection, with a bad noderange.
	if _, err := conn.Write([]byte("<xcatrequest><command>rpower</command><noderange>ghost</noderange><arg>stat</arg></xcatrequest>")); err != nil {
		t.Fatal(err)
	}
	out = readAll()
	var r WireResponse
	if err := xml.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) != 1 || r.Errors[0] != "Invalid nodes and/or groups in noderange: ghost" || !slices.Equal(r.ErrorCode, []int{1}) || !r.Done() {
		t.Errorf("bad noderange answer %+v", r)
	}
}

func TestCommandsAndInstallTimeline(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 4, "mn1"), Config{Timeline: Timeline{PoweringOn: 50 * time.Millisecond, Installing: 500 * time.Millisecond, Postbooting: 300 * time.Millisecond}})
	img := "rhels7.5-x86_64-install-compute"

	r := do(t, srv, xcat.Request{Command: "chdef", Args: []string{"n1", "-p", "postbootscripts=config_ops_bmnode h1,otherpkgs"}})
	if len(r.Data) != 1 || r.Data[0] != "1 object definitions have been created or modified." {
		t.Errorf("chdef data %q", r.Data)
	}
	if len(r.Warnings) != 1 || r.Warnings[0] != src+"n1: postbootscripts 'otherpkgs' is already included" {
		t.Errorf("chdef warnings %q", r.Warnings)
	}
	r = do(t, srv, xcat.Request{Command: "nodeset", Noderange: "n1", Args: []string{"osimage=" + img}})
	// The boot state names OS, architecture and profile, not the image.
	if got := r.Nodes["n1"].Data; !slices.Equal(got, []string{"install rhels7.5-x86_64-compute"}) {
		t.Errorf("nodeset: %q", got)
	}
	r = do(t, srv, xcat.Request{Command: "nodeset", Noderange: "n2", Args: []string{"osimage=nope"}})
	if got := r.Errors; !slices.Equal(got, []string{src + "Cannot find the OS image nope in the osimage table."}) || r.ErrorCode != 1 || len(r.Nodes) != 0 {
		t.Errorf("nodeset unknown image: errors %q nodes %v rc %d", got, r.Order, r.ErrorCode)
	}
	do(t, srv, xcat.Request{Command: "rsetboot", Noderange: "n1", Args: []string{"net"}})
	r = do(t, srv, xcat.Request{Command: "rpower", Noderange: "n1", Args: []string{"boot"}})
	if got := r.Nodes["n1"].Data; !slices.Equal(got, []string{"on"}) {
		t.Errorf("rpower boot of an off node: %q", got)
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r = do(t, srv, xcat.Request{Command: "nodels", Noderange: "n1", Args: []string{"nodelist.status"}})
		st := r.Nodes["n1"].Data[0]
		seen[st] = true
		if st == "booted" {
			break
		}
	}
	for _, want := range []string{"installing", "postbooting", "booted"} {
		if !seen[want] {
			t.Errorf("status never %s (saw %v)", want, seen)
		}
	}
	ns, _ := srv.Node("n1")
	if ns.CurrState != "boot" || ns.Power != "on" || !slices.Contains(ns.RanScripts, "config_ops_bmnode h1") {
		t.Errorf("after install: %+v", ns)
	}
	r = do(t, srv, xcat.Request{Command: "rpower", Noderange: "n1", Args: []string{"boot"}})
	if got := r.Nodes["n1"].Data; !slices.Equal(got, []string{"reset"}) {
		t.Errorf("rpower boot of an on node: %q", got)
	}

	r = do(t, srv, xcat.Request{Command: "nodels", Noderange: "n[1-2]", Args: []string{"nodelist.status", "hosts.ip"}})
	if got := r.Nodes["n2"].Data; len(got) != 2 || got[0] != "nodelist.status: defined" || got[1] != "hosts.ip: 10.0.0.3" {
		t.Errorf("nodels two attrs: %q", got)
	}
	r = do(t, srv, xcat.Request{Command: "lsdef", Args: []string{"-t", "node", "-w", "mac=52:54:00:00:00:03", "-i", "ip,mac"}})
	if !slices.Equal(r.Data, []string{"Object name: n3", "    ip=10.0.0.4", "    mac=52:54:00:00:00:03"}) {
		t.Errorf("lsdef -w: %q", r.Data)
	}
	r = do(t, srv, xcat.Request{Command: "lsdef", Args: []string{"-t", "node", "-w", "mac=none"}})
	if !slices.Equal(r.Data, []string{"No object definitions have been found"}) || r.ErrorCode != 0 {
		t.Errorf("lsdef no match: %q rc %d", r.Data, r.ErrorCode)
	}
	do(t, srv, xcat.Request{Command: "chdef", Args: []string{"-t", "site", "clustersite", "xcatbm=1"}})
	r = do(t, srv, xcat.Request{Command: "tabdump", Args: []string{"site", "-w", "key==xcatbm"}})
	if !slices.Equal(r.Data, []string{"#key,value,comments,disable", `"xcatbm","1",,`}) {
		t.Errorf("tabdump site: %q", r.Data)
	}
	do(t, srv, xcat.Request{Command: "chdef", Noderange: "n2", Args: []string{"ip=192.168.5.5"}})
	do(t, srv, xcat.Request{Command: "makehosts", Noderange: "n2"})
	if ns, _ := srv.Node("n2"); ns.HostsEntry != "192.168.5.5" {
		t.Errorf("makehosts: hosts entry %q", ns.HostsEntry)
	}
	if n := srv.CountRequests("rpower", "boot"); n != 2 {
		t.Errorf("CountRequests(rpower boot) = %d, want 2", n)
	}
	if calls := srv.NodeCalls("n2"); len(calls) == 0 || calls[len(calls)-1].Command != "makehosts" {
		t.Errorf("NodeCalls(n2) = %+v", calls)
	}
}

// TestChDefStanza: chdef -z takes its objects from the stanza on standard input and
// applies -p, -m or a plain set to each, with the noderange path's warnings and
// errors; it refuses -t, -o and a noderange as xcatd does.
func TestChDefStanza(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 3, "mn1"), Config{})
	stanza := func(objs ...string) string { return strings.Join(objs, "\n") + "\n" }
	tests := []struct {
		name     string
		req      xcat.Request
		data     []string
		warnings []string
		errors   []string            // top-level
		nodeErrs map[string][]string // per node
		ip       map[string]string   // hosts.ip afterwards
		pbs      map[string][]string // postbootscripts afterwards
		nodes    []string            // recorded nodes
	}{
		{name: "add per node",
			req: xcat.Request{Command: "chdef", Args: []string{"-z", "-p"}, Stdin: stanza(
				"# <xCAT data object stanza file>", "", "n1:", "    objtype=node", "    postbootscripts=config_ops_bmnode h1 10.9.0.1 255.255.0.0",
				"", "n2:", "    objtype=node", "    postbootscripts=otherpkgs,config_ops_bmnode h2")},
			data:     []string{"2 object definitions have been created or modified."},
			warnings: []string{src + "n2: postbootscripts 'otherpkgs' is already included"},
			pbs:      map[string][]string{"n1": {"otherpkgs", "config_ops_bmnode h1 10.9.0.1 255.255.0.0"}, "n2": {"otherpkgs", "config_ops_bmnode h2"}, "n3": {"otherpkgs"}},
			nodes:    []string{"n1", "n2"}},
		{name: "remove per node",
			req: xcat.Request{Command: "chdef", Args: []string{"-m", "-z"}, Stdin: stanza(
				"n1:", "    objtype=node", "    postbootscripts=config_ops_bmnode h1 10.9.0.1 255.255.0.0", "n2:", "    objtype=node", "    postbootscripts=otherpkgs")},
			data:  []string{"2 object definitions have been created or modified."},
			pbs:   map[string][]string{"n1": {"otherpkgs"}, "n2": {"config_ops_bmnode h2"}},
			nodes: []string{"n1", "n2"}},
		// As xCAT's chdef: an object that is not a node needs groups to be created;
		// the others are changed all the same, and the request ends in an error.
		{name: "set with an unknown node",
			req: xcat.Request{Command: "chdef", Args: []string{"-z"}, Stdin: stanza(
				"n3:", "    objtype=node", "    ip=10.9.0.3", "ghost:", "    objtype=node", "    ip=10.9.0.4", "n1:", "    objtype=node", "    ip=10.9.0.1")},
			errors: []string{src + "Attribute 'groups' is not specified for node 'ghost', skipping to the next node.", src + chdefErrors},
			ip:     map[string]string{"n1": "10.9.0.1", "n3": "10.9.0.3", "n2": "10.0.0.3"},
			nodes:  []string{"n3", "n1"}},
		{name: "only unknown nodes",
			req:    xcat.Request{Command: "chdef", Args: []string{"-z"}, Stdin: stanza("ghost:", "    objtype=node", "    ip=1")},
			errors: []string{src + "Attribute 'groups' is not specified for node 'ghost', skipping to the next node.", src + chdefErrors}},
		{name: "a new node with groups",
			req:   xcat.Request{Command: "chdef", Args: []string{"-z"}, Stdin: stanza("n9:", "    objtype=node", "    groups=all", "    ip=10.9.0.9")},
			data:  []string{"1 object definitions have been created or modified."},
			ip:    map[string]string{"n9": "10.9.0.9"},
			nodes: []string{"n9"}},
		{name: "unknown attribute changes nothing",
			req: xcat.Request{Command: "chdef", Args: []string{"-z"}, Stdin: stanza(
				"n1:", "    objtype=node", "    ip=10.9.9.9", "n2:", "    objtype=node", "    nosuch=x")},
			errors: []string{src + "'nosuch' is not a valid attribute name for an object type of 'node'."},
			ip:     map[string]string{"n1": "10.9.0.1"}},
		{name: "-p on a non-list attribute",
			req:    xcat.Request{Command: "chdef", Args: []string{"-z", "-p"}, Stdin: stanza("n1:", "    objtype=node", "    ip=10.9.9.9")},
			errors: []string{src + "'ip' is not a list attribute; -p and -m work on list attributes."}},
		{name: "with -t",
			req:    xcat.Request{Command: "chdef", Args: []string{"-t", "node", "-z"}, Stdin: stanza("n1:", "    objtype=node", "    ip=10.9.9.9")},
			errors: []string{src + "Cannot combine '-t' and '-a', '-z', or '-x' options."}},
		{name: "with -o",
			req:    xcat.Request{Command: "chdef", Args: []string{"-z", "-o", "n1"}, Stdin: stanza("n1:", "    objtype=node", "    ip=10.9.9.9")},
			errors: []string{src + "Cannot use '-z' with '-o' or a noderange."}},
		{name: "with a noderange argument",
			req:    xcat.Request{Command: "chdef", Args: []string{"n1", "-z"}, Stdin: stanza("n1:", "    objtype=node", "    ip=10.9.9.9")},
			errors: []string{src + "Cannot use '-z' with '-o' or a noderange."}},
		{name: "with a noderange element",
			req:    xcat.Request{Command: "chdef", Noderange: "n1", Args: []string{"-z"}, Stdin: stanza("n1:", "    objtype=node", "    ip=10.9.9.9")},
			errors: []string{src + "Cannot use '-z' with '-o' or a noderange."}},
		{name: "no stdin",
			req:    xcat.Request{Command: "chdef", Args: []string{"-z"}},
			errors: []string{src + "No object names were provided."}},
		{name: "unreadable stanza",
			req:    xcat.Request{Command: "chdef", Args: []string{"-z"}, Stdin: stanza("    ip=1", "n1:")},
			errors: []string{src + "Could not process file input data: stanza line 1: attribute before any object name: invalid input"}},
		{name: "other object type",
			req:    xcat.Request{Command: "chdef", Args: []string{"-z"}, Stdin: stanza("img:", "    objtype=osimage", "    osvers=x")},
			errors: []string{src + `chdef: object type "osimage" is not supported by the simulator`}},
	}
	for _, tt := range tests {
		srv.ResetRequests()
		r := do(t, srv, tt.req)
		if !slices.Equal(r.Data, tt.data) || !slices.Equal(r.Warnings, tt.warnings) || !slices.Equal(r.Errors, tt.errors) {
			t.Errorf("%s: data %q warnings %q errors %q; want %q %q %q", tt.name, r.Data, r.Warnings, r.Errors, tt.data, tt.warnings, tt.errors)
		}
		if len(r.Nodes) != len(tt.nodeErrs) {
			t.Errorf("%s: node answers %v, want errors for %v", tt.name, r.Order, tt.nodeErrs)
		}
		for n, want := range tt.nodeErrs {
			if got := r.Nodes[n]; got == nil || !slices.Equal(got.Errors, want) || got.ErrorCode != 1 {
				t.Errorf("%s: node %s answer %+v, want errors %q", tt.name, n, got, want)
			}
		}
		for n, want := range tt.ip {
			if ns, _ := srv.Node(n); ns.IP != want {
				t.Errorf("%s: %s ip %q, want %q", tt.name, n, ns.IP, want)
			}
		}
		for n, want := range tt.pbs {
			if ns, _ := srv.Node(n); !slices.Equal(ns.PostBootScripts, want) {
				t.Errorf("%s: %s postbootscripts %q, want %q", tt.name, n, ns.PostBootScripts, want)
			}
		}
		recs := srv.Requests()
		if len(recs) != 1 || recs[0].Stdin != tt.req.Stdin || !slices.Equal(recs[0].Nodes, tt.nodes) {
			t.Errorf("%s: recorded %+v, want one request with its stdin and nodes %v", tt.name, recs, tt.nodes)
		}
	}
}

// TestChDefNodeFault: FaultChDefNode refuses its node's change, on the noderange and
// the -z path, and the other nodes are changed.
func TestChDefNodeFault(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 3, "mn1"), Config{})
	srv.SetFault(Fault{Kind: FaultChDefNode, Nodes: []string{"n2"}, Count: 2})
	reqs := []xcat.Request{
		{Command: "chdef", Args: []string{"-t", "node", "-o", "n[1-3]", "ip=10.9.0.9"}},
		{Command: "chdef", Args: []string{"-z"}, Stdin: "n1:\n    objtype=node\n    ip=10.9.0.1\nn2:\n    objtype=node\n    ip=10.9.0.2\n"},
	}
	wantIP := []map[string]string{{"n1": "10.9.0.9", "n2": "10.0.0.3", "n3": "10.9.0.9"}, {"n1": "10.9.0.1", "n2": "10.0.0.3"}}
	wantData := []string{"2 object definitions have been created or modified.", "1 object definitions have been created or modified."}
	for i, req := range reqs {
		r := do(t, srv, req)
		if n2 := r.Nodes["n2"]; n2 == nil || !slices.Equal(n2.Errors, []string{ChDefFaultMessage}) || len(r.Order) != 1 || len(r.Errors) != 0 {
			t.Errorf("%s: answer %+v, want n2's error only", req, r)
		}
		if !slices.Equal(r.Data, wantData[i:i+1]) {
			t.Errorf("%s: data %q, want %q", req, r.Data, wantData[i])
		}
		for n, want := range wantIP[i] {
			if ns, _ := srv.Node(n); ns.IP != want {
				t.Errorf("%s: %s ip %q, want %q", req, n, ns.IP, want)
			}
		}
	}
	// The fault is spent.
	do(t, srv, xcat.Request{Command: "chdef", Args: []string{"-z"}, Stdin: "n2:\n    objtype=node\n    ip=10.9.0.2\n"})
	if ns, _ := srv.Node("n2"); ns.IP != "10.9.0.2" {
		t.Errorf("after the fault: n2 ip %q", ns.IP)
	}
	if calls := srv.NodeCalls("n2"); len(calls) != 3 {
		t.Errorf("NodeCalls(n2) = %d requests, want 3", len(calls))
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 4, "mn1"), Config{Timeline: Timeline{PoweringOn: time.Millisecond, Installing: 20 * time.Millisecond, Postbooting: 10 * time.Millisecond}})
	srv.SetFault(Fault{Kind: FaultBMCTimeout, Nodes: []string{"n2"}, Count: 1})
	r := do(t, srv, xcat.Request{Command: "rpower", Noderange: "n[1-2]", Args: []string{"on"}})
	if !slices.Equal(r.Nodes["n2"].Errors, []string{IPMITimeoutMessage}) || !slices.Equal(r.Nodes["n1"].Data, []string{"on"}) {
		t.Errorf("BMC timeout: %+v %+v", r.Nodes["n1"], r.Nodes["n2"])
	}
	r = do(t, srv, xcat.Request{Command: "rpower", Noderange: "n2", Args: []string{"stat"}})
	if !slices.Equal(r.Nodes["n2"].Data, []string{"off"}) {
		t.Errorf("after the counted timeout: %+v", r.Nodes["n2"])
	}

	srv.SetFault(Fault{Kind: FaultDropConnection, Command: "nodels", Count: 1})
	ctx := context.Background()
	_, err := Call(ctx, srv.Addr(), srv.ClientTLS(), xcat.Request{Command: "nodels", Noderange: "n1", Args: []string{"nodelist.status"}})
	if !errors.Is(err, ErrPremature) {
		t.Errorf("dropped connection: err %v", err)
	}
	if recs := srv.Requests(); !recs[len(recs)-1].Dropped {
		t.Errorf("record not marked dropped")
	}
	do(t, srv, xcat.Request{Command: "nodels", Noderange: "n1"})

	srv.SetFault(Fault{Kind: FaultSlow, Command: "rinv", Delay: 150 * time.Millisecond, Count: 1})
	t0 := time.Now()
	do(t, srv, xcat.Request{Command: "rinv", Noderange: "n1"})
	if d := time.Since(t0); d < 150*time.Millisecond {
		t.Errorf("slow fault: answered in %v", d)
	}

	srv.SetFault(Fault{Kind: FaultInstallFail, Nodes: []string{"n3"}})
	srv.SetFault(Fault{Kind: FaultInstallHang, Nodes: []string{"n4"}})
	do(t, srv, xcat.Request{Command: "nodeset", Noderange: "n[3-4]", Args: []string{"osimage=rhels7.5-x86_64-install-compute"}})
	do(t, srv, xcat.Request{Command: "rpower", Noderange: "n[3-4]", Args: []string{"boot"}})
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.WaitStatus(wctx, "n3", "failed"); err != nil {
		t.Error(err)
	}
	time.Sleep(60 * time.Millisecond)
	if ns, _ := srv.Node("n4"); ns.Status != "installing" {
		t.Errorf("hung node status %q", ns.Status)
	}
}

func TestLatencyModel(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 20, "mn1"), Config{Latency: Latency{Fixed: 30 * time.Millisecond, PerNode: 2 * time.Millisecond}})
	t0 := time.Now()
	do(t, srv, xcat.Request{Command: "rpower", Noderange: "n[01-20]", Args: []string{"stat"}})
	if d := time.Since(t0); d < 70*time.Millisecond {
		t.Errorf("20 nodes answered in %v, want at least 70ms", d)
	}
}

func TestLoadClusterExample(t *testing.T) {
	t.Parallel()
	c, err := LoadCluster("testdata/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 6 || c.Timeline == nil || c.Timeline.Installing != 5*time.Second {
		t.Fatalf("cluster %+v", c)
	}
	srv := start(t, c, Config{Latency: Latency{Fixed: time.Microsecond}})
	r := do(t, srv, xcat.Request{Command: "rpower", Noderange: "node05", Args: []string{"stat"}})
	if r.Nodes["node05"].ErrorCode != 1 {
		t.Errorf("node05 BMC fault from the file: %+v", r.Nodes["node05"])
	}
}

func TestCLIPersonality(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	t.Parallel()
	srv := start(t, GenerateCluster("n", 3, "mn1"), Config{})
	srv.SetFault(Fault{Kind: FaultBMCTimeout, Nodes: []string{"n3"}, Count: 1})
	dir := t.TempDir()
	bin := filepath.Join(dir, "xcatbm-sim")
	build := exec.Command("go", "build", "-o", bin, "xcatbm/cmd/xcatbm-sim")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, name := range []string{"rpower", "nodeset", "lsdef", "chdef"} {
		if err := os.Symlink(bin, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) (string, string, int) {
		cmd := exec.Command(filepath.Join(dir, name), args...)
		cmd.Env = append(os.Environ(), "XCATHOST="+srv.Addr(), "XCATBM_XCAT_CRED_DIR="+srv.CredDir())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}
	tests := []struct {
		name           string
		args           []string
		stdout, stderr string
		code           int
	}{
		{"rpower", []string{"n[1-2]", "stat"}, "n1: off\nn2: off\n", "", 0},
		{"rpower", []string{"ghost", "stat"}, "", "Error: Invalid nodes and/or groups in noderange: ghost\n", 1},
		{"nodeset", []string{"n1", "osimage=bad"}, "", "Error: [mn1]: Cannot find the OS image bad in the osimage table.\n", 1},
		{"lsdef", []string{"-t", "node", "-w", "ip=none"}, "No object definitions have been found\n", "", 0},
		{"chdef", []string{"n1", "-p", "postbootscripts=otherpkgs"}, "1 object definitions have been created or modified.\n", "Warning: [mn1]: n1: postbootscripts 'otherpkgs' is already included\n", 0},
		{"rpower", []string{"n3", "stat"}, "", "n3: [mn1]: Error: " + IPMITimeoutMessage + "\n", 1},
	}
	for _, tt := range tests {
		stdout, stderr, code := run(tt.name, tt.args...)
		if stdout != tt.stdout || stderr != tt.stderr || code != tt.code {
			t.Errorf("%s %v: stdout %q stderr %q rc %d; want %q %q %d", tt.name, tt.args, stdout, stderr, code, tt.stdout, tt.stderr, tt.code)
		}
	}
	srv.SetFault(Fault{Kind: FaultDropConnection, Command: "rpower"})
	_, stderr, code := run("rpower", "n1", "stat")
	if code != 1 || !strings.Contains(stderr, "ERROR/WARNING: communication with the xCAT server seems to have been ended prematurely") {
		t.Errorf("premature end: stderr %q rc %d", stderr, code)
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add("<xcatrequest><command>rpower</command><noderange>n1</noderange><arg>stat</arg></xcatrequest>")
	f.Add("<xcatrequest>\n<clienttype>cli</clienttype>\n<command>nodels</command>\n<cwd>/</cwd>\n<environment><XCAT_X>1</XCAT_X></environment></xcatrequest>")
	f.Add("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	f.Add("<xcatrequest><command>a&amp;b</command>")
	f.Add("<xcatrequest><command>chdef</command><arg>-z</arg><stdin>n1:&#xA;    objtype=node\r\n    ip=&lt;1&gt;&#xD;&#xA;</stdin></xcatrequest>")
	f.Fuzz(func(t *testing.T, in string) {
		req, err := ReadRequest(bufio.NewReader(strings.NewReader(in)))
		if err != nil {
			return
		}
		// What was read must survive a write and a second read.
		var b bytes.Buffer
		if err := WriteRequest(&b, req); err != nil {
			t.Fatal(err)
		}
		again, err := ReadRequest(bufio.NewReader(&b))
		if err != nil {
			t.Fatalf("rereading %q: %v", b.String(), err)
		}
		if again.Command != strings.TrimSpace(req.Command) || !slices.Equal(again.Args, req.Args) && len(req.Args) > 0 || again.Stdin != req.Stdin {
			t.Fatalf("round trip %+v -> %+v", req, again)
		}
	})
}

// TestCloseKept: with CloseKept the server closes a kept connection after an answer
// unless the next request was read whole in time; a request that comes too late, or
// only in part, is dropped unread and not recorded. A new connection's first request
// is always read.
func TestCloseKept(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 2, "mn1"), Config{CloseKept: &KeptClose{Min: 150 * time.Millisecond, Max: 150 * time.Millisecond}})
	var req bytes.Buffer
	if err := WriteRequest(&req, xcat.Request{Command: "rpower", Noderange: "n1", Args: []string{"stat"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// send writes the second request: pause before it, and how much of it to write.
		pause, partPause time.Duration
		part             int
		answered         bool
		unread           int
	}{
		{"next request in time", 20 * time.Millisecond, 0, req.Len(), true, 0},
		{"next request too late", 400 * time.Millisecond, 0, req.Len(), false, 0},
		{"only part of it in time", 20 * time.Millisecond, 400 * time.Millisecond, 10, false, 1},
	}
	for _, tt := range tests {
		srv.ResetRequests()
		before := srv.KeptCloses()
		conn, err := tls.Dial("tcp", srv.Addr(), srv.ClientTLS())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		dec := xml.NewDecoder(conn)
		if _, err := Exchange(context.Background(), conn, dec, xcat.Request{Command: "rpower", Noderange: "n1", Args: []string{"stat"}}); err != nil {
			t.Fatalf("%s: first request: %v", tt.name, err)
		}
		time.Sleep(tt.pause)
		_, werr := conn.Write(req.Bytes()[:tt.part])
		if tt.part < req.Len() {
			time.Sleep(tt.partPause)
			_, werr = conn.Write(req.Bytes()[tt.part:])
		}
		var r WireResponse
		derr := dec.Decode(&r)
		conn.Close()
		if answered := werr == nil && derr == nil && len(r.Nodes) == 1; answered != tt.answered {
			t.Errorf("%s: answered %v (write %v, read %v), want %v", tt.name, answered, werr, derr, tt.answered)
		}
		wantRecords := 1
		if tt.answered {
			wantRecords = 2
		}
		if n := len(srv.Requests()); n != wantRecords {
			t.Errorf("%s: %d requests recorded, want %d", tt.name, n, wantRecords)
		}
		after := srv.KeptCloses()
		if tt.answered {
			// The server closes the connection after the second answer, or sees the
			// client's close first; either way the first close did not happen.
			continue
		}
		if after.Closed-before.Closed != 1 || after.Unread-before.Unread != tt.unread {
			t.Errorf("%s: kept closes %+v -> %+v, want one close, %d unread", tt.name, before, after, tt.unread)
		}
	}
}

// TestShuffle: with Shuffle, rpower answers its nodes in varying orders, all of them
// once; without, in the sorted noderange's order.
func TestShuffle(t *testing.T) {
	t.Parallel()
	order := func(srv *Server) string {
		r := do(t, srv, xcat.Request{Command: "rpower", Noderange: "n[01-12]", Args: []string{"stat"}})
		if len(r.Order) != 12 {
			t.Fatalf("answered %d nodes: %v", len(r.Order), r.Order)
		}
		return strings.Join(r.Order, ",")
	}
	sorted := start(t, GenerateCluster("n", 12, "mn1"), Config{})
	want := "n01,n02,n03,n04,n05,n06,n07,n08,n09,n10,n11,n12"
	for i := 0; i < 3; i++ {
		if got := order(sorted); got != want {
			t.Errorf("without Shuffle: %s", got)
		}
	}
	shuffled := start(t, GenerateCluster("n", 12, "mn1"), Config{Shuffle: true})
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		seen[order(shuffled)] = true
	}
	if len(seen) < 2 {
		t.Errorf("with Shuffle, 5 answers all in one order: %v", seen)
	}
}

// TestNoderangeSortedAndDeduplicated: as xcatd, every command sees its noderange
// sorted as strings and without duplicates.
func TestNoderangeSortedAndDeduplicated(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 12, "mn1"), Config{})
	r := do(t, srv, xcat.Request{Command: "nodels", Noderange: "n05,n01,n05,n[10-11],n02-n03"})
	if got := strings.Join(r.Order, ","); got != "n01,n02,n03,n05,n10,n11" {
		t.Errorf("nodels: %s", got)
	}
	r = do(t, srv, xcat.Request{Command: "rpower", Noderange: "n11,n09,n11", Args: []string{"stat"}})
	if got := strings.Join(r.Order, ","); got != "n09,n11" {
		t.Errorf("rpower: %s", got)
	}
}

// TestForeignClientCertificate: a client certificate from another CA is refused, and
// the client is told its certificate was not accepted.
func TestForeignClientCertificate(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 1, "mn1"), Config{})
	other := start(t, GenerateCluster("n", 1, "mn1"), Config{})
	// Trust srv's CA, present other's client certificate.
	dir := t.TempDir()
	for src, name := range map[string]string{filepath.Join(srv.CredDir(), "ca.pem"): "ca.pem", filepath.Join(other.CredDir(), "client-cred.pem"): "client-cred.pem"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := xcat.NewNative(xcat.NativeConfig{Addr: srv.Addr(), CredDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Do(context.Background(), xcat.Request{Command: "nodels", Noderange: "n1"})
	if !errors.Is(err, xcat.ErrCertificateRejected) || !errors.Is(err, xcat.ErrUnavailable) || !strings.Contains(err.Error(), "certificate not accepted by xcatd") {
		t.Errorf("foreign client certificate: %v, want ErrCertificateRejected", err)
	}
	if len(srv.Requests()) != 0 {
		t.Errorf("the request was served: %+v", srv.Requests())
	}
}

// TestTakeRequestsCountsAll: TakeRequests hands over what was recorded since the last
// take and forgets it, ResetRequests forgets too, and Served counts every request of
// the server's life whatever was taken or reset.
func TestTakeRequestsCountsAll(t *testing.T) {
	srv := start(t, GenerateCluster("n", 4, "mn1"), Config{})
	ask := func(n int) {
		for range n {
			do(t, srv, xcat.Request{Command: "nodels", Noderange: "n[1-4]"})
		}
	}
	ask(3)
	if got := srv.TakeRequests(); len(got) != 3 || len(got[0].Nodes) != 4 {
		t.Fatalf("first take: %d records (%+v), want 3 of 4 nodes each", len(got), got)
	}
	if got := srv.TakeRequests(); len(got) != 0 {
		t.Errorf("second take right after: %d records, want 0", len(got))
	}
	ask(2)
	srv.ResetRequests()
	ask(1)
	if got := srv.TakeRequests(); len(got) != 1 {
		t.Errorf("take after a reset: %d records, want 1", len(got))
	}
	if n := srv.Served(); n != 6 {
		t.Errorf("Served() = %d, want 6", n)
	}
}

// TestGroupsFollowChDef: a group in a noderange names the nodes in it now, after each
// chdef that created a node or changed a node's groups (the simulator indexes groups
// and must rebuild the index on every such change).
func TestGroupsFollowChDef(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 4, "mn1"), Config{})
	steps := []struct {
		name  string
		chdef xcat.Request
		group string
		want  string // nodels of the group afterwards, "" when it names no node
	}{
		{name: "added with -p", chdef: xcat.Request{Command: "chdef", Noderange: "n02,n04", Args: []string{"-p", "groups=rack9"}}, group: "rack9", want: "n02,n04"},
		{name: "removed with -m", chdef: xcat.Request{Command: "chdef", Noderange: "n02", Args: []string{"-m", "groups=rack9"}}, group: "rack9", want: "n04"},
		{name: "set replaces", chdef: xcat.Request{Command: "chdef", Noderange: "n04", Args: []string{"groups=all,rack8"}}, group: "rack9", want: ""},
		{name: "the new group", group: "rack8", want: "n04"},
		{name: "a new node", chdef: xcat.Request{Command: "chdef", Args: []string{"-z"}, Stdin: "n9:\n    objtype=node\n    groups=all,rack8\n"}, group: "rack8", want: "n04,n9"},
	}
	for _, s := range steps {
		if s.chdef.Command != "" {
			if r := do(t, srv, s.chdef); len(r.Errors) > 0 {
				t.Fatalf("%s: chdef: %v", s.name, r.Errors)
			}
		}
		r := do(t, srv, xcat.Request{Command: "nodels", Noderange: s.group})
		if got := strings.Join(r.Order, ","); got != s.want {
			t.Errorf("%s: nodels %s = %q, want %q (errors %v)", s.name, s.group, got, s.want, r.Errors)
		}
	}
}
