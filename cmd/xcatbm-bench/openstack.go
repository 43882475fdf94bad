package main

// The rows against a real OpenStack control plane (make bench-openstack): nova-api,
// nova-conductor, nova-scheduler and placement from Debian's packages, started by
// scripts/openstack/plane.sh into a directory given with --openstack.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"xcatbm/internal/broker"
	"xcatbm/internal/config"
	"xcatbm/internal/testkit/testhttp"
	"xcatbm/internal/testkit/testopenstack"
	"xcatbm/messages"
	"xcatbm/publisher"
	"xcatbm/worker"
	"xcatbm/worker/nova"
	"xcatbm/worker/store"
	"xcatbm/xcat/sim"
)

// ironicEnrollRate is Ironic's enrollment rate on this machine, nodes/s, as issue #20
// measured it (not re-measured by the bench: Ironic is not part of the plane).
const ironicEnrollRate = 3.0

// osPlane is a running control plane, read from the env file plane.sh start wrote:
// what the rows use of it.
type osPlane struct {
	placement, amqp, token string
	os                     *testopenstack.Plane
}

func loadPlane(dir string) (*osPlane, error) {
	p, err := testopenstack.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("--openstack %s: %w (start a plane with scripts/openstack/plane.sh start DIR)", dir, err)
	}
	return &osPlane{placement: p.PlacementURL, amqp: p.AMQPURL, token: testopenstack.Token, os: p}, nil
}

// osHost is one compute host on the plane: a simulator cluster, a schema, the nova
// integration and a worker consuming nova's bus. stop stops them and deletes the
// host's compute service from nova.
type osHost struct {
	host, rc  string
	sim       *sim.Server
	st        *store.Store
	svc       *nova.Service
	placement *testhttp.Count
	stop      func()
}

// startOSHost starts a worker with the nova integration for a new compute host
// serving cl, and waits until it is registered with nova-conductor and consuming.
func (b *bench) startOSHost(ctx context.Context, p *osPlane, tag string, cl *sim.Cluster, lat sim.Latency, tl sim.Timeline) (*osHost, error) {
	suffix := randomSuffix()
	h := &osHost{host: "bench-" + tag + "-" + suffix, rc: "bench-" + suffix, placement: &testhttp.Count{}}
	st, err := b.env.schema(ctx, tag)
	if err != nil {
		return nil, err
	}
	h.st = st
	srv, xc, err := startSim(ctx, cl, lat, tl, b.o.coalesce)
	if err != nil {
		return nil, err
	}
	h.sim = srv
	wctx, cancel := context.WithCancel(ctx)
	conn := broker.NewConn(broker.ConnConfig{URLs: []string{p.amqp}, Name: "xcatbm-bench-nova", Log: b.log})
	h.svc, err = nova.New(nova.Config{ComputeHost: h.host},
		nova.Deps{Conn: conn, Store: st, Log: b.log,
			Placement: &nova.Placement{URL: p.placement, Token: config.NewSecret(p.token), HTTP: h.placement.Client(30 * time.Second)}})
	if err != nil {
		cancel()
		_ = srv.Close()
		return nil, err
	}
	cfg := workerConfig(h.host, 100*time.Millisecond)
	w, err := worker.New(cfg, worker.Deps{Store: st, XCAT: xc, AMQPURLs: []string{p.amqp}, Log: b.log, Nova: h.svc})
	if err != nil {
		cancel()
		_ = srv.Close()
		return nil, err
	}
	done := make(chan struct{}, 3)
	go func() { conn.Run(wctx); done <- struct{}{} }()
	go func() { _ = h.svc.Run(wctx); done <- struct{}{} }()
	go func() { _ = w.Run(wctx); done <- struct{}{} }()
	// Stopping retires the host from nova too: a compute service left behind counts
	// as up for nova's service_down_time, and what lists hypervisors on the same
	// plane then waits on it.
	h.stop = func() {
		cancel()
		for range 3 {
			<-done
		}
		_ = srv.Close()
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer dcancel()
		if err := p.os.DeleteComputeService(dctx, h.host); err != nil {
			fmt.Fprintf(b.errw, "xcatbm-bench: retiring compute host %s: %v\n", h.host, err)
		}
	}
	for what, ready := range map[string]<-chan struct{}{"nova integration registered with nova-conductor": h.svc.Ready(), "worker consuming": w.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			h.stop()
			return nil, ctx.Err()
		case <-time.After(2 * time.Minute):
			h.stop()
			return nil, fmt.Errorf("%s: not after 2m", what)
		}
	}
	return h, nil
}

// submit runs one registration job to its end and returns its final payload.
func submit(ctx context.Context, p *osPlane, host, method string, args messages.JobArgs) (*messages.JobPayload, error) {
	pub, err := publisher.Dial(publisher.Config{URLs: []string{p.amqp}})
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	job, err := pub.Submit(ctx, host, method, args, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	end, err := job.Follow(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return end, nil
}

// reportNotOK writes up to three of a job's items that are not ok to the bench's log.
func (b *bench) reportNotOK(what string, p *messages.JobPayload) {
	shown := 0
	for _, r := range p.Results {
		if r.Status != messages.ItemOK && shown < 3 {
			fmt.Fprintf(b.errw, "xcatbm-bench: %s: %s %s: %s\n", what, r.Name, r.Status, r.Message)
			shown++
		}
	}
}

// providersWith counts the resource providers that offer one unit of rc.
func (p *osPlane) providersWith(ctx context.Context, rc string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.placement+"/resource_providers?resources="+rc+":1", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Auth-Token", p.token)
	req.Header.Set("OpenStack-API-Version", "placement 1.39")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Providers []json.RawMessage `json:"resource_providers"`
	}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("placement GET /resource_providers: %d %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("placement GET /resource_providers: %w", err)
	}
	return len(out.Providers), nil
}

// computeNodesOf counts the compute nodes nova has for host (through nova-conductor).
func computeNodesOf(ctx context.Context, svc *nova.Service, host string) (int, error) {
	res, err := svc.Conductor().ObjectClassAction(ctx, "ComputeNodeList", "get_all_by_host", []any{host}, nil)
	if err != nil {
		return 0, err
	}
	list, err := messages.DecodeObject(res)
	if err != nil {
		return 0, err
	}
	objs, err := list.Objects()
	return len(objs), err
}

// rowOSRegistration is issue #20's registration at scale: N = 10000 × scale nodes
// from one register_nodes job (opsaddbmnode) to compute nodes in nova plus resource
// providers with inventory in placement; then the same job again, which must write
// nothing to placement.
func (b *bench) rowOSRegistration(ctx context.Context) error {
	p, err := loadPlane(b.o.openstack)
	if err != nil {
		return err
	}
	n := b.scaled(10000, 20)
	prefix := "r" + randomSuffix()[:6] + "n"
	cl := sim.GenerateCluster(prefix, n, "mn1")
	h, err := b.startOSHost(ctx, p, "osreg", cl, xcatLatency, sim.Timeline{})
	if err != nil {
		return err
	}
	defer h.stop()
	width := len(fmt.Sprint(n))
	args := &messages.RegisterNodesArgs{NodeRange: fmt.Sprintf("%s[%0*d-%d]", prefix, width, 1, n), ComputeHost: h.host, ResourceClass: h.rc}
	rc := nova.ResourceClass(h.rc)

	began := time.Now()
	first, err := submit(ctx, p, h.host, "register_nodes", args)
	if err != nil {
		return err
	}
	took := time.Since(began)
	writes, reads := h.placement.Writes(), h.placement.Reads()
	ok := publisher.Summarize(nil, first).OK
	b.reportNotOK("registration", first)
	providers, perr := p.providersWith(ctx, rc)
	computes, cerr := computeNodesOf(ctx, h.svc, h.host)
	if err := errors.Join(perr, cerr); err != nil {
		return fmt.Errorf("counting what the registration made: %w", err)
	}
	rate := float64(n) / took.Seconds()
	value := fmt.Sprintf("%.1f nodes/s (%s; ok %d/%d; placement has %d providers with %s, nova %d compute nodes; %d placement writes, %d reads)",
		rate, took.Round(100*time.Millisecond), ok, n, providers, rc, computes, writes, reads)
	result := b.check(targetRegistration, rate)
	if ok != n || providers != n || computes != n {
		result = "FAIL (not every node registered)"
	}
	b.add(row{n: "7a", measure: fmt.Sprintf("registration: %d nodes, one register_nodes job to compute nodes + resource providers with inventory (Ironic: %.0f nodes/s here)", n, ironicEnrollRate),
		value: value, target: targetRegistration.String(), result: result})

	// The same job again: every node unchanged, nothing written to placement.
	w0, r0 := h.placement.Writes(), h.placement.Reads()
	began = time.Now()
	second, err := submit(ctx, p, h.host, "register_nodes", args)
	if err != nil {
		return err
	}
	took = time.Since(began)
	b.reportNotOK("registration again", second)
	unchanged := 0
	for _, r := range second.Results {
		if r.Status == messages.ItemOK && strings.Contains(r.Message, "unchanged") {
			unchanged++
		}
	}
	w1, r1 := h.placement.Writes()-w0, h.placement.Reads()-r0
	b.add(row{n: "7b", measure: fmt.Sprintf("registration again: the same %d nodes, unchanged", n),
		value:  fmt.Sprintf("%d placement writes (%s; %d/%d reported unchanged; %d placement reads)", w1, took.Round(100*time.Millisecond), unchanged, n, r1),
		target: "0 writes", result: b.passFail(w1 == 0 && unchanged == n)})
	return nil
}
