package testopenstack_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/gophercloud/gophercloud/v2/openstack/placement/v1/resourceclasses"
	"github.com/gophercloud/gophercloud/v2/openstack/placement/v1/resourceproviders"
	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/internal/testkit/testopenstack"
)

// TestPlane starts a real control plane and exercises every service the way xcatbm
// will: bare-metal flavors in nova, images in glance, resource providers in placement,
// ports in neutron, and an oslo RPC call answered by nova-conductor.
func TestPlane(t *testing.T) {
	p := testopenstack.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	step := func(name string, f func(t *testing.T)) {
		begin := time.Now()
		ok := t.Run(name, f)
		t.Logf("%s: %s (ok=%v)", name, time.Since(begin).Round(time.Millisecond), ok)
	}

	step("NovaServices", func(t *testing.T) {
		status, body, err := p.NovaRequest(ctx, "GET", "/os-services", nil)
		if err != nil || status != 200 {
			t.Fatalf("GET /os-services: %d %v %s", status, err, body)
		}
		var out struct {
			Services []struct{ Binary, State, Status string }
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		up := map[string]bool{}
		for _, s := range out.Services {
			up[s.Binary] = s.State == "up" && s.Status == "enabled"
		}
		if !up["nova-conductor"] || !up["nova-scheduler"] {
			t.Errorf("conductor and scheduler not both up and enabled: %s", body)
		}
		// Only a plane this test started is fresh; a reused one may have served
		// other tests' compute hosts.
		if _, ok := up["nova-compute"]; ok && p.StartTime > 0 {
			t.Errorf("a fresh plane already knows a nova-compute: %s", body)
		}
		// The client microversion must be one this nova serves.
		status, body, err = p.NovaRequest(ctx, "GET", "/", nil)
		if err != nil || status != 200 {
			t.Fatalf("GET /: %d %v %s", status, err, body)
		}
		var root struct{ Version struct{ Version string } }
		if err := json.Unmarshal(body, &root); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if root.Version.Version != testopenstack.ComputeMicroversion {
			t.Errorf("nova's newest microversion is %q, the clients ask for %q", root.Version.Version, testopenstack.ComputeMicroversion)
		}
	})

	step("Flavor", func(t *testing.T) {
		c := p.ComputeClient()
		before, err := flavors.ListDetail(c, nil).AllPages(ctx)
		if err != nil {
			t.Fatalf("list flavors: %v", err)
		}
		existing, err := flavors.ExtractFlavors(before)
		if err != nil {
			t.Fatalf("extract flavors: %v", err)
		}
		disk := 100
		f, err := flavors.Create(ctx, c, flavors.CreateOpts{Name: "bm.gold-" + randHex(3), RAM: 65536, VCPUs: 16, Disk: &disk}).Extract()
		if err != nil {
			t.Fatalf("create flavor: %v", err)
		}
		want := map[string]string{
			"resources:CUSTOM_BAREMETAL_GOLD": "1",
			"resources:VCPU":                  "0",
			"resources:MEMORY_MB":             "0",
			"resources:DISK_GB":               "0",
		}
		if _, err := flavors.CreateExtraSpecs(ctx, c, f.ID, flavors.ExtraSpecsOpts(want)).Extract(); err != nil {
			t.Fatalf("set extra specs: %v", err)
		}
		got, err := flavors.ListExtraSpecs(ctx, c, f.ID).Extract()
		if err != nil {
			t.Fatalf("read extra specs: %v", err)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("extra spec %s = %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
		after, err := flavors.ListDetail(c, nil).AllPages(ctx)
		if err != nil {
			t.Fatalf("list flavors: %v", err)
		}
		list, err := flavors.ExtractFlavors(after)
		if err != nil {
			t.Fatalf("extract flavors: %v", err)
		}
		if len(list) != len(existing)+1 || !slices.ContainsFunc(list, func(x flavors.Flavor) bool { return x.ID == f.ID && x.VCPUs == 16 }) {
			t.Errorf("flavor list after create = %+v, want %d flavors including %s", list, len(existing)+1, f.ID)
		}
	})

	step("Image", func(t *testing.T) {
		c := p.ImageClient()
		xcatName := "rhels9.4-x86_64-install-compute-" + randHex(3)
		img, err := images.Create(ctx, c, images.CreateOpts{
			Name:            "xcat " + xcatName,
			ContainerFormat: "bare",
			DiskFormat:      "raw",
			Properties:      map[string]string{"xcat_image_name": xcatName},
		}).Extract()
		if err != nil {
			t.Fatalf("create image: %v", err)
		}
		if img.Visibility == images.ImageVisibilityPublic {
			t.Fatalf("new image is already public; the publicize step would prove nothing")
		}
		img, err = images.Update(ctx, c, img.ID, images.UpdateOpts{images.UpdateVisibility{Visibility: images.ImageVisibilityPublic}}).Extract()
		if err != nil {
			t.Fatalf("make image public: %v", err)
		}
		if img.Visibility != images.ImageVisibilityPublic {
			t.Errorf("visibility after update = %q", img.Visibility)
		}
		var found struct {
			Images []map[string]any `json:"images"`
		}
		if _, err := c.Get(ctx, c.ServiceURL("images")+"?xcat_image_name="+xcatName, &found, nil); err != nil {
			t.Fatalf("list images by xcat_image_name: %v", err)
		}
		if len(found.Images) != 1 || found.Images[0]["id"] != img.ID || found.Images[0]["xcat_image_name"] != xcatName ||
			found.Images[0]["visibility"] != "public" {
			t.Errorf("images with xcat_image_name=%s: %v, want exactly %s, public", xcatName, found.Images, img.ID)
		}
	})

	step("Placement", func(t *testing.T) {
		c := p.PlacementClient()
		if err := resourceclasses.Update(ctx, c, "CUSTOM_BAREMETAL_GOLD").ExtractErr(); err != nil {
			t.Fatalf("create resource class: %v", err)
		}
		rp, err := resourceproviders.Create(ctx, c, resourceproviders.CreateOpts{Name: "n01-" + randHex(3)}).Extract()
		if err != nil {
			t.Fatalf("create resource provider: %v", err)
		}
		_, err = resourceproviders.UpdateInventories(ctx, c, rp.UUID, resourceproviders.UpdateInventoriesOpts{
			ResourceProviderGeneration: rp.Generation,
			Inventories: map[string]resourceproviders.Inventory{
				"CUSTOM_BAREMETAL_GOLD": {Total: 1, MinUnit: 1, MaxUnit: 1, StepSize: 1, AllocationRatio: 1},
			},
		}).Extract()
		if err != nil {
			t.Fatalf("set inventory: %v", err)
		}
		pages, err := resourceproviders.List(c, resourceproviders.ListOpts{Resources: "CUSTOM_BAREMETAL_GOLD:1"}).AllPages(ctx)
		if err != nil {
			t.Fatalf("list resource providers: %v", err)
		}
		rps, err := resourceproviders.ExtractResourceProviders(pages)
		if err != nil {
			t.Fatalf("extract resource providers: %v", err)
		}
		if len(rps) != 1 || rps[0].UUID != rp.UUID {
			t.Errorf("providers with CUSTOM_BAREMETAL_GOLD:1 = %+v, want only %s", rps, rp.UUID)
		}
		// Leave placement as a fresh plane has it: no providers.
		if err := resourceproviders.Delete(ctx, c, rp.UUID).ExtractErr(); err != nil {
			t.Errorf("delete resource provider: %v", err)
		}
	})

	step("Neutron", func(t *testing.T) {
		c := p.NetworkClient()
		net1, err := networks.Create(ctx, c, networks.CreateOpts{Name: "provisioning-" + randHex(3)}).Extract()
		if err != nil {
			t.Fatalf("create network: %v", err)
		}
		sub, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: net1.ID, CIDR: "10.20.0.0/24", IPVersion: 4}).Extract()
		if err != nil {
			t.Fatalf("create subnet: %v", err)
		}
		device := uuid()
		port, err := ports.Create(ctx, c, ports.CreateOpts{NetworkID: net1.ID, DeviceID: device, DeviceOwner: "compute:nova"}).Extract()
		if err != nil {
			t.Fatalf("create port: %v", err)
		}
		if len(port.FixedIPs) != 1 || port.FixedIPs[0].SubnetID != sub.ID {
			t.Fatalf("port fixed IPs = %+v, want one on subnet %s", port.FixedIPs, sub.ID)
		}
		_, cidr, _ := net.ParseCIDR(sub.CIDR)
		if ip := net.ParseIP(port.FixedIPs[0].IPAddress); ip == nil || !cidr.Contains(ip) {
			t.Errorf("port IP %q is not in %s", port.FixedIPs[0].IPAddress, sub.CIDR)
		}
		pages, err := ports.List(c, ports.ListOpts{DeviceID: device}).AllPages(ctx)
		if err != nil {
			t.Fatalf("list ports: %v", err)
		}
		byDevice, err := ports.ExtractPorts(pages)
		if err != nil {
			t.Fatalf("extract ports: %v", err)
		}
		if len(byDevice) != 1 || byDevice[0].ID != port.ID {
			t.Errorf("ports of device %s = %+v, want only %s", device, byDevice, port.ID)
		}
		t.Logf("port %s got %s", port.ID, port.FixedIPs[0].IPAddress)
	})

	step("ConductorPing", func(t *testing.T) {
		result := callConductorPing(ctx, t, p.AMQPURL, "1.21 GigaWatts")
		want := map[string]any{"service": "conductor", "arg": "1.21 GigaWatts"}
		if fmt.Sprint(result) != fmt.Sprint(want) {
			t.Errorf("ping result = %v, want %v", result, want)
		}
	})

	step("DiscoverNoHosts", func(t *testing.T) {
		out := p.Discover(t)
		if !strings.Contains(out, "cell1") {
			t.Errorf("discover_hosts output does not mention cell1:\n%s", out)
		}
	})
}

// callConductorPing makes the oslo RPC call nova-compute makes first at start-up:
// baseapi ping on topic conductor, answered on a reply queue of our own.
func callConductorPing(ctx context.Context, t *testing.T, url, arg string) map[string]any {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	replyQ := "reply_" + randHex(16)
	if _, err := ch.QueueDeclare(replyQ, false, false, false, false, amqp.Table{"x-expires": int32(1800000)}); err != nil {
		t.Fatalf("declare %s: %v", replyQ, err)
	}
	deliveries, err := ch.Consume(replyQ, "", true, true, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", replyQ, err)
	}
	msgID := randHex(16)
	inner := map[string]any{
		"method": "ping", "namespace": "baseapi", "version": "1.0",
		"args":     map[string]any{"arg": arg},
		"_msg_id":  msgID,
		"_reply_q": replyQ, "_timeout": nil, "_unique_id": randHex(16),
		"_context_is_admin": true, "_context_read_deleted": "no", "_context_roles": []string{},
		"_context_request_id": "req-" + uuid(), "_context_user_id": nil, "_context_project_id": nil,
		"_context_auth_token": nil, "_context_service_catalog": []any{}, "_context_show_deleted": false,
		"_context_timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000"),
	}
	innerJSON, err := json.Marshal(inner)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": string(innerJSON)})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	err = ch.PublishWithContext(ctx, "nova", "conductor", false, false, amqp.Publishing{
		ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp.Persistent,
		Expiration: "10000", Headers: amqp.Table{}, Body: body,
	})
	if err != nil {
		t.Fatalf("publish ping: %v", err)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				t.Fatalf("reply queue %s closed", replyQ)
			}
			var env struct {
				Version string `json:"oslo.version"`
				Message string `json:"oslo.message"`
			}
			if err := json.Unmarshal(d.Body, &env); err != nil || env.Version != "2.0" {
				t.Fatalf("reply is not an oslo 2.0 envelope (%v): %s", err, d.Body)
			}
			var reply struct {
				MsgID   string         `json:"_msg_id"`
				Result  map[string]any `json:"result"`
				Failure *string        `json:"failure"`
				Ending  bool           `json:"ending"`
			}
			if err := json.Unmarshal([]byte(env.Message), &reply); err != nil {
				t.Fatalf("decode reply %s: %v", env.Message, err)
			}
			if reply.MsgID != msgID {
				continue
			}
			if reply.Failure != nil {
				t.Fatalf("conductor answered ping with a failure: %s", *reply.Failure)
			}
			if !reply.Ending {
				continue // a call-monitor heartbeat
			}
			t.Logf("conductor answered ping in %s", time.Since(begin).Round(time.Millisecond))
			return reply.Result
		case <-timeout:
			t.Fatalf("no reply from nova-conductor to ping within 30s")
		case <-ctx.Done():
			t.Fatalf("waiting for the ping reply: %v", ctx.Err())
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func uuid() string {
	h := randHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
