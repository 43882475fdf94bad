package nova_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/internal/config"
	"xcatbm/internal/testkit/testdb"
	"xcatbm/internal/testkit/testhttp"
	"xcatbm/internal/testkit/testopenstack"
	"xcatbm/worker"
	"xcatbm/worker/nova"
	"xcatbm/worker/store"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// plane is a running OpenStack control plane with xcatbm as one compute host.
type plane struct {
	t      *testing.T
	p      *testopenstack.Plane
	sim    *sim.Server
	st     *store.Store
	svc    *nova.Service
	host   string
	rc     string
	nodes  []string
	flavor string
	image  string
	// log holds everything the worker and the nova integration logged.
	log *logBuffer
	// placement counts the nova integration's requests to placement (its client is
	// the production one, httpretry.Client).
	placement *testhttp.Count
}

// logBuffer keeps what a logger wrote, for tests that look for secrets in it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func rnd() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func ipmiNode(name, ip string) sim.NodeSpec {
	return sim.NodeSpec{Name: name, Groups: []string{"all", "compute"}, Power: "off", Attrs: map[string]string{
		"mgt": "ipmi", "ip": ip, "mac": "aa:bb:cc:00:00:" + name[len(name)-2:], "bmc": name + "-bmc",
	}}
}

// startPlane starts (or reuses) the plane, a simulator with two nodes registered
// straight into the nodes table, a worker as compute host with the nova integration,
// and waits until nova can schedule to it.
func startPlane(t *testing.T) *plane {
	id := rnd()
	nodes := []string{"bm" + id + "01", "bm" + id + "02"}
	return startPlaneWith(t, planeOpts{id: id, nodes: nodes, register: true,
		cluster: sim.NewCluster(ipmiNode(nodes[0], "10.0.1.1"), ipmiNode(nodes[1], "10.0.1.2"))})
}

// planeOpts vary startPlaneWith.
type planeOpts struct {
	id       string
	nodes    []string
	cluster  *sim.Cluster
	register bool                 // write the nodes into the nodes table before the worker starts
	clouds   string               // clouds.yaml for the worker's Glance access, cloud "plane"
	simCfg   func(*sim.Config)    // changes the simulator's configuration
	workCfg  func(*worker.Config) // changes the worker's configuration
	debugLog bool                 // log at debug level (the secrets checks read every line)
}

func startPlaneWith(t *testing.T, o planeOpts) *plane {
	p := testopenstack.Start(t)
	id := o.id
	e := &plane{t: t, p: p, host: "xcatbm-" + id, rc: "baremetal-" + id, nodes: o.nodes, placement: &testhttp.Count{}}
	// Runs last, once the worker has stopped: without it nova counts the stopped host
	// as up for service_down_time, and a later hypervisor listing on the same plane
	// waits the RPC timeout for its get_host_uptime.
	t.Cleanup(e.deleteComputeService)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var err error
	scfg := sim.Config{Cluster: o.cluster}
	if o.simCfg != nil {
		o.simCfg(&scfg)
	}
	e.sim, err = sim.Start(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.sim.Close() })
	fsys, dir := store.Migrations()
	e.st = store.New(testdb.New(t, fsys, dir).DB)
	if o.register {
		var nodes []*store.Node
		for _, n := range e.nodes {
			nodes = append(nodes, &store.Node{Name: n, ComputeHost: e.host, MgmtNode: "mn1", Mgt: "ipmi", ResourceClass: e.rc})
		}
		if _, err := e.st.UpsertNodes(ctx, nodes, ""); err != nil {
			t.Fatal(err)
		}
	}
	nat, err := xcat.NewNative(xcat.NativeConfig{Addr: e.sim.Addr(), CredDir: e.sim.CredDir()})
	if err != nil {
		t.Fatal(err)
	}
	e.log = &logBuffer{}
	level := zerolog.InfoLevel
	if o.debugLog {
		level = zerolog.DebugLevel
	}
	log := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), e.log)).Level(level)
	conn := broker.NewConn(broker.ConnConfig{URLs: []string{p.AMQPURL}, Name: "nova-test", Log: log})
	e.svc, err = nova.New(nova.Config{ComputeHost: e.host, Backoff: broker.Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second}},
		nova.Deps{Conn: conn, Store: e.st, Log: log,
			Placement: &nova.Placement{URL: p.PlacementURL, Token: config.NewSecret(testopenstack.Token), HTTP: e.placement.Client(30 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	wcfg := worker.Config{ComputeHost: e.host, MgmtNode: "mn1", ClaimInterval: 50 * time.Millisecond, Lease: 5 * time.Second,
		PollInterval: 100 * time.Millisecond, PowerPollInterval: 100 * time.Millisecond, XCATTimeout: 10 * time.Second,
		Backoff: broker.Backoff{Min: 50 * time.Millisecond, Max: time.Second}, PowerSyncInterval: -1, ConsoleLogDir: t.TempDir(),
		CloudsFile: o.clouds}
	if o.workCfg != nil {
		o.workCfg(&wcfg)
	}
	w, err := worker.New(wcfg,
		worker.Deps{Store: e.st, XCAT: xcat.NewClient(nat), AMQPURLs: []string{p.AMQPURL}, Log: log, Nova: e.svc})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 3)
	go func() { conn.Run(ctx); done <- struct{}{} }()
	go func() { _ = e.svc.Run(ctx); done <- struct{}{} }()
	go func() { _ = w.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
	})
	select {
	case <-e.svc.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatal("nova integration not registered after 2m")
	}
	select {
	case <-w.Ready():
	case <-time.After(time.Minute):
		t.Fatal("worker not consuming after 1m")
	}
	t.Logf("discover: %s", strings.TrimSpace(p.Discover(t)))
	e.makeFlavorAndImage()
	return e
}

// deleteComputeService removes the test's compute host from nova as an operator
// retiring it would (DELETE /os-services/{id}), with its compute nodes, host mapping
// and resource providers.
func (e *plane) deleteComputeService() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	report := e.t.Errorf
	if e.t.Failed() {
		report = e.t.Logf // the test left instances behind; the delete may be refused
	}
	if err := e.p.DeleteComputeService(ctx, e.host); err != nil {
		report("%v", err)
	}
}

func (e *plane) nova(method, path string, body any, want ...int) map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, b, err := e.p.NovaRequest(ctx, method, path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if !slices.Contains(want, st) {
		e.t.Fatalf("nova %s %s: %d %s", method, path, st, b)
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func (e *plane) http(method, url, ctype string, body io.Reader, want ...int) map[string]any {
	e.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", testopenstack.Token)
	req.Header.Set("OpenStack-API-Version", "placement 1.39")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !slices.Contains(want, resp.StatusCode) {
		e.t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func (e *plane) makeFlavorAndImage() {
	id := rnd()
	f := e.nova("POST", "/flavors", map[string]any{"flavor": map[string]any{"name": "bm-" + id, "ram": 1, "vcpus": 1, "disk": 0}}, 200)
	e.flavor = f["flavor"].(map[string]any)["id"].(string)
	rc := nova.ResourceClass(e.rc)
	e.nova("POST", "/flavors/"+e.flavor+"/os-extra_specs", map[string]any{"extra_specs": map[string]string{
		"resources:" + rc: "1", "resources:VCPU": "0", "resources:MEMORY_MB": "0", "resources:DISK_GB": "0"}}, 200)
	img, _ := json.Marshal(map[string]any{"name": "xcat-" + id, "disk_format": "raw", "container_format": "bare", "visibility": "public",
		"xcat_image_name": "rhels7.5-x86_64-install-compute"})
	im := e.http("POST", e.p.GlanceURL+"/v2/images", "application/json", bytes.NewReader(img), 201)
	e.image = im["id"].(string)
	e.http("PUT", e.p.GlanceURL+"/v2/images/"+e.image+"/file", "application/octet-stream", strings.NewReader("xcat osimage stand-in"), 204)
}

func (e *plane) createServer(name string) string {
	s := e.nova("POST", "/servers", map[string]any{"server": map[string]any{"name": name, "flavorRef": e.flavor, "imageRef": e.image, "networks": "none"}}, 202)
	return s["server"].(map[string]any)["id"].(string)
}

// waitServer waits until the server's status is want (or, for "gone", a 404).
func (e *plane) waitServer(id, want string, within time.Duration) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(within)
	var last map[string]any
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, b, err := e.p.NovaRequest(ctx, "GET", "/servers/"+id, nil)
		cancel()
		if err == nil && st == 404 && want == "gone" {
			return nil
		}
		if err == nil && st == 200 {
			var out map[string]map[string]any
			_ = json.Unmarshal(b, &out)
			last = out["server"]
			if last["status"] == want {
				return last
			}
			if last["status"] == "ERROR" && want != "ERROR" && want != "gone" {
				e.t.Fatalf("server %s went ERROR waiting for %s: %v", id, want, last["fault"])
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	e.t.Fatalf("server %s not %s after %s; last: status=%v task=%v fault=%v", id, want, within, last["status"], last["OS-EXT-STS:task_state"], last["fault"])
	return nil
}

func (e *plane) action(id string, body any) {
	e.nova("POST", "/servers/"+id+"/action", body, 202)
}

// usage returns the custom resource class usage and reserved count of a node's provider.
func (e *plane) provider(node string) (used, reserved int) {
	rp := e.svc.NodeUUID(node)
	u := e.http("GET", e.p.PlacementURL+"/resource_providers/"+rp+"/usages", "", nil, 200)
	inv := e.http("GET", e.p.PlacementURL+"/resource_providers/"+rp+"/inventories", "", nil, 200)
	rc := nova.ResourceClass(e.rc)
	if v, ok := u["usages"].(map[string]any)[rc].(float64); ok {
		used = int(v)
	}
	if i, ok := inv["inventories"].(map[string]any)[rc].(map[string]any); ok {
		reserved = int(i["reserved"].(float64))
	}
	return used, reserved
}

func TestOpenStackLifecycle(t *testing.T) {
	e := startPlane(t)

	// Both nodes are compute nodes (hypervisors) with their providers.
	hv := e.nova("GET", "/os-hypervisors/detail", nil, 200)
	found := 0
	for _, h := range hv["hypervisors"].([]any) {
		name := h.(map[string]any)["hypervisor_hostname"].(string)
		if slices.Contains(e.nodes, name) {
			found++
		}
	}
	if found != len(e.nodes) {
		t.Fatalf("hypervisors: %d of our %d nodes listed", found, len(e.nodes))
	}

	id := e.createServer("bm-life")
	srv := e.waitServer(id, "ACTIVE", 3*time.Minute)
	node, _ := srv["OS-EXT-SRV-ATTR:hypervisor_hostname"].(string)
	if !slices.Contains(e.nodes, node) || srv["OS-EXT-SRV-ATTR:host"] != e.host {
		t.Fatalf("server on host %v node %v; want host %s and one of %v", srv["OS-EXT-SRV-ATTR:host"], node, e.host, e.nodes)
	}
	var cmds []string
	for _, r := range e.sim.NodeCalls(node) {
		cmds = append(cmds, r.Command)
	}
	for _, want := range []string{"nodeset", "rpower"} {
		if !slices.Contains(cmds, want) {
			t.Fatalf("simulator shows no %s for %s: %v", want, node, cmds)
		}
	}
	if st, _ := e.sim.Node(node); st.Status != "booted" {
		t.Fatalf("node %s status %q, want booted", node, st.Status)
	}
	if used, reserved := e.provider(node); used != 1 {
		t.Fatalf("provider of %s: used %d reserved %d, want used 1", node, used, reserved)
	}

	e.action(id, map[string]any{"os-stop": nil})
	e.waitServer(id, "SHUTOFF", 2*time.Minute)
	if st, _ := e.sim.Node(node); st.Power != "off" {
		t.Fatalf("node %s power %q after stop", node, st.Power)
	}
	e.action(id, map[string]any{"os-start": nil})
	e.waitServer(id, "ACTIVE", 2*time.Minute)
	e.action(id, map[string]any{"reboot": map[string]any{"type": "SOFT"}})
	time.Sleep(time.Second)
	e.waitServer(id, "ACTIVE", 2*time.Minute)

	// An operation xcatbm does not implement (pause) is refused as nova-compute
	// refuses one its driver lacks: the task state cleared, the server left ACTIVE,
	// the action's event finished with the error.
	e.action(id, map[string]any{"pause": nil})
	e.checkRefused(id, "pause", "compute_pause_instance")

	e.nova("DELETE", "/servers/"+id, nil, 204)
	e.waitServer(id, "gone", 3*time.Minute)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		used, reserved := e.provider(node)
		if used == 0 && reserved == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("provider of %s after delete: used %d reserved %d", node, used, reserved)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A failed install ends ERROR with the reason as the fault.
	for _, n := range e.nodes {
		e.sim.SetFault(sim.Fault{Kind: sim.FaultInstallFail, Nodes: []string{n}})
	}
	bad := e.createServer("bm-fail")
	srv = e.waitServer(bad, "ERROR", 3*time.Minute)
	fault, _ := srv["fault"].(map[string]any)
	if fault == nil || !strings.Contains(fmt.Sprint(fault["message"]), "failed") {
		t.Fatalf("failed spawn fault: %v", srv["fault"])
	}
	t.Logf("failed spawn fault: %v", fault["message"])
	e.nova("DELETE", "/servers/"+bad, nil, 204)
	e.waitServer(bad, "gone", 3*time.Minute)
	e.sim.ClearFaults()

	// More servers than nodes: the extra one fails with No valid host.
	var ids []string
	for i := range len(e.nodes) + 1 {
		ids = append(ids, e.createServer(fmt.Sprintf("bm-fill-%d", i)))
	}
	active, noValid := 0, 0
	deadline = time.Now().Add(4 * time.Minute)
	for _, id := range ids {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, b, err := e.p.NovaRequest(ctx, "GET", "/servers/"+id, nil)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]map[string]any
			_ = json.Unmarshal(b, &out)
			s := out["server"]
			if s["status"] == "ACTIVE" {
				active++
				break
			}
			if s["status"] == "ERROR" {
				msg := fmt.Sprint(s["fault"])
				if !strings.Contains(msg, "No valid host") {
					t.Fatalf("server %s ERROR: %s", id, msg)
				}
				noValid++
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("server %s still %v", id, s["status"])
			}
			time.Sleep(time.Second)
		}
	}
	if active != len(e.nodes) || noValid != 1 {
		t.Fatalf("%d servers on %d nodes: %d ACTIVE, %d No valid host", len(ids), len(e.nodes), active, noValid)
	}
	for _, id := range ids {
		e.nova("DELETE", "/servers/"+id, nil, 204)
	}
	for _, id := range ids {
		e.waitServer(id, "gone", 3*time.Minute)
	}
	// A server reads as gone once Instance.destroy is done; the allocation delete
	// and the action's event_finish queued after it follow within an ops tick.
	start, first := time.Now(), -1
	deadline = start.Add(time.Minute)
	for {
		n, err := e.st.NovaOpsPending(context.Background(), e.host)
		if err != nil {
			t.Fatal(err)
		}
		if first < 0 {
			first = n
		}
		if n == 0 {
			t.Logf("nova writes pending when the last server was gone: %d, drained in %s", first, time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			rows, _ := e.st.DB().Query(`SELECT op || ' attempts=' || attempts || ' error=' || coalesce(last_error, '')
				FROM nova_outbox WHERE compute_host=$1 AND done_at IS NULL ORDER BY id`, e.host)
			var left []string
			for rows != nil && rows.Next() {
				var l string
				_ = rows.Scan(&l)
				left = append(left, l)
			}
			t.Fatalf("%d nova writes still pending a minute after the last delete: %q", n, left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkRefused waits until nova shows the server's last action of the given name
// refused by the compute host: the task state cleared with the server ACTIVE and
// the action's compute event finished with an error.
func (e *plane) checkRefused(id, action, event string) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		srv := e.nova("GET", "/servers/"+id, nil, 200)["server"].(map[string]any)
		acts := e.nova("GET", "/servers/"+id+"/os-instance-actions", nil, 200)
		var reqID string
		for _, a := range acts["instanceActions"].([]any) {
			if a := a.(map[string]any); a["action"] == action && reqID == "" {
				reqID, _ = a["request_id"].(string)
			}
		}
		var result any
		if reqID != "" {
			act := e.nova("GET", "/servers/"+id+"/os-instance-actions/"+reqID, nil, 200)["instanceAction"].(map[string]any)
			events, _ := act["events"].([]any)
			for _, ev := range events {
				if ev := ev.(map[string]any); ev["event"] == event {
					result = ev["result"]
				}
			}
		}
		if srv["OS-EXT-STS:task_state"] == nil && result == "Error" {
			if srv["status"] != "ACTIVE" {
				e.t.Fatalf("server %s is %v after a refused %s, want ACTIVE", id, srv["status"], action)
			}
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s of %s not refused after 1m: status %v, task %v, event %s result %v",
				action, id, srv["status"], srv["OS-EXT-STS:task_state"], event, result)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
