// Package testopenstack runs a real OpenStack control plane for tests: nova-api,
// nova-conductor, nova-scheduler, placement, glance and neutron from Debian's packages,
// on 127.0.0.1, without Keystone (scripts/openstack/plane.sh does the work).
//
// Starting a plane takes about a minute and a half and 1.5 GB of memory, so tests that
// need one are opt-in: Start skips the test unless XCATBM_TEST_OPENSTACK=1, or unless
// XCATBM_TEST_OPENSTACK_DIR names the directory of a plane already running, which is
// then reused (and left running):
//
//	XCATBM_TEST_OPENSTACK=1 go test ./internal/testopenstack/
//
//	scripts/openstack/plane.sh start /tmp/os
//	XCATBM_TEST_OPENSTACK_DIR=/tmp/os go test ./...   # reuse it, many times
//	scripts/openstack/plane.sh stop /tmp/os
//
// A plane Start creates has ports, databases and a RabbitMQ vhost of its own (so it
// never meets a plane started by hand or by another package) and is stopped, its
// databases and vhost dropped, when the test ends.
package testopenstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"xcatbm/internal/httpretry"
	"xcatbm/internal/testkit/osplane"
)

// Environment variables that select and configure the plane.
const (
	// EnvEnable, set to 1, lets Start create a plane for the test.
	EnvEnable = "XCATBM_TEST_OPENSTACK"
	// EnvDir names the directory of a running plane (plane.sh start DIR) to reuse.
	EnvDir = "XCATBM_TEST_OPENSTACK_DIR"
)

// Token is the X-Auth-Token the plane's noauth2 services take as user admin, project
// admin, with admin rights.
const Token = "admin:admin"

// Microversions the service clients ask for: the newest that Debian bookworm's nova
// (Zed) and placement serve.
const (
	ComputeMicroversion   = "2.93"
	PlacementMicroversion = "1.39"
)

// startTimeout bounds plane.sh start; its own readiness wait defaults to 300 s on top
// of the database set-up.
const startTimeout = 15 * time.Minute

// Plane is a running control plane. Its fields are read-only; its methods are safe
// for concurrent use.
type Plane struct {
	// NovaURL is the compute API with its version, e.g. http://127.0.0.1:8774/v2.1.
	NovaURL string
	// PlacementURL is the placement API root, e.g. http://127.0.0.1:8778.
	PlacementURL string
	// GlanceURL is the image API root (without /v2), e.g. http://127.0.0.1:9292.
	GlanceURL string
	// NeutronURL is the network API root (without /v2.0), e.g. http://127.0.0.1:9696.
	NeutronURL string
	// TransportURL is nova's bus as oslo.messaging names it (rabbit://user:pass@host:port/vhost).
	TransportURL string
	// AMQPURL is the same bus for amqp091-go (amqp://user:pass@host:port/vhost).
	AMQPURL string
	// Vhost is the RabbitMQ virtual host of nova's bus.
	Vhost string
	// ConfigDir holds the plane's configs (nova.conf ...), logs (log/) and PIDs (pids/).
	ConfigDir string
	// StartTime is how long plane.sh start took (0 when the plane was reused).
	StartTime time.Duration

	script string
	owned  bool
	http   *http.Client
}

// Enabled reports whether tests may use a plane: EnvEnable is 1 or EnvDir is set.
func Enabled() bool {
	return os.Getenv(EnvEnable) == "1" || os.Getenv(EnvDir) != ""
}

// Start returns a running plane: the one in EnvDir when set, else a new one started
// into a temporary directory and stopped (databases and vhost dropped) by t.Cleanup.
// It skips the test unless Enabled, and fails it when the plane cannot be started,
// with the failing service's name and log tail. It blocks until every service answers.
func Start(t testing.TB) *Plane {
	t.Helper()
	if !Enabled() {
		t.Skipf("needs a real OpenStack control plane: set %s=1 (or %s=<dir of a running plane>)", EnvEnable, EnvDir)
	}
	script, err := osplane.Script()
	if err != nil {
		t.Fatalf("testopenstack: %v", err)
	}
	if dir := os.Getenv(EnvDir); dir != "" {
		p, err := load(dir)
		if err != nil {
			t.Fatalf("testopenstack: reuse plane in %s: %v", dir, err)
		}
		p.script = script
		if err := p.ping(); err != nil {
			t.Fatalf("testopenstack: plane in %s does not answer (plane.sh status %s): %v", dir, dir, err)
		}
		return p
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if out, err := run(ctx, nil, script, "install"); err != nil {
		t.Fatalf("testopenstack: plane.sh install: %v\n%s", err, out)
	}
	dir := t.TempDir()
	env, err := planeEnv()
	if err != nil {
		t.Fatalf("testopenstack: %v", err)
	}
	begin := time.Now()
	out, err := run(ctx, env, script, "start", dir)
	// Register the stop before looking at the result: a failed start may leave some
	// services running, and purge also drops the databases and vhost.
	t.Cleanup(func() {
		if t.Failed() {
			logTails(t, dir)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := run(ctx, nil, script, "purge", dir); err != nil {
			t.Errorf("testopenstack: plane.sh purge %s: %v\n%s", dir, err, out)
		}
	})
	if err != nil {
		t.Fatalf("testopenstack: plane.sh start: %v\n%s", err, osplane.Tail(out, 80))
	}
	p, err := load(dir)
	if err != nil {
		t.Fatalf("testopenstack: %v", err)
	}
	p.script, p.owned, p.StartTime = script, true, time.Since(begin)
	t.Logf("testopenstack: plane up in %s in %s (nova %s, bus %s)", dir, p.StartTime.Round(time.Second), p.NovaURL, p.Vhost)
	return p
}

// DeleteComputeService removes compute host host from nova as an operator retiring
// it would (DELETE /os-services/{id} of its nova-compute service), with its compute
// nodes, host mapping and resource providers. A host nova does not know is no error.
func (p *Plane) DeleteComputeService(ctx context.Context, host string) error {
	var out struct {
		Services []struct {
			ID string `json:"id"`
		} `json:"services"`
	}
	if err := p.novaJSON(ctx, http.MethodGet, "/os-services?binary=nova-compute&host="+url.QueryEscape(host), &out); err != nil {
		return err
	}
	var errs []error
	for _, s := range out.Services {
		if st, b, err := p.NovaRequest(ctx, http.MethodDelete, "/os-services/"+s.ID, nil); err != nil || st != http.StatusNoContent {
			errs = append(errs, fmt.Errorf("delete compute service %s (%s): %d %v %s", host, s.ID, st, err, bytes.TrimSpace(b)))
		}
	}
	return errors.Join(errs...)
}

// ServerIDs lists the ids of the servers whose name matches nova's name filter (a
// regular expression, e.g. "^bench-"), in status when status is not "".
func (p *Plane) ServerIDs(ctx context.Context, name, status string) ([]string, error) {
	q := url.Values{"name": {name}, "limit": {"1000"}}
	if status != "" {
		q.Set("status", status)
	}
	var out struct {
		Servers []struct {
			ID string `json:"id"`
		} `json:"servers"`
	}
	if err := p.novaJSON(ctx, http.MethodGet, "/servers?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	ids := make([]string, len(out.Servers))
	for i, s := range out.Servers {
		ids[i] = s.ID
	}
	return ids, nil
}

// DeleteServers deletes the servers whose name matches nova's name filter, eight
// requests at a time, and waits until nova lists none of them (or ctx ends).
func (p *Plane) DeleteServers(ctx context.Context, name string) error {
	ids, err := p.ServerIDs(ctx, name, "")
	if err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
	)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if st, b, err := p.NovaRequest(ctx, http.MethodDelete, "/servers/"+id, nil); err != nil || (st != http.StatusNoContent && st != http.StatusNotFound) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("delete server %s: %d %v %s", id, st, err, bytes.TrimSpace(b)))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for {
		left, err := p.ServerIDs(ctx, name, "")
		if err != nil {
			return err
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d servers %s still listed after their delete: %w", len(left), name, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// novaJSON sends one request without a body and decodes a 200 answer into out.
func (p *Plane) novaJSON(ctx context.Context, method, path string, out any) error {
	st, b, err := p.NovaRequest(ctx, method, path, nil)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("nova %s %s: %d %s", method, path, st, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("nova %s %s: %w", method, path, err)
	}
	return nil
}

// Open returns the plane plane.sh start runs in dir, for programs that are not tests
// (the bench). The plane is left running.
func Open(dir string) (*Plane, error) {
	script, err := osplane.Script()
	if err != nil {
		return nil, err
	}
	p, err := load(dir)
	if err != nil {
		return nil, err
	}
	p.script = script
	return p, nil
}

// Discover maps compute hosts that registered through the conductor into cell1
// (nova-manage cell_v2 discover_hosts) and returns its output. It fails the test on
// error.
func (p *Plane) Discover(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := p.DiscoverHosts(ctx)
	if err != nil {
		t.Fatalf("testopenstack: %v", err)
	}
	return out
}

// DiscoverHosts is Discover for callers that are not tests.
func (p *Plane) DiscoverHosts(ctx context.Context) (string, error) {
	out, err := run(ctx, nil, p.script, "discover", p.ConfigDir)
	if err != nil {
		return string(out), fmt.Errorf("discover hosts: %w\n%s", err, out)
	}
	return string(out), nil
}

// StartFakeCompute starts nova's own nova-compute with its fake driver as compute
// host (plane.sh fake-compute): it returns once placement has the host's provider and
// the host is mapped to cell1.
func (p *Plane) StartFakeCompute(ctx context.Context, host string) error {
	if out, err := run(ctx, nil, p.script, "fake-compute", p.ConfigDir, host); err != nil {
		return fmt.Errorf("start nova-compute (fake driver) %s: %w\n%s", host, err, out)
	}
	return nil
}

// StopFakeCompute stops what StartFakeCompute started.
func (p *Plane) StopFakeCompute(ctx context.Context, host string) error {
	if out, err := run(ctx, nil, p.script, "fake-compute-stop", p.ConfigDir, host); err != nil {
		return fmt.Errorf("stop nova-compute (fake driver) %s: %w\n%s", host, err, out)
	}
	return nil
}

// NovaRequest sends one request to the compute API as admin (X-Auth-Token admin:admin,
// microversion ComputeMicroversion). path is relative to NovaURL ("/flavors"); body,
// when not nil, is sent as JSON. It returns the status and body of any answer; err is
// only for a request that got none.
func (p *Plane) NovaRequest(ctx context.Context, method, path string, body any) (status int, respBody []byte, err error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("nova %s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.NovaURL+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("nova %s %s: %w", method, path, err)
	}
	req.Header.Set("X-Auth-Token", Token)
	req.Header.Set("X-OpenStack-Nova-API-Version", ComputeMicroversion)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client().Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("nova %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	respBody, err = io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, respBody, fmt.Errorf("nova %s %s: read answer: %w", method, path, err)
	}
	return resp.StatusCode, respBody, nil
}

// ComputeClient returns a gophercloud client of nova as admin at ComputeMicroversion.
func (p *Plane) ComputeClient() *gophercloud.ServiceClient {
	return p.serviceClient(p.NovaURL+"/", "", "compute", ComputeMicroversion)
}

// PlacementClient returns a gophercloud client of placement as admin at
// PlacementMicroversion.
func (p *Plane) PlacementClient() *gophercloud.ServiceClient {
	return p.serviceClient(p.PlacementURL+"/", "", "placement", PlacementMicroversion)
}

// ImageClient returns a gophercloud client of glance's v2 API (which needs no token).
func (p *Plane) ImageClient() *gophercloud.ServiceClient {
	return p.serviceClient(p.GlanceURL+"/", p.GlanceURL+"/v2/", "image", "")
}

// NetworkClient returns a gophercloud client of neutron's v2.0 API (which needs no
// token; requests run as admin in project fake_project_id).
func (p *Plane) NetworkClient() *gophercloud.ServiceClient {
	return p.serviceClient(p.NeutronURL+"/", p.NeutronURL+"/v2.0/", "network", "")
}

func (p *Plane) serviceClient(endpoint, base, typ, microversion string) *gophercloud.ServiceClient {
	pc := &gophercloud.ProviderClient{HTTPClient: *p.client()}
	pc.SetToken(Token)
	return &gophercloud.ServiceClient{
		ProviderClient: pc,
		Endpoint:       endpoint,
		ResourceBase:   base,
		Type:           typ,
		Microversion:   microversion,
	}
}

func (p *Plane) client() *http.Client {
	if p.http != nil {
		return p.http
	}
	return http.DefaultClient
}

// ping checks that each API of a reused plane answers.
func (p *Plane) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, u := range []string{p.NovaURL + "/", p.PlacementURL + "/", p.GlanceURL + "/versions", p.NeutronURL + "/"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := p.client().Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode >= 500 {
			return fmt.Errorf("GET %s: %s", u, resp.Status)
		}
	}
	return nil
}

// load reads DIR/env, which plane.sh start writes once every service answers.
func load(dir string) (*Plane, error) {
	vars, err := osplane.ReadEnv(dir, "OS_NOVA_URL", "OS_PLACEMENT_URL", "OS_GLANCE_URL", "OS_NEUTRON_URL",
		"OS_TRANSPORT_URL", "OS_AMQP_URL", "OS_VHOST", "OS_CONFIG_DIR")
	if err != nil {
		return nil, err
	}
	p := &Plane{
		NovaURL:      vars["OS_NOVA_URL"],
		PlacementURL: vars["OS_PLACEMENT_URL"],
		GlanceURL:    vars["OS_GLANCE_URL"],
		NeutronURL:   vars["OS_NEUTRON_URL"],
		TransportURL: vars["OS_TRANSPORT_URL"],
		AMQPURL:      vars["OS_AMQP_URL"],
		Vhost:        vars["OS_VHOST"],
		ConfigDir:    vars["OS_CONFIG_DIR"],
		// Placement closes every connection after its answer (uwsgi, as deployed):
		// the harness's own requests need the resends xcatbm's clients have.
		http: httpretry.Client(nil, 2*time.Minute),
	}
	return p, nil
}

// planeEnv gives a new plane free ports, and databases and a vhost named apart from
// any other plane's.
func planeEnv() ([]string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(b[:])
	env := []string{
		"XCATBM_OS_DB_PREFIX=xcatbm_os_" + id + "_",
		"XCATBM_OS_VHOST=xcatbm-os-" + id,
	}
	for _, name := range []string{"NOVA", "PLACEMENT", "GLANCE", "NEUTRON"} {
		port, err := osplane.FreePort()
		if err != nil {
			return nil, fmt.Errorf("find a free port for %s: %w", strings.ToLower(name), err)
		}
		env = append(env, "XCATBM_OS_"+name+"_PORT="+strconv.Itoa(port))
	}
	return env, nil
}

// run runs plane.sh with extra environment and returns its combined output.
func run(ctx context.Context, env []string, script string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	// plane.sh starts services in sessions of their own; do not let a canceled context
	// leave the script's own children holding the output pipe.
	cmd.WaitDelay = 10 * time.Second
	return cmd.CombinedOutput()
}

// logTails logs the end of each service log of the plane in dir.
func logTails(t testing.TB, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "log", "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		t.Logf("testopenstack: last lines of %s:\n%s", l, osplane.Tail(b, 30))
	}
}
