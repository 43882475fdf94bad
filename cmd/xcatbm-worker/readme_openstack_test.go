package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"xcatbm/internal/testkit/osplane"
	"xcatbm/internal/testkit/testopenstack"
	"xcatbm/xcat/sim"
)

// readmeSection is the README section TestREADMEAddingXcatbmToAnExistingOpenStack
// follows.
const readmeSection = "## Adding xcatbm to an existing OpenStack"

// serverShow is the README command whose output shows the tenant's server: the plane
// test checks it says ACTIVE on a registered node.
const serverShow = "openstack server show first-bm"

// fence is one fenced block of the README: its info string and its text.
type fence struct {
	lang, text string
}

// readmeFences returns the fenced blocks of the README section titled title, in
// order (indented blocks of a list item included).
func readmeFences(t *testing.T, path, title string) []fence {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []fence
	in, inBlock := false, false
	var cur fence
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !inBlock && strings.HasPrefix(line, "## "):
			in = line == title
		case !in:
		case strings.HasPrefix(strings.TrimSpace(line), "```") && !inBlock:
			inBlock, cur = true, fence{lang: strings.TrimPrefix(strings.TrimSpace(line), "```")}
			body.Reset()
		case strings.HasPrefix(strings.TrimSpace(line), "```") && inBlock:
			inBlock, cur.text = false, body.String()
			out = append(out, cur)
		case inBlock:
			body.WriteString(strings.TrimPrefix(line, "   ") + "\n")
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no fenced blocks under %q", path, title)
	}
	return out
}

// readmeSteps returns the README section's sh blocks and its clouds.yaml for a cloud
// without Keystone, failing the test when the section no longer has the shape the
// plane test follows: the site's values first, a worker block, the yaml.
func readmeSteps(t *testing.T) (shells []string, keystoneless string) {
	t.Helper()
	worker, shows := false, false
	for _, f := range readmeFences(t, "../../README.md", readmeSection) {
		switch {
		case f.lang == "sh":
			shells = append(shells, f.text)
			worker = worker || strings.HasPrefix(f.text, "xcatbm-worker")
			shows = shows || strings.Contains(f.text, serverShow)
		case f.lang == "yaml" && strings.Contains(f.text, "auth_type: none"):
			keystoneless = f.text
		}
	}
	if len(shells) < 2 || !worker || !shows || keystoneless == "" || !strings.HasPrefix(shells[0], "export XCATBM_COMPUTE_HOST=") {
		t.Fatalf("the README section %q changed shape (want the site's values first, a block starting xcatbm-worker, a block with %q whose output the test checks, a yaml with auth_type: none): %q",
			readmeSection, serverShow, shells)
	}
	return shells, keystoneless
}

// TestREADMESectionShape runs without a plane: the section the plane test follows
// still reads as that test expects.
func TestREADMESectionShape(t *testing.T) {
	t.Parallel()
	readmeSteps(t)
}

// TestREADMEAddingXcatbmToAnExistingOpenStack follows README.md's section "Adding
// xcatbm to an existing OpenStack" against a real nova, placement, Glance and
// Neutron (scripts/openstack/plane.sh) and a simulated xcatd: every sh block runs
// as written, in order, in bash with the built xcatbm and xcatbm-worker first on
// PATH. What the test supplies is what the section leaves to the site: the first
// block's values (the plane's bus and placement, the simulator's address, temporary
// directories), ~/.xcat with the simulator's credentials, the admin's clouds.yaml,
// the worker's clouds.yaml from the section's keystone-less example with the
// plane's addresses in place of example.org's, and nova-manage reading the plane's
// nova.conf. The worker block runs as a service would, in the background, until
// the test ends. The role and database the section creates (xcatbm on the
// machine's PostgreSQL) are dropped at the end, and before the start when a
// stopped run left them.
func TestREADMEAddingXcatbmToAnExistingOpenStack(t *testing.T) {
	p := testopenstack.Start(t)
	shells, keystoneless := readmeSteps(t)

	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", bin+"/", "xcatbm/cmd/xcatbm", "xcatbm/cmd/xcatbm-worker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// nova-manage on a controller reads /etc/nova/nova.conf; the plane keeps its
	// configuration in its own directory.
	shim := fmt.Sprintf("#!/bin/sh\nexec /usr/bin/nova-manage --config-file %s/nova.conf --config-dir %s/conf.d/nova \"$@\"\n", p.ConfigDir, p.ConfigDir)
	if err := os.WriteFile(filepath.Join(bin, "nova-manage"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}

	// The simulated management node: two nodes in group compute, served by mn1.
	installDir := filepath.Join(dir, "install")
	if err := os.MkdirAll(filepath.Join(installDir, "postscripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	id := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	s, err := sim.Start(ctx, sim.Config{Cluster: sim.GenerateCluster("rd"+id+"n", 2, "mn1"), InstallDir: installDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	home := filepath.Join(dir, "home")
	for _, f := range []string{"ca.pem", "client-cred.pem"} {
		b, err := os.ReadFile(filepath.Join(s.CredDir(), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(home, ".xcat"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, ".xcat", f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The admin's cloud and the worker's.
	admin := filepath.Join(dir, "admin-clouds.yaml")
	if err := os.WriteFile(admin, fmt.Appendf(nil, `clouds:
  admin:
    auth_type: admin_token
    auth:
      endpoint: %[1]s
      token: %[2]s
    compute_endpoint_override: %[1]s
    image_endpoint_override: %[3]s
    network_endpoint_override: %[4]s
    compute_api_version: "2.92"
    image_api_version: "2"
`, p.NovaURL, testopenstack.Token, p.GlanceURL, p.NeutronURL), 0o600); err != nil {
		t.Fatal(err)
	}
	workerClouds := filepath.Join(dir, "clouds.yaml")
	wc := strings.NewReplacer("http://glance.example.org:9292", p.GlanceURL, "http://neutron.example.org:9696", p.NeutronURL).Replace(keystoneless)
	if err := os.WriteFile(workerClouds, []byte(wc), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "placement-token")
	if err := os.WriteFile(tokenFile, []byte(testopenstack.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	host := "readme-" + id
	port, err := osplane.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	dbURL := "postgres://xcatbm@127.0.0.1:5432/xcatbm?sslmode=disable"
	env := []string{
		"PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "LC_ALL=C.UTF-8",
		// The site's values (the README's first block).
		"XCATBM_COMPUTE_HOST=" + host, "XCATBM_MGMT_NODE=mn1", "XCATBM_TRANSPORT_URL=" + p.TransportURL,
		"XCATBM_DATABASE_URL=" + dbURL, "XCATBM_XCAT_HOST=" + s.Addr(),
		"XCATBM_XCAT_CRED_DIR=" + filepath.Join(dir, "secrets", "xcat"),
		"XCATBM_PLACEMENT_URL=" + p.PlacementURL, "XCATBM_PLACEMENT_TOKEN_FILE=" + tokenFile,
		"XCATBM_CLOUDS_YAML=" + workerClouds, "OS_CLIENT_CONFIG_FILE=" + admin, "OS_CLOUD=admin",
		// What a management node has in place: xCAT's install directory.
		"XCATBM_INSTALL_DIR=" + installDir, "XCATBM_DIR=" + filepath.Join(installDir, "postscripts"),
		"XCATBM_CONSOLE_LOG_DIR=" + dir, "XCATBM_LISTEN=" + listen, "XCATBM_LOG_FORMAT=json",
		// createuser and createdb as the PostgreSQL superuser.
		"PGHOST=127.0.0.1", "PGPORT=5432", "PGUSER=postgres",
	}

	// The role and database the README creates; gone again at the end.
	pg, err := sql.Open("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	dropXcatbm := func() {
		for _, q := range []string{`DROP DATABASE IF EXISTS xcatbm WITH (FORCE)`, `DROP ROLE IF EXISTS xcatbm`} {
			if _, err := pg.Exec(q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	}
	dropXcatbm()
	t.Cleanup(func() { dropXcatbm(); _ = pg.Close() })
	quotas := quotaClass(t, p)
	t.Cleanup(func() { cleanupPlane(t, p, host, quotas) })

	var workerLog bytes.Buffer
	for i, block := range shells[1:] {
		if strings.HasPrefix(block, "xcatbm-worker") {
			startWorker(t, env, block, listen, &workerLog)
			// Runs before the worker stops: a server left by a failed step is
			// deleted while its compute host still answers.
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				if err := p.DeleteServers(ctx, "^first-bm$"); err != nil {
					t.Errorf("deleting first-bm: %v", err)
				}
			})
			continue
		}
		out := runBlock(t, env, block)
		t.Logf("README block %d:\n%s%s", i+1, block, out)
		if strings.Contains(block, serverShow) {
			if !strings.Contains(out, "ACTIVE") || !strings.Contains(out, "rd"+id+"n") {
				t.Errorf("first-bm is not ACTIVE on one of the registered nodes:\n%s", out)
			}
		}
	}

	if t.Failed() {
		t.Logf("worker log:\n%s", workerLog.String())
	}
}

// runBlock runs one README block in bash, stopping at its first failing command,
// and returns what it printed; a failure fails the test.
func runBlock(t *testing.T, env []string, block string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", block)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README block failed: %v\n%s\n--- output:\n%s", err, block, out)
	}
	return string(out)
}

// startWorker runs the README's worker block in the background until the test ends
// and waits until the worker reports ready on /readyz.
func startWorker(t *testing.T, env []string, block, listen string, log *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", "exec "+block)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("the worker did not stop within 30s of SIGTERM")
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			t.Fatalf("the worker (%s) exited: %v\n%s", block, err, log)
		default:
		}
		resp, err := http.Get("http://" + listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker not ready after 2m\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cleanupPlane removes from the plane what following the README leaves there once
// the worker has stopped: the flavor, the raised default quotas (back to quotas, what
// they were before) and the compute service with its nodes and providers.
func cleanupPlane(t *testing.T, p *testopenstack.Plane, host string, quotas map[string]any) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, b, err := p.NovaRequest(ctx, "GET", "/flavors?is_public=None", nil)
	if err != nil || st != 200 {
		t.Errorf("list flavors: %d %v %s", st, err, b)
	}
	var out struct {
		Flavors []struct{ ID, Name string } `json:"flavors"`
	}
	_ = json.Unmarshal(b, &out)
	for _, f := range out.Flavors {
		if f.Name != "bm.gold" {
			continue
		}
		if st, b, err := p.NovaRequest(ctx, "DELETE", "/flavors/"+f.ID, nil); err != nil || st != 202 {
			t.Errorf("delete flavor bm.gold: %d %v %s", st, err, b)
		}
	}
	if st, b, err := p.NovaRequest(ctx, "PUT", "/os-quota-class-sets/default", map[string]any{"quota_class_set": quotas}); err != nil || st != 200 {
		t.Errorf("restore the default quota class: %d %v %s", st, err, b)
	}
	if err := p.DeleteComputeService(ctx, host); err != nil {
		t.Error(err)
	}
}

// quotaClass returns the default quota class's cores and RAM, which the README raises.
func quotaClass(t *testing.T, p *testopenstack.Plane) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, b, err := p.NovaRequest(ctx, "GET", "/os-quota-class-sets/default", nil)
	if err != nil || st != 200 {
		t.Fatalf("GET /os-quota-class-sets/default: %d %v %s", st, err, b)
	}
	var out struct {
		Set map[string]any `json:"quota_class_set"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"cores": out.Set["cores"], "ram": out.Set["ram"]}
}
