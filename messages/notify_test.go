package messages

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// kind names a JSON value's type; null is compatible with every kind (nullable
// fields).
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// compareShape checks ours against ref: every key of ref is in ours (and, when
// exact, no other key), with the same JSON kind, recursively into objects (a
// NovaObject primitive's data) and into the first element of lists on both sides.
func compareShape(t *testing.T, path string, ours, ref any, exact bool) {
	t.Helper()
	ko, kr := kind(ours), kind(ref)
	if ko == "null" || kr == "null" {
		return
	}
	if ko != kr {
		t.Errorf("%s: kind %s, reference has %s (%v)", path, ko, kr, ref)
		return
	}
	switch r := ref.(type) {
	case map[string]any:
		o := ours.(map[string]any)
		for k, rv := range r {
			ov, ok := o[k]
			if !ok {
				t.Errorf("%s: key %q missing", path, k)
				continue
			}
			if k == "nova_object.version" {
				continue
			}
			if freeForm[k] {
				if kind(ov) != kind(rv) && kind(ov) != "null" && kind(rv) != "null" {
					t.Errorf("%s.%s: kind %s, reference has %s", path, k, kind(ov), kind(rv))
				}
				continue
			}
			compareShape(t, path+"."+k, ov, rv, exact)
		}
		if exact {
			for k := range o {
				if _, ok := r[k]; !ok {
					t.Errorf("%s: extra key %q", path, k)
				}
			}
		}
	case []any:
		o := ours.([]any)
		if len(o) > 0 && len(r) > 0 {
			compareShape(t, path+"[0]", o[0], r[0], exact)
		}
	}
}

// freeForm are dict fields whose keys are data, not schema.
var freeForm = map[string]bool{"extra_specs": true, "image_meta": true, "metadata": true, "meta": true}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// networkInfo is a one-VIF network_info as nova stores it in the info cache.
const networkInfo = `[{"id": "ce531f90-199f-48c0-816c-13e38010b442", "address": "fa:16:3e:4c:2c:30",
 "devname": "tapce531f90-19", "type": "ovs", "active": true, "meta": {},
 "network": {"id": "net-1", "label": "private-network", "bridge": "br-int", "meta": {},
  "subnets": [{"cidr": "192.168.1.0/24", "version": 4, "dns": [],
   "gateway": {"address": "192.168.1.1", "type": "gateway", "version": 4, "meta": {}},
   "ips": [{"address": "192.168.1.3", "type": "fixed", "version": 4, "meta": {}, "floating_ips": []}]}]}}]`

// buildInstance decodes the build vector's instance, with network_info set to
// networkInfo when withNet.
func buildInstance(t *testing.T, withNet bool) (*Request, *Instance) {
	t.Helper()
	req, err := DecodeRequest([]byte(loadVector(t, "cast-build_and_run_instance.json").Body))
	if err != nil {
		t.Fatal(err)
	}
	a, err := req.BuildAndRunInstance()
	if err != nil {
		t.Fatal(err)
	}
	if !withNet {
		return req, a.Instance
	}
	o := a.Instance.Object.Clone()
	ic, err := o.Child("info_cache")
	if err != nil {
		t.Fatal(err)
	}
	if err := ic.Set("network_info", networkInfo); err != nil {
		t.Fatal(err)
	}
	if err := o.Set("info_cache", ic); err != nil {
		t.Fatal(err)
	}
	in, err := InstanceFromObject(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.NetworkInfo) != 1 || in.NetworkInfo[0].Network.Subnets[0].IPs[0].Address != "192.168.1.3" {
		t.Fatalf("network info = %+v", in.NetworkInfo)
	}
	return req, in
}

// liveNotifications indexes nova-compute's notifications in the live capture by
// event type.
func liveNotifications(t *testing.T) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, rec := range readJSONL(t, "from-nova-compute.jsonl") {
		if rec["kind"] != "notify" {
			continue
		}
		msg := rec["msg"].(map[string]any)
		out[msg["event_type"].(string)] = msg
	}
	return out
}

var notifyEvents = []struct {
	action, phase string
	vm            string
	power         PowerState
}{
	{"create", "start", "building", NoState},
	{"create", "end", "active", Running},
	{"create", "error", "error", NoState},
	{"delete", "start", "active", Running},
	{"delete", "end", "deleted", NoState},
	{"power_on", "start", "stopped", Shutdown},
	{"power_on", "end", "active", Running},
	{"power_off", "start", "active", Running},
	{"power_off", "end", "stopped", Shutdown},
	{"reboot", "start", "active", Running},
	{"reboot", "end", "active", Running},
	{"reboot", "error", "error", Running},
	{"shutdown", "start", "active", Running},
	{"shutdown", "end", "active", Running},
}

func TestInstanceNotificationShapes(t *testing.T) {
	live := liveNotifications(t)
	at := time.Date(2026, 11, 25, 2, 37, 8, 711531000, time.UTC)
	for _, ev := range notifyEvents {
		t.Run(ev.action+"."+ev.phase, func(t *testing.T) {
			req, in := buildInstance(t, true)
			input := NotifyInput{
				Instance: in, Host: "xcat-mn1", Action: ev.action, Phase: ev.phase,
				VMState: ev.vm, PowerState: ev.power, Time: at, Context: req.Context,
				ImageName: "rhels9.4", ImageBaseURL: "http://glance:9292/",
			}
			if ev.phase == "error" {
				input.Fault = &Fault{Exception: "BuildAbortException", Message: "nodeset failed", FunctionName: "build", ModuleName: "xcatbm.worker", Traceback: "tb"}
			}
			vn, ln, err := NewInstanceNotifications(input)
			if err != nil {
				t.Fatal(err)
			}
			wantPrio := "INFO"
			if ev.phase == "error" {
				wantPrio = "ERROR"
			}
			if vn.RoutingKey() != "versioned_notifications."+strings.ToLower(wantPrio) || ln.RoutingKey() != "notifications."+strings.ToLower(wantPrio) {
				t.Errorf("routing keys %s %s", vn.RoutingKey(), ln.RoutingKey())
			}
			for _, n := range []*Notification{vn, ln} {
				body, err := n.Encode()
				if err != nil {
					t.Fatal(err)
				}
				msg := innerOf(t, body)
				legacy := n == ln
				if msg["priority"] != wantPrio || msg["timestamp"] != "2026-11-25 02:37:08.711531" {
					t.Errorf("priority %v timestamp %v", msg["priority"], msg["timestamp"])
				}
				// Envelope and top-level keys: as the real notifier sent them.
				captured := "notification-versioned-instance." + ev.action + "." + ev.phase + ".json"
				if legacy {
					captured = "notification-legacy-compute.instance." + ev.action + "." + ev.phase + ".json"
				}
				payload := msg["payload"].(map[string]any)
				if _, err := os.Stat(filepath.Join("testdata", captured)); err == nil {
					ref := innerOf(t, []byte(loadVector(t, captured).Body))
					if !slices.Equal(keysOf(msg), keysOf(ref)) {
						t.Errorf("top-level keys\n got %v\nwant %v", keysOf(msg), keysOf(ref))
					}
					for k, v := range ref {
						if k != "payload" && kind(msg[k]) != kind(v) {
							t.Errorf("%s: %s vs captured %s", k, kind(msg[k]), kind(v))
						}
					}
					if msg["publisher_id"] != ref["publisher_id"] || msg["event_type"] != ref["event_type"] {
						t.Errorf("publisher/event %v %v, want %v %v", msg["publisher_id"], msg["event_type"], ref["publisher_id"], ref["event_type"])
					}
					refPayload := ref["payload"].(map[string]any)
					if legacy {
						delete(refPayload, "power_state") // the capture's client added it; nova does not send it
						compareShape(t, "payload", payload, refPayload, false)
					} else {
						compareShape(t, "payload", payload, refPayload, false)
						// The capture's test client sent create events as
						// InstanceActionPayload; nova sends InstanceCreatePayload
						// (see the live capture), and so does xcatbm.
						if ev.action == "create" {
							refPayload["nova_object.name"], refPayload["nova_object.version"] = "InstanceCreatePayload", InstanceCreatePayloadVersion
						}
						if refPayload["nova_object.name"] != payload["nova_object.name"] || refPayload["nova_object.version"] != payload["nova_object.version"] {
							t.Errorf("payload version %v, captured %v", payload["nova_object.version"], refPayload["nova_object.version"])
						}
					}
				}
				// Payload: exactly the keys real nova sends.
				liveEvent := "instance." + ev.action + "." + ev.phase
				if legacy {
					liveEvent = "compute." + liveEvent
				}
				if ref, ok := live[liveEvent]; ok {
					refPayload := ref["payload"].(map[string]any)
					if !legacy {
						// nova 26 sent InstanceActionPayload 1.8 / InstanceCreatePayload
						// 1.12; 1.9 / 1.13 add `shares`.
						data := refPayload["nova_object.data"].(map[string]any)
						data["shares"] = []any{}
					}
					compareShape(t, "payload", payload, refPayload, true)
				}
			}
		})
	}
}

// TestNotificationMatchesNovaSamples compares the versioned payloads with nova's
// documented samples (an older payload version: every sample key must be ours, with
// the same kind, IpPayload and FlavorPayload included).
func TestNotificationMatchesNovaSamples(t *testing.T) {
	for _, sample := range []struct {
		file   string
		action string
		phase  string
		vm     string
		power  PowerState
	}{
		{"instance-create-end.json", "create", "end", "active", Running},
		{"instance-create-error.json", "create", "error", "building", NoState},
		{"instance-power_off-end.json", "power_off", "end", "stopped", Shutdown},
	} {
		t.Run(sample.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "nova-samples", sample.file))
			if err != nil {
				t.Fatal(err)
			}
			var ref map[string]any
			if err := json.Unmarshal(data, &ref); err != nil {
				t.Fatal(err)
			}
			req, in := buildInstance(t, true)
			input := NotifyInput{
				Instance: in, Host: "compute", Action: sample.action, Phase: sample.phase,
				VMState: sample.vm, PowerState: sample.power, Time: time.Now(), Context: req.Context,
			}
			if sample.phase == "error" {
				input.Fault = &Fault{Exception: "FlavorDiskTooSmall", Message: "too small", FunctionName: "_build_resources", ModuleName: "xcatbm.worker"}
			}
			vn, _, err := NewInstanceNotifications(input)
			if err != nil {
				t.Fatal(err)
			}
			body, err := vn.Encode()
			if err != nil {
				t.Fatal(err)
			}
			msg := innerOf(t, body)
			for _, k := range []string{"event_type", "priority", "publisher_id"} {
				if msg[k] != ref[k] {
					t.Errorf("%s = %v, sample %v", k, msg[k], ref[k])
				}
			}
			payload := msg["payload"].(map[string]any)
			refPayload := ref["payload"].(map[string]any)
			compareShape(t, "payload", payload, refPayload, false)
			d := payload["nova_object.data"].(map[string]any)
			if d["state"] != refPayload["nova_object.data"].(map[string]any)["state"] ||
				d["power_state"] != refPayload["nova_object.data"].(map[string]any)["power_state"] {
				t.Errorf("state %v/%v", d["state"], d["power_state"])
			}
			ips := d["ip_addresses"].([]any)
			if sample.phase != "error" {
				if len(ips) != 1 {
					t.Fatalf("ip_addresses = %v", ips)
				}
				refIP := refPayload["nova_object.data"].(map[string]any)["ip_addresses"].([]any)[0]
				compareShape(t, "ip", ips[0], refIP, true)
			}
			if sample.phase == "error" {
				fault := d["fault"].(map[string]any)
				fd := fault["nova_object.data"].(map[string]any)
				if !slices.Equal(keysOf(fd), []string{"exception", "exception_message", "function_name", "module_name", "traceback"}) {
					t.Errorf("fault keys %v", keysOf(fd))
				}
			}
		})
	}
}

func TestNotificationValues(t *testing.T) {
	req, in := buildInstance(t, true)
	at := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	vn, ln, err := NewInstanceNotifications(NotifyInput{
		Instance: in, Host: "xcat-mn1", Action: "create", Phase: "end", VMState: "active",
		PowerState: Running, Time: at, Context: req.Context, ImageBaseURL: "http://glance:9292",
	})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := vn.Encode()
	msg := innerOf(t, body)
	d := msg["payload"].(map[string]any)["nova_object.data"].(map[string]any)
	want := map[string]any{
		"uuid": in.UUID, "state": "active", "power_state": "running", "task_state": nil,
		"launched_at": "2026-11-25T03:00:00Z", "host": "xcat-mn1", "node": "n01",
		"instance_name": "instance-0000002a", "request_id": "req-a86ac1cd-9bac-4439-8471-61c5a511c5e4",
		"tenant_id": "6f70656e737461636b20342065766572", "image_uuid": "5e0f1b6a-7f1c-4a53-9f6e-2b9d3c1e0a11",
		"auto_disk_config": "MANUAL", "timestamp": nil,
	}
	delete(want, "timestamp")
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	if _, ok := msg["_context_auth_token"]; ok {
		t.Error("auth_token in a notification")
	}
	if msg["timestamp"] != "2026-11-25 03:00:00" {
		t.Errorf("timestamp %v", msg["timestamp"])
	}
	body, _ = ln.Encode()
	p := innerOf(t, body)["payload"].(map[string]any)
	for k, v := range map[string]any{
		"instance_id": in.UUID, "image_ref_url": "http://glance:9292/images/5e0f1b6a-7f1c-4a53-9f6e-2b9d3c1e0a11",
		"created_at": "2026-11-25 02:37:05+00:00", "launched_at": "2026-11-25T03:00:00.000000",
		"disk_gb": float64(100), "message": "Success", "instance_type": "baremetal.general",
		"deleted_at": "", "progress": "",
	} {
		if p[k] != v {
			t.Errorf("legacy %s = %v, want %v", k, p[k], v)
		}
	}
	if ips := p["fixed_ips"].([]any); len(ips) != 1 || ips[0].(map[string]any)["vif_mac"] != "fa:16:3e:4c:2c:30" {
		t.Errorf("fixed_ips = %v", p["fixed_ips"])
	}
	if p["image_meta"].(map[string]any)["disk_format"] != "raw" {
		t.Errorf("image_meta = %v", p["image_meta"])
	}
}

func TestNotifyInputValidation(t *testing.T) {
	req, in := buildInstance(t, false)
	base := NotifyInput{Instance: in, Host: "h", Action: "create", Phase: "end", VMState: "active", PowerState: Running, Time: time.Now(), Context: req.Context}
	for _, c := range []struct {
		field string
		mod   func(*NotifyInput)
	}{
		{"Instance", func(n *NotifyInput) { n.Instance = nil }},
		{"Host", func(n *NotifyInput) { n.Host = "" }},
		{"VMState", func(n *NotifyInput) { n.VMState = "" }},
		{"PowerState", func(n *NotifyInput) { n.PowerState = 5 }},
		{"Time", func(n *NotifyInput) { n.Time = time.Time{} }},
		{"Action", func(n *NotifyInput) { n.Action = "shelve" }},
		{"Phase", func(n *NotifyInput) { n.Action, n.Phase = "delete", "error" }},
		{"Fault", func(n *NotifyInput) { n.Phase = "error" }},
		{"Fault", func(n *NotifyInput) { n.Fault = &Fault{} }},
	} {
		in := base
		c.mod(&in)
		_, _, err := NewInstanceNotifications(in)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: err = %v", c.field, err)
		}
	}
}

// TestLifecyclePayloads: rebuild and rescue use nova's own payload classes, and the
// legacy payloads carry what nova-compute adds for each event.
func TestLifecyclePayloads(t *testing.T) {
	req, in := buildInstance(t, true)
	cases := []struct {
		action, phase, payload, version string
		legacyHas                       []string
		legacyHasNot                    []string
	}{
		{"rebuild", "start", "InstanceActionRebuildPayload", InstanceActionRebuildPayloadVersion, []string{"image_name"}, []string{"fixed_ips"}},
		{"rebuild", "end", "InstanceActionRebuildPayload", InstanceActionRebuildPayloadVersion, []string{"image_name", "fixed_ips"}, nil},
		{"rebuild", "error", "InstanceActionRebuildPayload", InstanceActionRebuildPayloadVersion, []string{"image_name", "exception"}, nil},
		{"rescue", "start", "InstanceActionRescuePayload", InstanceActionRescuePayloadVersion, []string{"rescue_image_name", "fixed_ips"}, nil},
		{"rescue", "end", "InstanceActionRescuePayload", InstanceActionRescuePayloadVersion, []string{"rescue_image_name", "fixed_ips"}, nil},
		{"unrescue", "start", "InstanceActionPayload", InstanceActionPayloadVersion, []string{"fixed_ips"}, []string{"rescue_image_name"}},
		{"unrescue", "end", "InstanceActionPayload", InstanceActionPayloadVersion, []string{"fixed_ips"}, []string{"image_name"}},
	}
	for _, c := range cases {
		n := NotifyInput{Instance: in, Host: "h", Action: c.action, Phase: c.phase, VMState: "active", PowerState: Running,
			Time: time.Now(), Context: req.Context, RescueImageRef: "", RescueImageName: "rescue-img", ImageName: "img"}
		if c.phase == "error" {
			n.Fault = &Fault{Exception: "X", Message: "m"}
		}
		v, l, err := NewInstanceNotifications(n)
		if err != nil {
			t.Fatalf("%s.%s: %v", c.action, c.phase, err)
		}
		p, err := DecodeObject(v.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != c.payload || p.Version != c.version {
			t.Errorf("%s.%s: payload %s %s, want %s %s", c.action, c.phase, p.Name, p.Version, c.payload, c.version)
		}
		if v.EventType != "instance."+c.action+"."+c.phase || l.EventType != "compute.instance."+c.action+"."+c.phase {
			t.Errorf("%s.%s: event types %s / %s", c.action, c.phase, v.EventType, l.EventType)
		}
		if c.action == "rescue" {
			if raw, ok := p.Data["rescue_image_ref"]; !ok || string(raw) != "null" {
				t.Errorf("rescue payload rescue_image_ref = %s, want null", raw)
			}
		}
		var lp map[string]any
		if err := json.Unmarshal(l.Payload, &lp); err != nil {
			t.Fatal(err)
		}
		for _, k := range c.legacyHas {
			if _, ok := lp[k]; !ok {
				t.Errorf("%s.%s: legacy payload lacks %s", c.action, c.phase, k)
			}
		}
		for _, k := range c.legacyHasNot {
			if _, ok := lp[k]; ok {
				t.Errorf("%s.%s: legacy payload has %s, which nova does not send there", c.action, c.phase, k)
			}
		}
	}
}
