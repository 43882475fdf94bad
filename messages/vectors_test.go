package messages

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// vector is one captured message: exchange, routing keys, AMQP properties, body.
type vector struct {
	Exchange    string         `json:"exchange"`
	RoutingKeys []string       `json:"routing_keys"`
	Properties  map[string]any `json:"properties"`
	Body        string         `json:"body"`
}

func loadVector(t testing.TB, name string) vector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var v vector
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func vectorFiles(t testing.TB, prefix string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", prefix+"*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors %s*: %v", prefix, err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	return files
}

// innerOf returns the decoded inner message of an envelope body as generic JSON.
func innerOf(t testing.TB, body []byte) map[string]any {
	t.Helper()
	var outer map[string]any
	if err := json.Unmarshal(body, &outer); err != nil {
		t.Fatalf("outer: %v", err)
	}
	if outer["oslo.version"] != "2.0" {
		t.Fatalf("oslo.version = %v", outer["oslo.version"])
	}
	s, ok := outer["oslo.message"].(string)
	if !ok {
		t.Fatalf("oslo.message is %T", outer["oslo.message"])
	}
	var inner map[string]any
	if err := json.Unmarshal([]byte(s), &inner); err != nil {
		t.Fatalf("inner: %v", err)
	}
	return inner
}

// propertiesMap renders p like the vectors' properties records.
func propertiesMap(p Properties) map[string]any {
	m := map[string]any{
		"content_type": p.ContentType, "content_encoding": p.ContentEncoding,
		"delivery_mode": float64(p.DeliveryMode), "priority": float64(p.Priority),
		"headers": map[string]any{},
	}
	for k, v := range p.Headers {
		m["headers"].(map[string]any)[k] = v
	}
	if p.Expiration != "" {
		m["expiration"] = p.Expiration
	}
	return m
}

func TestRequestVectorsRoundTrip(t *testing.T) {
	files := append(vectorFiles(t, "cast-"), vectorFiles(t, "call-")...)
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			v := loadVector(t, name)
			req, err := DecodeRequest([]byte(v.Body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got, want := req.IsCall(), strings.HasPrefix(name, "call-"); got != want {
				t.Errorf("IsCall = %v, want %v", got, want)
			}
			if req.Context.AuthToken().Reveal() != "gAAAAAB-fake-token" {
				t.Errorf("auth token not kept")
			}
			out, err := EncodeRequest(req)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if got, want := innerOf(t, out), innerOf(t, []byte(v.Body)); !reflect.DeepEqual(got, want) {
				t.Errorf("re-encoded request differs:\n got %v\nwant %v", got, want)
			}
			var props Properties
			if req.IsCall() {
				ms, _ := time.ParseDuration(v.Properties["expiration"].(string) + "ms")
				props = CallProperties(ms)
			} else {
				props = CastProperties()
			}
			if got := propertiesMap(props); !reflect.DeepEqual(got, v.Properties) {
				t.Errorf("properties = %v, want %v", got, v.Properties)
			}
			if _, err := decodeTypedArgs(req); err != nil {
				t.Errorf("typed args: %v", err)
			}
		})
	}
}

// decodeTypedArgs runs the typed argument decoder of req's method and returns the
// instance it names.
func decodeTypedArgs(req *Request) (*Instance, error) {
	switch req.Method {
	case MethodBuildAndRunInstance:
		a, err := req.BuildAndRunInstance()
		if err != nil {
			return nil, err
		}
		return a.Instance, nil
	case MethodTerminateInstance:
		a, err := req.TerminateInstance()
		if err != nil {
			return nil, err
		}
		return a.Instance, nil
	case MethodStartInstance:
		a, err := req.StartInstance()
		if err != nil {
			return nil, err
		}
		return a.Instance, nil
	case MethodStopInstance:
		a, err := req.StopInstance()
		if err != nil {
			return nil, err
		}
		return a.Instance, nil
	case MethodRebuildInstance:
		a, err := req.RebuildInstance()
		if err != nil {
			return nil, err
		}
		return a.Instance, nil
	case MethodRescueInstance:
		a, err := req.RescueInstance()
		if err != nil {
			return nil, err
		}
		return a.Instance, nil
	case MethodUnrescueInstance:
		a, err := req.UnrescueInstance()
		if err != nil {
			return nil, err
		}
		return a.Instance, nil
	case MethodRebootInstance:
		a, err := req.RebootInstance()
		if err != nil {
			return nil, err
		}
		return a.Instance, nil
	case MethodGetConsoleOutput:
		a, err := req.GetConsoleOutput()
		if err != nil {
			return nil, err
		}
		return a.Instance, nil
	}
	return nil, nil
}

func TestBuildVectorTypedArgs(t *testing.T) {
	req, err := DecodeRequest([]byte(loadVector(t, "cast-build_and_run_instance.json").Body))
	if err != nil {
		t.Fatal(err)
	}
	a, err := req.BuildAndRunInstance()
	if err != nil {
		t.Fatal(err)
	}
	in := a.Instance
	checks := []struct{ name, got, want string }{
		{"uuid", in.UUID, "0b7a9b1c-3f3e-4c55-9d3a-6c1f5a2e7d10"},
		{"host", in.Host, "xcat-mn1"},
		{"node", in.Node, "n01"},
		{"vm_state", in.VMState, "building"},
		{"task_state", in.TaskState, "scheduling"},
		{"power_state", in.PowerState.String(), "nostate"},
		{"flavor", in.Flavor.FlavorID, "bm-general"},
		{"extra_spec", in.Flavor.ExtraSpecs["resources:CUSTOM_BAREMETAL_GENERAL"], "1"},
		{"sysmeta", in.SystemMetadata["image_disk_format"], "raw"},
		{"image", a.Image.ID, "5e0f1b6a-7f1c-4a53-9f6e-2b9d3c1e0a11"},
		{"xcat image", a.Image.XCATImageName(), "rhels9.4-x86_64-install-compute"},
		{"arg node", a.Node, "n01"},
		{"port", a.RequestedNetworks[0].PortID, "2f4b7a3e-1111-4d2c-9e55-0a1b2c3d4e5f"},
		{"created", FormatNovaTime(*in.CreatedAt), "2026-11-25T02:37:05Z"},
		{"request id", req.Context.RequestID(), "req-a86ac1cd-9bac-4439-8471-61c5a511c5e4"},
		{"user", req.Context.UserName(), "admin"},
		{"roles", strings.Join(req.Context.Roles(), ","), "admin,member,reader"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !a.AdminPassword.IsZero() || len(a.RequestedNetworks) != 1 || a.Image.Size != 2147483648 || in.MemoryMB != 65536 || !req.Context.IsAdmin() {
		t.Errorf("unexpected args: %+v", a)
	}
	if in.Object.Changes == nil || in.Object.Changes[0] != "task_state" {
		t.Errorf("changes = %v", in.Object.Changes)
	}
	ts, err := req.Context.Timestamp()
	if err != nil || ts.Format(time.RFC3339Nano) != "2026-11-25T02:37:05.027101Z" {
		t.Errorf("timestamp = %v, %v", ts, err)
	}
}

func readJSONL(t testing.TB, name string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "nova-live", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLiveNovaCasts decodes the casts a real nova sent to a compute host.
func TestLiveNovaCasts(t *testing.T) {
	recs := readJSONL(t, "to-compute.jsonl")
	var methods []string
	for _, rec := range recs {
		body, err := EncodeEnvelope(rec["msg"])
		if err != nil {
			t.Fatal(err)
		}
		req, err := DecodeRequest(body)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		methods = append(methods, req.Method)
		in, err := decodeTypedArgs(req)
		if err != nil {
			t.Fatalf("%s: %v", req.Method, err)
		}
		if in == nil || in.UUID != "43a788cc-c700-4ccb-a66e-804017dc30de" {
			t.Errorf("%s: instance %+v", req.Method, in)
		}
		if err := CheckComputeVersion(req.Version); err != nil {
			t.Errorf("%s: %v", req.Method, err)
		}
		out, err := EncodeRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := innerOf(t, out), rec["msg"]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: re-encoded differs", req.Method)
		}
	}
	slices.Sort(methods)
	if want := []string{"build_and_run_instance", "reboot_instance", "start_instance", "stop_instance", "terminate_instance"}; !slices.Equal(methods, want) {
		t.Errorf("methods = %v", methods)
	}
}

// TestLiveTenantCasts decodes the casts a real nova 26 sent when driven by the real
// openstack CLI for a tenant's server: build with keypair and user data, rebuild,
// rescue, unrescue, terminate; each re-encodes as received.
func TestLiveTenantCasts(t *testing.T) {
	recs := readJSONL(t, "to-compute-tenant.jsonl")
	seen := map[string]int{}
	for _, rec := range recs {
		body, err := EncodeEnvelope(rec["msg"])
		if err != nil {
			t.Fatal(err)
		}
		req, err := DecodeRequest(body)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		seen[req.Method]++
		if _, err := decodeTypedArgs(req); err != nil {
			t.Fatalf("%s: %v", req.Method, err)
		}
		if err := CheckComputeVersion(req.Version); err != nil {
			t.Errorf("%s: %v", req.Method, err)
		}
		switch req.Method {
		case MethodRebuildInstance:
			a, _ := req.RebuildInstance()
			if a.ImageRef == "" || a.OrigImageRef == "" || a.NewPassword.IsZero() || a.Recreate || a.PreserveEphemeral {
				t.Errorf("rebuild args: %+v", a)
			}
			if a.Instance.SystemMetadata["image_base_image_ref"] == "" || a.Instance.KeyName == "" {
				t.Errorf("rebuild instance lacks the image's system metadata or the key: %+v", a.Instance.SystemMetadata)
			}
		case MethodRescueInstance:
			a, _ := req.RescueInstance()
			if a.RescuePassword.IsZero() || a.RescueImageRef != "" || !a.CleanShutdown {
				t.Errorf("rescue args: %+v", a)
			}
		}
		out, err := EncodeRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := innerOf(t, out), rec["msg"]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: re-encoded differs", req.Method)
		}
	}
	want := map[string]int{MethodBuildAndRunInstance: 3, MethodRebuildInstance: 2, MethodRescueInstance: 2, MethodUnrescueInstance: 2, MethodTerminateInstance: 3}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("methods seen %v, want %v", seen, want)
	}
}

func TestReplyVectors(t *testing.T) {
	for _, name := range vectorFiles(t, "reply-") {
		t.Run(name, func(t *testing.T) {
			v := loadVector(t, name)
			r, err := DecodeReply([]byte(v.Body))
			if err != nil {
				t.Fatal(err)
			}
			if !r.Ending || r.MsgID == "" || r.UniqueID == "" {
				t.Errorf("reply = %+v", r)
			}
			if got := propertiesMap(ReplyProperties()); !reflect.DeepEqual(got, v.Properties) {
				t.Errorf("properties = %v, want %v", got, v.Properties)
			}
			var ours []byte
			if r.Failure != nil {
				ours, err = EncodeFailureReply(r.MsgID, r.Failure)
			} else {
				var result any
				if err := json.Unmarshal(r.Result, &result); err != nil {
					t.Fatal(err)
				}
				ours, err = EncodeReply(r.MsgID, result)
			}
			if err != nil {
				t.Fatal(err)
			}
			got, want := innerOf(t, ours), innerOf(t, []byte(v.Body))
			delete(got, "_unique_id")
			delete(want, "_unique_id")
			if r.Failure != nil {
				var gf, wf map[string]any
				_ = json.Unmarshal([]byte(got["failure"].(string)), &gf)
				_ = json.Unmarshal([]byte(want["failure"].(string)), &wf)
				if !reflect.DeepEqual(gf, wf) {
					t.Errorf("failure = %v, want %v", gf, wf)
				}
				got["failure"], want["failure"] = nil, nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("reply = %v, want %v", got, want)
			}
		})
	}
	r, _ := DecodeReply([]byte(loadVector(t, "reply-failure.json").Body))
	if r.Failure.Class != "TypeError" || r.Failure.Module != "builtins" || len(r.Failure.Traceback) != 5 || r.Failure.Args[0] != r.Failure.Message {
		t.Errorf("failure = %#v", *r.Failure)
	}
	r, _ = DecodeReply([]byte(loadVector(t, "reply-result.json").Body))
	var s string
	if err := json.Unmarshal(r.Result, &s); err != nil || !strings.HasPrefix(s, "xCAT console for ") {
		t.Errorf("result = %s", r.Result)
	}
}

func TestNotificationVectorsDecode(t *testing.T) {
	for _, name := range vectorFiles(t, "notification-") {
		v := loadVector(t, name)
		n, err := DecodeNotification([]byte(v.Body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n.Topic = strings.TrimSuffix(v.RoutingKeys[0], ".info")
		if n.RoutingKey() != v.RoutingKeys[0] {
			t.Errorf("%s: routing key %s, want %s", name, n.RoutingKey(), v.RoutingKeys[0])
		}
		if _, ok := n.Context.Get("auth_token"); ok {
			t.Errorf("%s: captured notification has auth_token", name)
		}
		if got := propertiesMap(NotificationProperties()); !reflect.DeepEqual(got, v.Properties) {
			t.Errorf("%s: properties = %v, want %v", name, got, v.Properties)
		}
		out, err := n.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := innerOf(t, out), innerOf(t, []byte(v.Body)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: re-encoded differs:\n got %v\nwant %v", name, got, want)
		}
	}
}
