package nova_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xcatbm/internal/testkit/testopenstack"
	"xcatbm/messages"
	"xcatbm/publisher"
	"xcatbm/worker/nova"
	"xcatbm/worker/store"
	"xcatbm/xcat/sim"
)

// TestOpenStackRegistration is the admin's path with the real services: register 20
// xCAT nodes (opsaddbmnode's job) and they become 20 schedulable nodes in nova and
// placement, each reported ok only once its provider and inventory exist (placement
// runs as deployed, behind uwsgi closing every connection after its answer); a
// second run changes nothing and writes nothing to placement; register an xCAT image (opsaddimage's job)
// into Glance, and a server boots from it onto one of the nodes.
func TestOpenStackRegistration(t *testing.T) {
	id := rnd()
	prefix := "rg" + id
	cl := sim.GenerateCluster(prefix, 20, "mn1")
	var nodes []string
	for _, n := range cl.Nodes {
		nodes = append(nodes, n.Name)
	}
	p := testopenstack.Start(t)
	clouds := filepath.Join(t.TempDir(), "clouds.yaml")
	if err := os.WriteFile(clouds, []byte(fmt.Sprintf("clouds:\n  plane:\n    auth_type: admin_token\n    auth:\n      token: %s\n    image_endpoint_override: %s\n",
		testopenstack.Token, p.GlanceURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startPlaneWith(t, planeOpts{id: id, nodes: nodes, cluster: cl, clouds: clouds})

	pub, err := publisher.Dial(publisher.Config{URLs: []string{p.AMQPURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	run := func(method string, args messages.JobArgs) *messages.JobPayload {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		job, err := pub.Submit(ctx, e.host, method, args, true)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		end, err := job.Follow(ctx, nil)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return end
	}
	noderange := prefix + "[01-20]"
	first := run("register_nodes", &messages.RegisterNodesArgs{NodeRange: noderange, ComputeHost: e.host, ResourceClass: e.rc})
	if first.Done != 20 || countStatus(first, messages.ItemOK) != 20 {
		t.Fatalf("first registration: %+v", first)
	}
	for _, r := range first.Results {
		if !strings.Contains(r.Message, "; ready: compute node and resource provider ") {
			t.Errorf("first registration of %s: %q", r.Name, r.Message)
		}
	}

	// Reported ok means it is there: 20 resource providers with one unit of the class
	// each, at once, and every node's state recorded ready.
	rc := nova.ResourceClass(e.rc)
	rps := e.http("GET", p.PlacementURL+"/resource_providers?resources="+rc+":1", "", nil, 200)
	if list, _ := rps["resource_providers"].([]any); len(list) != 20 {
		t.Fatalf("%d resource providers offer %s right after the job, want 20", len(list), rc)
	}
	states, err := e.st.NodeStatuses(context.Background(), e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if st.Registration.State != store.RegistrationReady {
			t.Errorf("%s registration %+v", st.Node.Name, st.Registration)
		}
	}
	t.Logf("discover: %s", strings.TrimSpace(p.Discover(t)))
	hv := e.nova("GET", "/os-hypervisors?hypervisor_hostname_pattern="+prefix, nil, 200)
	if n := len(hv["hypervisors"].([]any)); n != 20 {
		t.Errorf("nova lists %d hypervisors named %s*, want 20", n, prefix)
	}

	// Each new node's provider costs three writes (create, inventory, traits), the
	// resource class one for the whole job; resends on closed connections add some.
	if w := e.placement.Writes(); w < 3*20+1 {
		t.Errorf("%d placement writes for 20 new nodes, want at least %d", w, 3*20+1)
	}
	before := e.placement.Writes()
	second := run("register_nodes", &messages.RegisterNodesArgs{NodeRange: noderange, ComputeHost: e.host, ResourceClass: e.rc})
	for _, r := range second.Results {
		if r.Status != messages.ItemOK || !strings.Contains(r.Message, "unchanged") {
			t.Errorf("second registration of %s: %s %q", r.Name, r.Status, r.Message)
		}
	}
	if w := e.placement.Writes() - before; w != 0 {
		t.Errorf("the second registration wrote to placement %d times, want none: nothing changed", w)
	}

	// The image, from xCAT's osimage definitions into Glance, then a server from it.
	const osimage = "rhels7.5-x86_64-install-compute"
	imgName := "img-" + id
	res := run("register_images", &messages.RegisterImagesArgs{Cloud: "plane", Images: []messages.ImageRegistration{{XCATName: osimage, Name: imgName}}})
	if countStatus(res, messages.ItemOK) != 1 {
		t.Fatalf("image registration: %+v", res)
	}
	imgs := e.http("GET", p.GlanceURL+"/v2/images?name="+imgName, "", nil, 200)
	list := imgs["images"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["xcat_image_name"] != osimage {
		t.Fatalf("glance images named %s: %v", imgName, list)
	}
	e.image = list[0].(map[string]any)["id"].(string)
	f := e.nova("POST", "/flavors", map[string]any{"flavor": map[string]any{"name": "rg-" + id, "ram": 1, "vcpus": 1, "disk": 0}}, 200)
	e.flavor = f["flavor"].(map[string]any)["id"].(string)
	e.nova("POST", "/flavors/"+e.flavor+"/os-extra_specs", map[string]any{"extra_specs": map[string]string{
		"resources:" + rc: "1", "resources:VCPU": "0", "resources:MEMORY_MB": "0", "resources:DISK_GB": "0"}}, 200)
	srv := e.createServer("from-registered-image")
	s := e.waitServer(srv, "ACTIVE", 3*time.Minute)
	node, _ := s["OS-EXT-SRV-ATTR:hypervisor_hostname"].(string)
	if !strings.HasPrefix(node, prefix) {
		t.Errorf("server landed on %q, want one of the registered nodes", node)
	}
	if st, ok := e.sim.Node(node); !ok || st.Status != "booted" {
		t.Errorf("simulator node %s: %+v", node, st)
	}
	e.nova("DELETE", "/servers/"+srv, nil, 204)
	e.waitServer(srv, "gone", 2*time.Minute)
}

func countStatus(p *messages.JobPayload, status string) int {
	n := 0
	for _, r := range p.Results {
		if r.Status == status {
			n++
		}
	}
	return n
}
