package worker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"xcatbm/internal/testkit/testopenstack"
	"xcatbm/messages"
	"xcatbm/worker/store"
)

// TestNeutronSpawnAddress runs the spawn and destroy port hooks against the real
// neutron-server of a test plane (XCATBM_TEST_OPENSTACK=1 or _DIR).
func TestNeutronSpawnAddress(t *testing.T) {
	plane := testopenstack.Start(t)
	nc := plane.NetworkClient()
	ctx := context.Background()
	suffix := messages.NewUniqueID()[:8]
	netw, err := networks.Create(ctx, nc, networks.CreateOpts{Name: "xcatbm-test-" + suffix}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = networks.Delete(ctx, nc, netw.ID).ExtractErr() })
	if _, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: netw.ID, CIDR: "192.168.77.0/24", IPVersion: 4}).Extract(); err != nil {
		t.Fatal(err)
	}
	clouds := filepath.Join(t.TempDir(), "clouds.yaml")
	body := fmt.Sprintf("clouds:\n  plane:\n    auth_type: admin_token\n    auth:\n      token: %s\n    network_endpoint_override: %s\n", testopenstack.Token, plane.NeutronURL)
	if err := os.WriteFile(clouds, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &Worker{cfg: Config{Cloud: "plane", CloudsFile: clouds, XCATParallel: 4}}
	uuid := messages.NewUniqueID()

	spawn := &run{job: &store.Job{Kind: string(KindSpawn)}, req: request{InstanceUUID: uuid, NetworkID: netw.ID, MAC: "AA:BB:CC:77:00:01"}}
	w.neutronAddresses(ctx, []*run{spawn})
	if spawn.out.err != nil || spawn.req.IP == "" || spawn.req.Netmask != "255.255.255.0" || spawn.data.IP != spawn.req.IP || spawn.data.PortID == "" {
		t.Fatalf("spawn: out %v, req %+v, data %+v", spawn.out.err, spawn.req, spawn.data)
	}
	p, err := ports.Get(ctx, nc, spawn.data.PortID).Extract()
	if err != nil || p.DeviceID != uuid || p.MACAddress != "aa:bb:cc:77:00:01" || p.FixedIPs[0].IPAddress != spawn.req.IP {
		t.Fatalf("port %+v %v", p, err)
	}

	// A retried resolve finds the same port instead of making another.
	again := &run{job: &store.Job{Kind: string(KindSpawn)}, req: request{InstanceUUID: uuid, NetworkID: netw.ID}}
	w.neutronAddresses(ctx, []*run{again})
	if again.data.PortID != spawn.data.PortID || again.req.IP != spawn.req.IP {
		t.Errorf("second resolve: port %s ip %s, want %s %s", again.data.PortID, again.req.IP, spawn.data.PortID, spawn.req.IP)
	}

	// A port the user made is used and never deleted.
	own, err := ports.Create(ctx, nc, ports.CreateOpts{NetworkID: netw.ID, Name: "users-port"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ports.Delete(ctx, nc, own.ID).ExtractErr() })
	other := messages.NewUniqueID()
	byPort := &run{job: &store.Job{Kind: string(KindSpawn)}, req: request{InstanceUUID: other, PortID: own.ID}}
	w.neutronAddresses(ctx, []*run{byPort})
	if byPort.req.IP != own.FixedIPs[0].IPAddress {
		t.Errorf("port_id request: ip %q, want %q", byPort.req.IP, own.FixedIPs[0].IPAddress)
	}

	// Destroy deletes the port spawn created, not the user's.
	for _, id := range []string{uuid, other} {
		d := &run{job: &store.Job{Kind: string(KindDestroy)}, req: request{InstanceUUID: id}, out: advanced("ip restored")}
		w.releasePorts(ctx, []*run{d})
		if d.out.err != nil {
			t.Fatalf("destroy %s: %v", id, d.out.err)
		}
	}
	if _, err := ports.Get(ctx, nc, spawn.data.PortID).Extract(); err == nil {
		t.Error("the port spawn created is still there")
	}
	if _, err := ports.Get(ctx, nc, own.ID).Extract(); err != nil {
		t.Errorf("the user's port was deleted: %v", err)
	}

	// Without a cloud the hook does nothing.
	off := &Worker{cfg: Config{XCATParallel: 1}}
	r := &run{job: &store.Job{Kind: string(KindSpawn)}, req: request{InstanceUUID: uuid, NetworkID: netw.ID}}
	off.neutronAddresses(ctx, []*run{r})
	if r.req.IP != "" || r.out.err != nil {
		t.Errorf("no cloud: %+v %v", r.req, r.out.err)
	}
}
