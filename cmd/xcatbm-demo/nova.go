package main

// The path with nova: a real control plane (scripts/openstack/plane.sh) and the
// worker with its nova integration standing in for nova-compute, so the casts on the
// bus are nova's own, sent because the demo asked nova's REST API for servers.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/internal/config"
	"xcatbm/internal/httpretry"
	"xcatbm/internal/testkit/osplane"
	"xcatbm/messages"
	"xcatbm/publisher"
	"xcatbm/worker"
	"xcatbm/worker/nova"
	"xcatbm/worker/store"
	"xcatbm/xcat"
)

// novaPrograms are what plane.sh start needs installed (plane.sh install puts them
// there; the demo never installs anything).
var novaPrograms = []string{"/usr/bin/nova-api", "/usr/bin/nova-conductor", "/usr/bin/nova-scheduler",
	"/usr/bin/placement-api", "/usr/bin/glance-api", "/usr/bin/neutron-server", "/usr/bin/uwsgi"}

// The plane's noauth2 admin token and the compute microversion asked for (Debian
// bookworm's nova serves up to 2.93).
const (
	osToken             = "admin:admin"
	computeMicroversion = "2.93"
	resourceClass       = "baremetal-demo"
)

// useNova decides the path from --nova.
func useNova(mode string) (bool, error) {
	var missing []string
	for _, p := range novaPrograms {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	switch mode {
	case "off":
		return false, nil
	case "auto":
		return len(missing) == 0, nil
	case "on":
		if len(missing) > 0 {
			return false, fmt.Errorf("--nova on: nova's packages are not installed (missing %s); install them with scripts/openstack/plane.sh install, or run with --nova off",
				strings.Join(missing, ", "))
		}
		return true, nil
	}
	return false, fmt.Errorf("--nova %q: want auto, on or off", mode)
}

// plane is a control plane started by plane.sh into dir.
type plane struct {
	script string
	dir    string
	env    []string          // the XCATBM_OS_* settings it was started with
	vars   map[string]string // DIR/env: OS_NOVA_URL, OS_AMQP_URL, ...
}

// startPlane starts a plane from script with databases, vhost and ports of the
// demo's own. On success the caller must call the plane's purge; on failure startPlane
// has already purged whatever the failed start left (services, databases, vhost and
// the temporary directory) and returns the start's error, with the purge's joined.
func startPlane(ctx context.Context, script, suffix string, verbose bool) (*plane, error) {
	dir, err := os.MkdirTemp("", "xcatbm-demo-plane-")
	if err != nil {
		return nil, fmt.Errorf("plane directory: %w", err)
	}
	p := &plane{script: script, dir: dir, env: []string{
		"XCATBM_OS_DB_PREFIX=xcatbm_demo_os_" + suffix + "_",
		"XCATBM_OS_VHOST=xcatbm-demo-os-" + suffix,
	}}
	for _, name := range []string{"NOVA", "PLACEMENT", "GLANCE", "NEUTRON"} {
		port, err := osplane.FreePort()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("find a free port for %s: %w", strings.ToLower(name), err)
		}
		p.env = append(p.env, "XCATBM_OS_"+name+"_PORT="+strconv.Itoa(port))
	}
	var live io.Writer
	if verbose {
		live = os.Stderr
	}
	out, err := p.run(ctx, live, "start", dir)
	if err != nil {
		err = fmt.Errorf("plane.sh start: %w\n%s", err, osplane.Tail(out, 40))
	} else if p.vars, err = osplane.ReadEnv(dir, "OS_NOVA_URL", "OS_PLACEMENT_URL", "OS_GLANCE_URL", "OS_AMQP_URL", "OS_VHOST"); err != nil {
		err = fmt.Errorf("plane.sh start: %w", err)
	}
	if err != nil {
		// A failed start may leave services running: purge them as well.
		if perr := p.purge(); perr != nil {
			err = errors.Join(err, perr)
		}
		return nil, err
	}
	return p, nil
}

// purge stops the plane, drops its databases and vhost and removes its directory;
// the directory is removed even when plane.sh purge fails.
func (p *plane) purge() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := p.run(ctx, nil, "purge", p.dir)
	if err != nil {
		err = fmt.Errorf("plane.sh purge %s: %w\n%s", p.dir, err, osplane.Tail(out, 20))
	}
	if rerr := os.RemoveAll(p.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove the plane directory: %w", rerr))
	}
	return err
}

// run runs plane.sh with the plane's settings; its output is returned and, when live
// is set, also copied there as it comes.
func (p *plane) run(ctx context.Context, live io.Writer, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{p.script}, args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	var buf bytes.Buffer
	var w io.Writer = &buf
	if live != nil {
		w = io.MultiWriter(&buf, live)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// plane.sh starts services in sessions of their own; a canceled start must not
	// wait for them to close the output.
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	return buf.Bytes(), err
}

func (p *plane) discover(ctx context.Context) (string, error) {
	out, err := p.run(ctx, nil, "discover", p.dir)
	if err != nil {
		return "", fmt.Errorf("plane.sh discover: %w\n%s", err, osplane.Tail(out, 20))
	}
	return strings.TrimSpace(string(out)), nil
}

// runNova is the path with nova: plane, worker with its nova integration, the admin's
// registration jobs, then servers through nova's REST API.
func (d *demo) runNova(ctx context.Context, suffix string, verbose bool) (err error) {
	out := d.out
	fmt.Fprintf(out, "starting an OpenStack control plane with scripts/openstack/plane.sh (nova, placement, glance, neutron; 1-4 minutes)...\n")
	begin := time.Now()
	script, err := osplane.Script()
	if err != nil {
		return err
	}
	p, err := startPlane(ctx, script, suffix, verbose)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintf(out, "stopping the control plane and dropping its databases and vhost\n")
		if perr := p.purge(); perr != nil && err == nil {
			err = perr
		}
	}()
	fmt.Fprintf(out, "control plane up in %s: nova %s, placement %s, glance %s, bus vhost %s\n",
		time.Since(begin).Round(time.Second), p.vars["OS_NOVA_URL"], p.vars["OS_PLACEMENT_URL"], p.vars["OS_GLANCE_URL"], p.vars["OS_VHOST"])
	api := &openstack{nova: p.vars["OS_NOVA_URL"], placement: p.vars["OS_PLACEMENT_URL"], glance: p.vars["OS_GLANCE_URL"],
		http: httpretry.Client(nil, 2*time.Minute)}
	amqpURL := p.vars["OS_AMQP_URL"]

	// The worker for compute host host, with the nova integration on nova's bus.
	clouds := filepath.Join(p.dir, "clouds.yaml")
	if err := os.WriteFile(clouds, []byte(fmt.Sprintf("clouds:\n  demo:\n    auth_type: admin_token\n    auth:\n      token: %s\n    image_endpoint_override: %s\n",
		osToken, api.glance)), 0o600); err != nil {
		return err
	}
	log := zerolog.New(d.logOut)
	conn := broker.NewConn(broker.ConnConfig{URLs: []string{amqpURL}, Name: "xcatbm-demo-nova", Log: log})
	svc, err := nova.New(nova.Config{ComputeHost: host, Backoff: broker.Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second}},
		nova.Deps{Conn: conn, Store: d.st, Placement: &nova.Placement{URL: api.placement, Token: config.NewSecret(osToken)}, Log: log})
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{ComputeHost: host, MgmtNode: "mn1", PollInterval: 200 * time.Millisecond,
		PowerPollInterval: 200 * time.Millisecond, ClaimInterval: 100 * time.Millisecond, PowerSyncInterval: -1,
		Backoff: broker.Backoff{Min: 100 * time.Millisecond, Max: time.Second}, ConsoleLogDir: p.dir, CloudsFile: clouds,
		InstallDir: d.installDir},
		worker.Deps{Store: d.st, XCAT: xcat.NewClient(d.nat), AMQPURLs: []string{amqpURL}, Log: log, Nova: svc})
	if err != nil {
		return err
	}
	wctx, wstop := context.WithCancel(ctx)
	done := make(chan struct{}, 3)
	go func() { conn.Run(wctx); done <- struct{}{} }()
	go func() { _ = svc.Run(wctx); done <- struct{}{} }()
	go func() { _ = w.Run(wctx); done <- struct{}{} }()
	defer func() {
		wstop()
		for range 3 {
			<-done
		}
	}()
	for what, ready := range map[string]<-chan struct{}{"nova integration registered with nova-conductor": svc.Ready(), "worker consuming": w.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the %s: %w", what, ctx.Err())
		}
	}
	out2, err := p.discover(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "worker serving compute host %s is registered in nova and consuming compute.%s on vhost %s\n  discover: %s\n\n",
		host, host, p.vars["OS_VHOST"], lastLine(out2))

	rconn, err := amqp.Dial(amqpURL)
	if err != nil {
		return err
	}
	defer rconn.Close()
	notes, err := watchNotifications(rconn)
	if err != nil {
		return err
	}

	// The admin's path: register the xCAT nodes and the osimage.
	pub, err := publisher.Dial(publisher.Config{URLs: []string{amqpURL}})
	if err != nil {
		return err
	}
	defer pub.Close()
	fmt.Fprintf(out, "== register nodes: register_nodes job for %s (resource class %s)\n", strings.Join(d.names, ","), resourceClass)
	if err := submit(ctx, out, pub, "register_nodes", &messages.RegisterNodesArgs{NodeRange: strings.Join(d.names, ","), ComputeHost: host, ResourceClass: resourceClass}); err != nil {
		return err
	}
	rc := nova.ResourceClass(resourceClass)
	if err := api.waitProviders(ctx, out, rc, len(d.names)); err != nil {
		return err
	}
	if out2, err = p.discover(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "  discover: %s\n", lastLine(out2))
	imgName := "xcat-" + image
	fmt.Fprintf(out, "== register image: register_images job for osimage %s\n", image)
	if err := submit(ctx, out, pub, "register_images", &messages.RegisterImagesArgs{Cloud: "demo", Images: []messages.ImageRegistration{{XCATName: image, Name: imgName}}}); err != nil {
		return err
	}
	imgs, err := api.do(ctx, http.MethodGet, api.glance+"/v2/images?name="+imgName, nil, 200)
	if err != nil {
		return err
	}
	list, _ := imgs["images"].([]any)
	if len(list) != 1 {
		return fmt.Errorf("glance has %d images named %s, want 1", len(list), imgName)
	}
	imageID, _ := list[0].(map[string]any)["id"].(string)
	fmt.Fprintf(out, "  glance image %s (%s)\n", imageID, imgName)

	f, err := api.do(ctx, http.MethodPost, api.nova+"/flavors", map[string]any{"flavor": map[string]any{"name": "baremetal-demo", "ram": 1, "vcpus": 1, "disk": 0}}, 200)
	if err != nil {
		return err
	}
	flavor, _ := f["flavor"].(map[string]any)["id"].(string)
	if _, err := api.do(ctx, http.MethodPost, api.nova+"/flavors/"+flavor+"/os-extra_specs", map[string]any{"extra_specs": map[string]string{
		"resources:" + rc: "1", "resources:VCPU": "0", "resources:MEMORY_MB": "0", "resources:DISK_GB": "0"}}, 200); err != nil {
		return err
	}
	fmt.Fprintf(out, "  flavor baremetal-demo: resources:%s=1, VCPU/MEMORY_MB/DISK_GB 0\n\n", rc)

	// The tenant's key pair, which nova hands to the worker with each server.
	key, err := demoKey("demo-tenant")
	if err != nil {
		return err
	}
	if _, err := api.do(ctx, http.MethodPost, api.nova+"/os-keypairs", map[string]any{"keypair": map[string]any{"name": "demo-key", "public_key": key}}, 200, 201); err != nil {
		return err
	}
	fp, err := fingerprint(key)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  key pair demo-key: %s\n\n", fp)

	// Servers through nova's REST API.
	sv := &servers{d: d, api: api, ids: map[string]string{}, node: map[string]string{}}
	var all []string
	for i := range d.names {
		name := fmt.Sprintf("tenant-%02d", i+1)
		s, err := api.do(ctx, http.MethodPost, api.nova+"/servers", map[string]any{"server": map[string]any{
			"name": name, "flavorRef": flavor, "imageRef": imageID, "networks": "none", "key_name": "demo-key"}}, 202)
		if err != nil {
			return err
		}
		sv.ids[name], _ = s["server"].(map[string]any)["id"].(string)
		all = append(all, name)
	}
	fmt.Fprintf(out, "== spawn: POST /servers for %s\n", strings.Join(all, ","))
	if err := sv.wait(ctx, all, "ACTIVE"); err != nil {
		return err
	}
	var spawned []string
	for _, name := range all {
		spawned = append(spawned, sv.node[name])
	}
	if err := d.showKeys(spawned); err != nil {
		return err
	}
	first := all[:1]
	fmt.Fprintf(out, "== power off: os-stop %s\n", first[0])
	if err := sv.action(ctx, first[0], map[string]any{"os-stop": nil}); err != nil {
		return err
	}
	if err := sv.wait(ctx, first, "SHUTOFF"); err != nil {
		return err
	}
	if ns, _ := d.srv.Node(sv.node[first[0]]); ns.Power != "off" {
		return fmt.Errorf("%s is SHUTOFF but its node %s has power %q", first[0], sv.node[first[0]], ns.Power)
	}
	fmt.Fprintf(out, "== power on: os-start %s\n", first[0])
	if err := sv.action(ctx, first[0], map[string]any{"os-start": nil}); err != nil {
		return err
	}
	if err := sv.wait(ctx, first, "ACTIVE"); err != nil {
		return err
	}
	fmt.Fprintf(out, "== delete: DELETE /servers for %s\n", strings.Join(all, ","))
	for _, name := range all {
		if _, err := api.do(ctx, http.MethodDelete, api.nova+"/servers/"+sv.ids[name], nil, 204); err != nil {
			return err
		}
	}
	if err := sv.wait(ctx, all, "gone"); err != nil {
		return err
	}
	time.Sleep(time.Second) // the last notifications are on their way
	d.summaries(notes, "notifications on nova's bus (exchange nova)")
	return nil
}

// submit runs one xcatbm job through the publisher, as the admin commands do, and
// prints its per-item results; any item not ok fails the demo.
func submit(ctx context.Context, out io.Writer, pub *publisher.Publisher, method string, args messages.JobArgs) error {
	jctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	job, err := pub.Submit(jctx, host, method, args, true)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	end, err := job.Follow(jctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	var failed []string
	for _, r := range end.Results {
		fmt.Fprintf(out, "  %-32s %-7s %s\n", r.Name, r.Status, r.Message)
		if r.Status != messages.ItemOK {
			failed = append(failed, r.Name)
		}
	}
	if len(failed) > 0 || len(end.Results) == 0 {
		return fmt.Errorf("%s: %d results, not ok: %v", method, len(end.Results), failed)
	}
	return nil
}

// openstack calls the plane's REST APIs as admin through noauth2.
type openstack struct {
	nova, placement, glance string
	http                    *http.Client
}

// do sends one request (body as JSON when set) and decodes the JSON answer; a status
// outside want is an error with the answer's text.
func (o *openstack) do(ctx context.Context, method, url string, body any, want ...int) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Auth-Token", osToken)
	req.Header.Set("Accept", "application/json")
	switch {
	case strings.HasPrefix(url, o.nova):
		req.Header.Set("X-OpenStack-Nova-API-Version", computeMicroversion)
	case strings.HasPrefix(url, o.placement):
		req.Header.Set("OpenStack-API-Version", "placement 1.39")
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	ok := false
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		return map[string]any{"status": resp.StatusCode}, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	out := map[string]any{"status": resp.StatusCode}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, url, err)
		}
		out["status"] = resp.StatusCode
	}
	return out, nil
}

// waitProviders waits until placement lists n resource providers offering one unit of
// rc (the nova integration creates them on its next sync after the registration).
func (o *openstack) waitProviders(ctx context.Context, out io.Writer, rc string, n int) error {
	last := -1
	for {
		// 400 until the first sync has created the resource class.
		rps, err := o.do(ctx, http.MethodGet, o.placement+"/resource_providers?resources="+rc+":1", nil, 200, 400)
		if err != nil {
			return err
		}
		list, _ := rps["resource_providers"].([]any)
		if len(list) != last {
			fmt.Fprintf(out, "  placement: %d of %d resource providers offer %s\n", len(list), n, rc)
			last = len(list)
		}
		if len(list) == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d resource providers of %s: %w", n, rc, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// servers follows the demo's servers: nova's status and task state, the xcatbm job of
// the server, and the xCAT status of the node it landed on.
type servers struct {
	d    *demo
	api  *openstack
	ids  map[string]string // server name → id
	node map[string]string // server name → node (hypervisor_hostname), once scheduled
}

func (s *servers) action(ctx context.Context, name string, body any) error {
	_, err := s.api.do(ctx, http.MethodPost, s.api.nova+"/servers/"+s.ids[name]+"/action", body, 202)
	return err
}

// wait prints each server's progress until every one of names is in status want
// ("gone" for deleted); a server going ERROR, or a job of it failing, fails it.
func (s *servers) wait(ctx context.Context, names []string, want string) error {
	last := map[string]string{}
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		pending := 0
		for _, name := range names {
			line, reached, err := s.line(ctx, name, want)
			if err != nil {
				return err
			}
			if !reached {
				pending++
			}
			if line != last[name] {
				fmt.Fprintf(s.d.out, "  %s  %s\n", name, line)
				last[name] = line
			}
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("servers not %s: %w", want, ctx.Err())
		case <-t.C:
		}
	}
}

func (s *servers) line(ctx context.Context, name, want string) (line string, reached bool, err error) {
	id := s.ids[name]
	r, err := s.api.do(ctx, http.MethodGet, s.api.nova+"/servers/"+id, nil, 200, 404)
	if err != nil {
		return "", false, err
	}
	status, task := "gone", "-"
	if r["status"] == http.StatusOK {
		srv, _ := r["server"].(map[string]any)
		status, _ = srv["status"].(string)
		if t, ok := srv["OS-EXT-STS:task_state"].(string); ok && t != "" {
			task = t
		}
		if n, ok := srv["OS-EXT-SRV-ATTR:hypervisor_hostname"].(string); ok && n != "" {
			s.node[name] = n
		}
		if status == "ERROR" && want != "ERROR" {
			return "", false, fmt.Errorf("server %s went ERROR waiting for %s: %v", name, want, srv["fault"])
		}
	}
	line = strings.TrimRight(fmt.Sprintf("nova %-8s task %-18s", status, task), " ")
	node := s.node[name]
	if node != "" {
		line = fmt.Sprintf("%-36s on %s", line, node)
	}
	if j, err := latestJob(ctx, s.d.st, id); err != nil {
		return "", false, err
	} else if j != nil && node != "" {
		line += "  " + jobLine(j, s.d.srv, node)
		if j.Finished() && j.State != string(worker.StateDone) {
			return "", false, fmt.Errorf("%s job of server %s on %s ended %s: %s", j.Kind, name, node, j.State, j.Error)
		}
	}
	return line, status == want && task == "-", nil
}

// latestJob is the newest job of an instance, nil before its first cast arrived.
func latestJob(ctx context.Context, st *store.Store, instance string) (*store.Job, error) {
	jobs, err := st.JobsByInstance(ctx, instance)
	if err != nil {
		return nil, err
	}
	sort.Slice(jobs, func(i, k int) bool { return jobs[i].ID < jobs[k].ID })
	if len(jobs) == 0 {
		return nil, nil
	}
	return jobs[len(jobs)-1], nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
