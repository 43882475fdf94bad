package worker

// Tenant addresses from Neutron. When a spawn's request carries no fixed address but
// names a network (or a port) and the worker has a cloud with a network service
// (Config.Cloud), the spawn takes its address from the instance's Neutron port: the
// port named by the request, else the port on the network whose device_id is the
// instance, else a port it creates there (name xcatbm-<instance>, device_id the
// instance, device_owner compute:xcatbm, the instance's MAC when known). The port's
// first IPv4 address and its subnet's netmask become the tenant address. Destroy
// deletes, after restoring the node's xCAT address, the ports of the instance that
// spawn created (those named xcatbm-<instance> with device_owner compute:xcatbm) and
// never a port it found.
//
// Both hooks wrap steps (resolve before, restore_ip after) from init, so steps.go
// is unchanged.
//
// Requests go through the cloud's httpretry transport: lookups and deletes are
// resent when a kept connection was closed under them, and a port create whose
// answer was lost is found by its device_id and name rather than made twice.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"xcatbm/internal/cloud"
	"xcatbm/messages"
)

// portOwner marks the ports spawn creates.
const portOwner = "compute:xcatbm"

func portName(instance string) string { return "xcatbm-" + instance }

// requestedNetwork returns the first requested network and port of a spawn.
func requestedNetwork(nets []messages.NetworkRequest) (networkID, portID string) {
	for _, n := range nets {
		if n.PortID != "" || n.NetworkID != "" {
			return n.NetworkID, n.PortID
		}
	}
	return "", ""
}

// networkClient returns the network service of the worker's cloud, nil when none is
// configured. The opened cloud is kept for the process.
func (w *Worker) networkClient(ctx context.Context) (*gophercloud.ServiceClient, error) {
	if w.cfg.Cloud == "" {
		return nil, nil
	}
	w.network.mu.Lock()
	defer w.network.mu.Unlock()
	if w.network.opened {
		return w.network.client, nil
	}
	c, err := cloud.Open(ctx, cloud.Options{File: w.cfg.CloudsFile, Name: w.cfg.Cloud, Getenv: w.cfg.Getenv})
	if err != nil {
		return nil, err
	}
	nc, err := c.Network()
	if errors.Is(err, cloud.ErrNoEndpoint) {
		nc, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	w.network.client, w.network.opened = nc, true
	return nc, nil
}

// networkClient caches the worker's Neutron client (nil: no network endpoint).
type networkClient struct {
	mu     sync.Mutex
	opened bool
	client *gophercloud.ServiceClient
}

// neutronAddresses gives spawns without a fixed address their port's address. A run
// whose port cannot be had gets a failed or transient outcome.
func (w *Worker) neutronAddresses(ctx context.Context, runs []*run) {
	var want []*run
	for _, r := range runs {
		if r.kind() == KindSpawn && r.req.IP == "" && (r.req.NetworkID != "" || r.req.PortID != "") {
			want = append(want, r)
		}
	}
	if len(want) == 0 {
		return
	}
	nc, err := w.networkClient(ctx)
	if err != nil {
		for _, r := range want {
			r.out = transient(fmt.Errorf("neutron: %w", err))
		}
		return
	}
	if nc == nil {
		return
	}
	w.eachRun(ctx, want, func(ctx context.Context, r *run) outcome {
		port, err := w.instancePort(ctx, nc, r)
		if err != nil {
			return serviceOutcome(err)
		}
		ip, mask, err := portAddress(ctx, nc, port)
		if err != nil {
			return serviceOutcome(err)
		}
		r.req.IP, r.req.Netmask = ip, mask
		r.data.IP, r.data.Netmask, r.data.PortID = ip, mask, port.ID
		return outcome{}
	})
}

// serviceOutcome fails on the service's refusal (4xx) and retries otherwise.
func serviceOutcome(err error) outcome {
	var se *cloud.ServiceError
	if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && se.Status != 408 && se.Status != 429 {
		return failed(err)
	}
	return transient(err)
}

// instancePort finds or creates the instance's port.
func (w *Worker) instancePort(ctx context.Context, nc *gophercloud.ServiceClient, r *run) (*ports.Port, error) {
	if r.req.PortID != "" {
		p, err := ports.Get(ctx, nc, r.req.PortID).Extract()
		if err != nil {
			return nil, fmt.Errorf("neutron port %s: %w", r.req.PortID, cloud.Describe(err))
		}
		return p, nil
	}
	existing, err := instancePorts(ctx, nc, r.req.NetworkID, r.req.InstanceUUID)
	if err != nil {
		return nil, err
	}
	if len(existing) > 0 {
		return &existing[0], nil
	}
	opts := ports.CreateOpts{NetworkID: r.req.NetworkID, Name: portName(r.req.InstanceUUID), DeviceID: r.req.InstanceUUID,
		DeviceOwner: portOwner, Description: "created by xcatbm for instance " + r.req.InstanceUUID}
	if hw, err := net.ParseMAC(r.req.MAC); err == nil && len(hw) == 6 {
		opts.MACAddress = hw.String()
	}
	// A create whose answer was lost is found by its device_id and name.
	p, found, err := cloud.Create(ctx, func(ctx context.Context) (*ports.Port, error) {
		return ports.Create(ctx, nc, opts).Extract()
	}, func(ctx context.Context) (*ports.Port, error) {
		page, err := ports.List(nc, ports.ListOpts{NetworkID: r.req.NetworkID, DeviceID: r.req.InstanceUUID, Name: opts.Name}).AllPages(ctx)
		if err != nil {
			return nil, err
		}
		made, err := ports.ExtractPorts(page)
		if err != nil || len(made) == 0 {
			return nil, err
		}
		return &made[0], nil
	})
	if err != nil {
		return nil, fmt.Errorf("create neutron port on network %s: %w", r.req.NetworkID, cloud.Describe(err))
	}
	w.jobLog(r).Info().Str("port", p.ID).Str("network", r.req.NetworkID).Bool("found_after_lost_answer", found).Msg("neutron port created")
	return p, nil
}

// instancePorts lists the ports of an instance (on network, when not empty).
func instancePorts(ctx context.Context, nc *gophercloud.ServiceClient, network, instance string) ([]ports.Port, error) {
	page, err := ports.List(nc, ports.ListOpts{NetworkID: network, DeviceID: instance}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list neutron ports of %s: %w", instance, cloud.Describe(err))
	}
	found, err := ports.ExtractPorts(page)
	if err != nil {
		return nil, fmt.Errorf("list neutron ports of %s: %w", instance, err)
	}
	return found, nil
}

// portAddress returns a port's first IPv4 address and its subnet's netmask.
func portAddress(ctx context.Context, nc *gophercloud.ServiceClient, p *ports.Port) (ip, mask string, err error) {
	for _, f := range p.FixedIPs {
		a := net.ParseIP(f.IPAddress).To4()
		if a == nil {
			continue
		}
		sn, err := subnets.Get(ctx, nc, f.SubnetID).Extract()
		if err != nil {
			return "", "", fmt.Errorf("neutron subnet %s: %w", f.SubnetID, cloud.Describe(err))
		}
		_, cidr, err := net.ParseCIDR(sn.CIDR)
		if err != nil || cidr.IP.To4() == nil {
			return "", "", fmt.Errorf("neutron subnet %s: CIDR %q is not IPv4", f.SubnetID, sn.CIDR)
		}
		return a.String(), net.IP(cidr.Mask).String(), nil
	}
	return "", "", fmt.Errorf("neutron port %s has no IPv4 address", p.ID)
}

// releasePorts deletes, for destroys that restored the node, the ports their spawn
// created.
func (w *Worker) releasePorts(ctx context.Context, runs []*run) {
	var done []*run
	for _, r := range runs {
		if r.kind() == KindDestroy && r.out.is(advance) && r.req.InstanceUUID != "" {
			done = append(done, r)
		}
	}
	if len(done) == 0 {
		return
	}
	nc, err := w.networkClient(ctx)
	if err != nil || nc == nil {
		if err != nil {
			for _, r := range done {
				r.out = transient(fmt.Errorf("neutron: %w", err))
			}
		}
		return
	}
	w.eachRun(ctx, done, func(ctx context.Context, r *run) outcome {
		found, err := instancePorts(ctx, nc, "", r.req.InstanceUUID)
		if err != nil {
			return serviceOutcome(err)
		}
		for _, p := range found {
			if p.Name != portName(r.req.InstanceUUID) || p.DeviceOwner != portOwner {
				continue
			}
			if err := ports.Delete(ctx, nc, p.ID).ExtractErr(); err != nil && !gophercloud.ResponseCodeIs(err, 404) {
				return serviceOutcome(fmt.Errorf("delete neutron port %s: %w", p.ID, cloud.Describe(err)))
			}
			w.jobLog(r).Info().Str("port", p.ID).Msg("neutron port deleted")
		}
		return r.out
	})
}
