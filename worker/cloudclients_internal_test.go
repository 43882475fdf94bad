package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"xcatbm/internal/cloud"
	"xcatbm/internal/testkit/testhttp"
	"xcatbm/messages"
	"xcatbm/worker/store"
)

// The Glance and Neutron clients against services that close every connection after
// the answer (testhttp): every request sent on a kept connection is dropped unread,
// and some answers are lost after the service acted. What the worker makes must be
// made once, and what it deletes must be gone.

// planeCloud writes a clouds.yaml whose cloud "plane" has image and network at url.
func planeCloud(t *testing.T, url string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clouds.yaml")
	body := fmt.Sprintf("clouds:\n  plane:\n    auth_type: admin_token\n    auth:\n      token: admin:admin\n    image_endpoint_override: %s\n    network_endpoint_override: %s\n", url, url)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeGlance keeps images in memory and answers the image API calls the worker
// makes.
type fakeGlance struct {
	mu     sync.Mutex
	images map[string]map[string]any
}

func (g *fakeGlance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	answer := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if v != nil {
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "v2" || parts[1] != "images" {
		answer(404, nil)
		return
	}
	var img map[string]any
	if len(parts) >= 3 {
		img = g.images[parts[2]]
		if img == nil {
			answer(404, map[string]string{"message": "No image found with ID " + parts[2]})
			return
		}
	}
	switch {
	case r.Method == "GET" && len(parts) == 2:
		var out []map[string]any
		for _, im := range g.images {
			if name := r.URL.Query().Get("name"); name == "" || im["name"] == name {
				out = append(out, im)
			}
		}
		answer(200, map[string]any{"images": out})
	case r.Method == "POST" && len(parts) == 2:
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		id, _ := in["id"].(string)
		if id == "" {
			id = fmt.Sprintf("glance-made-%d", len(g.images)+1)
		}
		if g.images[id] != nil {
			answer(409, map[string]string{"message": "Image with identifier " + id + " already exists!"})
			return
		}
		in["id"], in["status"] = id, "queued"
		g.images[id] = in
		answer(201, in)
	case r.Method == "GET" && len(parts) == 3:
		answer(200, img)
	case r.Method == "PUT" && len(parts) == 4 && parts[3] == "file":
		if img["status"] != "queued" {
			answer(409, map[string]string{"message": "Image status transition from active to saving is not allowed"})
			return
		}
		img["status"] = "active"
		answer(204, nil)
	case r.Method == "PATCH" && len(parts) == 3:
		var ops []map[string]any
		_ = json.NewDecoder(r.Body).Decode(&ops)
		for _, op := range ops {
			img[strings.TrimPrefix(op["path"].(string), "/")] = op["value"]
		}
		answer(200, img)
	default:
		answer(405, nil)
	}
}

func TestEnsureImageKeptConnectionsClosed(t *testing.T) {
	const name, osimage = "rhel94", "rhels9.4-x86_64-install-compute"
	for _, c := range []struct {
		name       string
		existing   map[string]any
		lose       func(r *http.Request, n int) bool
		wantStatus string
		wantMsg    string
		want       []string // the requests Glance ran, ids as ID
	}{
		{
			name: "create and upload", wantMsg: "created ",
			want: []string{"GET /v2/images?name=rhel94", "POST /v2/images", "PUT /v2/images/ID/file"},
		},
		{
			name: "create acted on, answer lost: found by its id", wantMsg: "created ",
			lose: func(r *http.Request, n int) bool { return r.Method == "POST" },
			want: []string{"GET /v2/images?name=rhel94", "POST /v2/images", "GET /v2/images/ID", "PUT /v2/images/ID/file"},
		},
		{
			name: "upload acted on, answer lost: resent, refused, image active", wantMsg: "created ",
			lose: func(r *http.Request, n int) bool { return r.Method == "PUT" && n == 1 },
			want: []string{"GET /v2/images?name=rhel94", "POST /v2/images", "PUT /v2/images/ID/file", "PUT /v2/images/ID/file", "GET /v2/images/ID"},
		},
		{
			name:     "update acted on, answer lost: resent",
			existing: map[string]any{"id": "ID", "name": name, "status": "active", "visibility": "private", "disk_format": "qcow2", "container_format": "bare"},
			lose:     func(r *http.Request, n int) bool { return r.Method == "PATCH" && n == 1 },
			wantMsg:  "updated ID: visibility public, xcat_image_name=" + osimage,
			want:     []string{"GET /v2/images?name=rhel94", "PATCH /v2/images/ID", "PATCH /v2/images/ID"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g := &fakeGlance{images: map[string]map[string]any{}}
			if c.existing != nil {
				g.images["ID"] = c.existing
			}
			srv := testhttp.Start(t, testhttp.Config{Handler: g, LoseAnswer: c.lose})
			cl, err := cloud.Open(context.Background(), cloud.Options{File: planeCloud(t, srv.URL), Name: "plane"})
			if err != nil {
				t.Fatal(err)
			}
			ic, err := cl.Image()
			if err != nil {
				t.Fatal(err)
			}
			status, msg, err := ensureImage(context.Background(), ic, messages.ImageRegistration{XCATName: osimage, Name: name})
			if err != nil || status != messages.ItemOK {
				t.Fatalf("ensureImage: %s %q %v\nrequests %v", status, msg, err, srv.Requests())
			}
			g.mu.Lock()
			var id string
			for k, im := range g.images {
				id = k
				if im["status"] != "active" || im["visibility"] != "public" || im[ImageProperty] != osimage || im["name"] != name {
					t.Errorf("image in glance: %v", im)
				}
			}
			n := len(g.images)
			g.mu.Unlock()
			if n != 1 {
				t.Fatalf("%d images in glance, want 1", n)
			}
			if !strings.HasPrefix(msg, strings.ReplaceAll(c.wantMsg, "ID", id)) {
				t.Errorf("message %q, want %q", msg, c.wantMsg)
			}
			var got []string
			for _, r := range srv.Handled() {
				got = append(got, strings.ReplaceAll(r, id, "ID"))
			}
			if !slices.Equal(got, c.want) || srv.Dropped() == 0 {
				t.Errorf("glance ran %v (dropped %d), want %v\nrequests %v", got, srv.Dropped(), c.want, srv.Requests())
			}
		})
	}
}

// fakeNeutron keeps ports in memory and answers the port and subnet calls the worker
// makes.
type fakeNeutron struct {
	mu    sync.Mutex
	ports map[string]map[string]any
	made  int
}

func (f *fakeNeutron) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	answer := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if v != nil {
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == "GET" && r.URL.Path == "/v2.0/ports":
		q := r.URL.Query()
		out := []map[string]any{}
		for _, p := range f.ports {
			if (q.Get("device_id") == "" || p["device_id"] == q.Get("device_id")) && (q.Get("network_id") == "" || p["network_id"] == q.Get("network_id")) &&
				(q.Get("name") == "" || p["name"] == q.Get("name")) {
				out = append(out, p)
			}
		}
		answer(200, map[string]any{"ports": out})
	case r.Method == "POST" && r.URL.Path == "/v2.0/ports":
		var in struct {
			Port map[string]any `json:"port"`
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		f.made++
		p := in.Port
		p["id"] = fmt.Sprintf("port-%d", f.made)
		p["fixed_ips"] = []map[string]string{{"subnet_id": "sub-1", "ip_address": fmt.Sprintf("10.9.0.%d", 10+f.made)}}
		f.ports[p["id"].(string)] = p
		answer(201, map[string]any{"port": p})
	case r.Method == "GET" && len(parts) == 3 && parts[1] == "subnets" && parts[2] == "sub-1":
		answer(200, map[string]any{"subnet": map[string]any{"id": "sub-1", "cidr": "10.9.0.0/24", "ip_version": 4}})
	case r.Method == "DELETE" && len(parts) == 3 && parts[1] == "ports":
		if f.ports[parts[2]] == nil {
			answer(404, map[string]any{"NeutronError": map[string]string{"message": "Port " + parts[2] + " could not be found."}})
			return
		}
		delete(f.ports, parts[2])
		answer(204, nil)
	default:
		answer(404, nil)
	}
}

func TestNeutronPortsKeptConnectionsClosed(t *testing.T) {
	for _, c := range []struct {
		name string
		lose func(r *http.Request, n int) bool
		want []string
	}{
		{name: "every kept connection closed", want: []string{
			"GET /v2.0/ports?device_id=INST&network_id=net-1", "POST /v2.0/ports", "GET /v2.0/subnets/sub-1",
			"GET /v2.0/ports?device_id=INST", "DELETE /v2.0/ports/port-1"}},
		{name: "create acted on, answer lost: found, not made twice", lose: func(r *http.Request, n int) bool { return r.Method == "POST" }, want: []string{
			"GET /v2.0/ports?device_id=INST&network_id=net-1", "POST /v2.0/ports", "GET /v2.0/ports?device_id=INST&name=xcatbm-INST&network_id=net-1",
			"GET /v2.0/subnets/sub-1", "GET /v2.0/ports?device_id=INST", "DELETE /v2.0/ports/port-1"}},
		{name: "delete acted on, answer lost: resent, 404 is gone", lose: func(r *http.Request, n int) bool { return r.Method == "DELETE" && n == 1 }, want: []string{
			"GET /v2.0/ports?device_id=INST&network_id=net-1", "POST /v2.0/ports", "GET /v2.0/subnets/sub-1",
			"GET /v2.0/ports?device_id=INST", "DELETE /v2.0/ports/port-1", "DELETE /v2.0/ports/port-1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeNeutron{ports: map[string]map[string]any{}}
			srv := testhttp.Start(t, testhttp.Config{Handler: f, LoseAnswer: c.lose})
			w := &Worker{cfg: Config{Cloud: "plane", CloudsFile: planeCloud(t, srv.URL), XCATParallel: 2}}
			inst := messages.NewUniqueID()
			ctx := context.Background()

			spawn := &run{job: &store.Job{Kind: string(KindSpawn)}, req: request{InstanceUUID: inst, NetworkID: "net-1"}}
			w.neutronAddresses(ctx, []*run{spawn})
			if spawn.out.err != nil || spawn.req.IP != "10.9.0.11" || spawn.req.Netmask != "255.255.255.0" || spawn.data.PortID != "port-1" {
				t.Fatalf("spawn: %v, req %+v, data %+v\nrequests %v", spawn.out.err, spawn.req, spawn.data, srv.Requests())
			}
			destroy := &run{job: &store.Job{Kind: string(KindDestroy)}, req: request{InstanceUUID: inst}, out: advanced("ip restored")}
			w.releasePorts(ctx, []*run{destroy})
			if destroy.out.err != nil {
				t.Fatalf("destroy: %v\nrequests %v", destroy.out.err, srv.Requests())
			}
			f.mu.Lock()
			made, left := f.made, len(f.ports)
			f.mu.Unlock()
			if made != 1 || left != 0 {
				t.Errorf("neutron made %d ports and has %d left, want 1 and 0", made, left)
			}
			var got []string
			for _, r := range srv.Handled() {
				got = append(got, strings.ReplaceAll(r, inst, "INST"))
			}
			if !slices.Equal(got, c.want) || srv.Dropped() == 0 {
				t.Errorf("neutron ran\n  %s\n(dropped %d), want\n  %s\nrequests %v", strings.Join(got, "\n  "), srv.Dropped(), strings.Join(c.want, "\n  "), srv.Requests())
			}
		})
	}
}
