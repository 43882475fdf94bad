package main

// Row 8 (--openstack): xcatbm is never nova's bottleneck. N servers are created at
// once through the real nova API, first on nova's own nova-compute with its fake
// driver (plane.sh fake-compute), then on xcatbm against an xCAT simulator whose
// install takes no time; the wall time from the request to every server ACTIVE is
// compared.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"xcatbm/internal/testkit/testopenstack"
	"xcatbm/messages"
	"xcatbm/publisher"
	"xcatbm/worker/nova"
	"xcatbm/xcat/sim"
)

// targetFakeRatio is issue #20's bound: xcatbm's wall time for N servers at most 1.1×
// that of nova's fake driver on the same plane.
var targetFakeRatio = target{"<=", 1.1, "× nova's fake driver"}

// novaAPI sends the row's requests to nova and Glance as admin.
type novaAPI struct{ p *testopenstack.Plane }

// call sends one request to nova and decodes a JSON answer into out (when not nil);
// any status but want is an error naming the request.
func (a novaAPI) call(ctx context.Context, method, path string, body, out any, want int) error {
	st, b, err := a.p.NovaRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	if st != want {
		return fmt.Errorf("nova %s %s: %d %s", method, path, st, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("nova %s %s: %w", method, path, err)
		}
	}
	return nil
}

// glance sends one request to Glance's v2 API.
func (a novaAPI) glance(ctx context.Context, method, path, ctype string, body []byte, out any, want int) error {
	req, err := http.NewRequestWithContext(ctx, method, a.p.GlanceURL+"/v2"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", testopenstack.Token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("glance %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("glance %s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// createImage makes an active public image naming the simulator's osimage.
func (a novaAPI) createImage(ctx context.Context, name string) (string, error) {
	meta, _ := json.Marshal(map[string]any{"name": name, "disk_format": "raw", "container_format": "bare", "visibility": "public",
		messages.XCATImageProperty: "rhels7.5-x86_64-install-compute"})
	var im struct {
		ID string `json:"id"`
	}
	if err := a.glance(ctx, http.MethodPost, "/images", "application/json", meta, &im, http.StatusCreated); err != nil {
		return "", err
	}
	if err := a.glance(ctx, http.MethodPut, "/images/"+im.ID+"/file", "application/octet-stream", []byte("xcat osimage stand-in"), nil, http.StatusNoContent); err != nil {
		return im.ID, err
	}
	return im.ID, nil
}

// flavorSpec is a flavor to create: its size and extra specs (none when nil).
type flavorSpec struct {
	name             string
	vcpus, ram, disk int
	specs            map[string]string
}

// createFlavor makes a flavor and returns its id (also with an error, when it was
// made but its extra specs were refused).
func (a novaAPI) createFlavor(ctx context.Context, f flavorSpec) (string, error) {
	var out struct {
		Flavor struct {
			ID string `json:"id"`
		} `json:"flavor"`
	}
	if err := a.call(ctx, http.MethodPost, "/flavors", map[string]any{"flavor": map[string]any{"name": f.name, "vcpus": f.vcpus, "ram": f.ram, "disk": f.disk}}, &out, http.StatusOK); err != nil {
		return "", err
	}
	if f.specs != nil {
		if err := a.call(ctx, http.MethodPost, "/flavors/"+out.Flavor.ID+"/os-extra_specs", map[string]any{"extra_specs": f.specs}, nil, http.StatusOK); err != nil {
			return out.Flavor.ID, err
		}
	}
	return out.Flavor.ID, nil
}

// timeServers creates flavor f, then n servers of it named prefix-1..n at once, and
// returns the wall time until the first and until every one of them is ACTIVE. The
// flavor's delete and the servers' are put on undo, whatever happens.
func (a novaAPI) timeServers(ctx context.Context, undo *[]func(context.Context) error, f flavorSpec, prefix, image string, n int, within time.Duration) (first, all time.Duration, err error) {
	flavor, err := a.createFlavor(ctx, f)
	if flavor != "" {
		*undo = append(*undo, func(ctx context.Context) error {
			return a.call(ctx, http.MethodDelete, "/flavors/"+flavor, nil, nil, http.StatusAccepted)
		})
	}
	if err != nil {
		return 0, 0, err
	}
	*undo = append(*undo, func(ctx context.Context) error { return a.deleteAll(ctx, prefix, within) })
	return a.spawnAll(ctx, prefix, flavor, image, n, within)
}

// unlimitQuota lifts the default quota class's instances, cores and RAM for the run
// (nova's defaults allow 10 instances) and returns what puts them back.
func (a novaAPI) unlimitQuota(ctx context.Context) (restore func(context.Context) error, err error) {
	var q struct {
		Set map[string]any `json:"quota_class_set"`
	}
	if err := a.call(ctx, http.MethodGet, "/os-quota-class-sets/default", nil, &q, http.StatusOK); err != nil {
		return nil, err
	}
	keys := []string{"instances", "cores", "ram"}
	old, open := map[string]any{}, map[string]any{}
	for _, k := range keys {
		old[k], open[k] = q.Set[k], -1
	}
	if err := a.call(ctx, http.MethodPut, "/os-quota-class-sets/default", map[string]any{"quota_class_set": open}, nil, http.StatusOK); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		return a.call(ctx, http.MethodPut, "/os-quota-class-sets/default", map[string]any{"quota_class_set": old}, nil, http.StatusOK)
	}, nil
}

// fault returns the fault message of a server in ERROR.
func (a novaAPI) fault(ctx context.Context, id string) string {
	var out struct {
		Server struct {
			Fault struct {
				Message string `json:"message"`
			} `json:"fault"`
		} `json:"server"`
	}
	if err := a.call(ctx, http.MethodGet, "/servers/"+id, nil, &out, http.StatusOK); err != nil {
		return err.Error()
	}
	return out.Server.Fault.Message
}

// spawnAll creates n servers in one request (min_count = max_count = n) and returns
// the wall time until the first and until every one of them is ACTIVE. A server in
// ERROR ends the wait.
func (a novaAPI) spawnAll(ctx context.Context, prefix, flavor, image string, n int, within time.Duration) (first, all time.Duration, err error) {
	body := map[string]any{"server": map[string]any{"name": prefix, "flavorRef": flavor, "imageRef": image,
		"networks": "none", "min_count": n, "max_count": n}}
	began := time.Now()
	if err := a.call(ctx, http.MethodPost, "/servers", body, nil, http.StatusAccepted); err != nil {
		return 0, 0, err
	}
	// The lists cost nova-api CPU the servers' builds need too: ACTIVE every 500 ms,
	// ERROR every 2 s.
	deadline := time.Now().Add(within)
	for poll := 0; ; poll++ {
		active, err := a.p.ServerIDs(ctx, "^"+prefix, "ACTIVE")
		if err != nil {
			return 0, 0, err
		}
		if len(active) > 0 && first == 0 {
			first = time.Since(began)
		}
		if len(active) >= n {
			return first, time.Since(began), nil
		}
		if poll%4 == 3 {
			failed, err := a.p.ServerIDs(ctx, "^"+prefix, "ERROR")
			if err != nil {
				return 0, 0, err
			}
			if len(failed) > 0 {
				return 0, 0, fmt.Errorf("%d of %d servers in ERROR (%d ACTIVE); the first: %s", len(failed), n, len(active), a.fault(ctx, failed[0]))
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%d of %d servers ACTIVE after %s", len(active), n, within)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// deleteAll deletes the servers whose name starts with prefix and waits, at most
// within, until nova lists none of them.
func (a novaAPI) deleteAll(ctx context.Context, prefix string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	return a.p.DeleteServers(ctx, "^"+prefix)
}

// rowOSSpawnVsFake is issue #20's "xcatbm is never nova's bottleneck": N = 20 ×
// scale servers (at most 1000, nova's page) created at once through nova's API reach
// ACTIVE on xcatbm in at most 1.1× the wall time they take on nova's fake driver.
// N is small because the baseline grows with N²: nova-compute claims one build at a
// time under its resource tracker's lock, and each claim reads the allocations of
// every instance already on the host from placement (BENCHMARKS.md, row 8).
func (b *bench) rowOSSpawnVsFake(ctx context.Context) (err error) {
	p, err := loadPlane(b.o.openstack)
	if err != nil {
		return err
	}
	op := p.os
	a := novaAPI{p: op}
	n := min(b.scaled(20, 5), 1000)
	within := 5*time.Minute + time.Duration(n)*10*time.Second
	suffix := randomSuffix()
	// What the row made is removed on every path, errors joined to the row's.
	var undo []func(context.Context) error
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			err = errors.Join(err, undo[i](cctx))
		}
	}()

	restore, err := a.unlimitQuota(ctx)
	if err != nil {
		return err
	}
	undo = append(undo, restore)
	image, err := a.createImage(ctx, "bench-"+suffix)
	if image != "" {
		undo = append(undo, func(ctx context.Context) error {
			return a.glance(ctx, http.MethodDelete, "/images/"+image, "", nil, nil, http.StatusNoContent)
		})
	}
	if err != nil {
		return err
	}

	// The baseline: nova's own nova-compute with its fake driver.
	fakeHost := "bench-fake-" + suffix
	if err := op.StartFakeCompute(ctx, fakeHost); err != nil {
		return err
	}
	fakeRunning := true
	stopFake := func(ctx context.Context) error {
		if !fakeRunning {
			return nil
		}
		fakeRunning = false
		return errors.Join(op.StopFakeCompute(ctx, fakeHost), a.p.DeleteComputeService(ctx, fakeHost))
	}
	undo = append(undo, stopFake)
	fakePrefix := "bf" + suffix
	fakeFirst, fakeTook, err := a.timeServers(ctx, &undo, flavorSpec{name: "bench-fake-" + suffix, vcpus: 1, ram: 64, disk: 1},
		fakePrefix, image, n, within)
	if err != nil {
		return fmt.Errorf("fake driver: %w", err)
	}
	b.add(row{n: "8a", measure: fmt.Sprintf("%d servers at once through nova's API to ACTIVE, nova-compute with nova's fake driver (the baseline)", n),
		value: fmt.Sprintf("%.1f s, %.1f servers/s (the first ACTIVE after %.1f s)", fakeTook.Seconds(), float64(n)/fakeTook.Seconds(), fakeFirst.Seconds())})
	if err := a.deleteAll(ctx, fakePrefix, within); err != nil {
		return fmt.Errorf("fake driver: %w", err)
	}
	if err := stopFake(ctx); err != nil {
		return err
	}

	// xcatbm as the compute host of N nodes, instant xCAT, install taking no time.
	prefix := "s" + suffix[:6] + "n"
	h, err := b.startOSHost(ctx, p, "osspawn", sim.GenerateCluster(prefix, n, "mn1"), sim.Latency{}, sim.Timeline{Installing: time.Nanosecond})
	if err != nil {
		return err
	}
	undo = append(undo, func(context.Context) error { h.stop(); return nil })
	width := len(fmt.Sprint(n))
	reg, err := submit(ctx, p, h.host, "register_nodes", &messages.RegisterNodesArgs{
		NodeRange: fmt.Sprintf("%s[%0*d-%d]", prefix, width, 1, n), ComputeHost: h.host, ResourceClass: h.rc})
	if err != nil {
		return err
	}
	if ok := publisher.Summarize(nil, reg).OK; ok != n {
		b.reportNotOK("registration", reg)
		return fmt.Errorf("registration: %d of %d nodes ok", ok, n)
	}
	if _, err := op.DiscoverHosts(ctx); err != nil {
		return err
	}
	first, took, err := a.timeServers(ctx, &undo, flavorSpec{name: "bench-bm-" + suffix, vcpus: 1, ram: 1, specs: map[string]string{
		"resources:" + nova.ResourceClass(h.rc): "1", "resources:VCPU": "0", "resources:MEMORY_MB": "0", "resources:DISK_GB": "0"}},
		"bx"+suffix, image, n, within)
	if err != nil {
		return fmt.Errorf("xcatbm: %w", err)
	}
	b.add(row{n: "8b", measure: fmt.Sprintf("the same %d servers on xcatbm: %d nodes, instant xCAT simulator, install 0", n, n),
		value: fmt.Sprintf("%.1f s, %.1f servers/s (the first ACTIVE after %.1f s)", took.Seconds(), float64(n)/took.Seconds(), first.Seconds())})
	ratio := took.Seconds() / fakeTook.Seconds()
	b.add(row{n: "8c", measure: "xcatbm / fake driver, wall time (8b / 8a)", value: fmt.Sprintf("%.2f×", ratio),
		target: targetFakeRatio.String(), result: b.check(targetFakeRatio, ratio)})
	return nil
}
