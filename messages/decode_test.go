package messages

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"xcatbm/internal/config"
)

// envelope wraps an inner message text in a v2.0 envelope.
func envelope(inner string) []byte {
	b, _ := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": inner})
	return b
}

// buildInner returns the build vector's inner message with edit applied.
func buildInner(t *testing.T, edit func(msg map[string]any)) []byte {
	t.Helper()
	msg := innerOf(t, []byte(loadVector(t, "cast-build_and_run_instance.json").Body))
	edit(msg)
	b, err := EncodeEnvelope(msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func instanceData(msg map[string]any) map[string]any {
	return msg["args"].(map[string]any)["instance"].(map[string]any)["nova_object.data"].(map[string]any)
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	for _, c := range []struct {
		name  string
		body  []byte
		field string
		args  bool // decode typed build args
	}{
		{"truncated", []byte(`{"oslo.version": "2.0", "oslo.mess`), "body", false},
		{"not object", []byte(`[1,2]`), "body", false},
		{"null body", []byte(`null`), "body", false},
		{"message not string", []byte(`{"oslo.version": "2.0", "oslo.message": {"method": "x"}}`), "oslo.message", false},
		{"inner truncated", envelope(`{"method": "x", "args": {`), "oslo.message", false},
		{"version not string", []byte(`{"oslo.version": 2, "oslo.message": "{}"}`), "oslo.version", false},
		{"envelope 3.0", envelope(`{"method": "x"}`)[0:0], "body", false},
		{"no method", envelope(`{"args": {}}`), "method", false},
		{"method not string", envelope(`{"method": 1}`), "method", false},
		{"args not object", envelope(`{"method": "x", "args": [1]}`), "args", false},
		{"args null", envelope(`{"method": "x", "args": null}`), "args", false},
		{"timeout string", envelope(`{"method": "x", "_msg_id": "a", "_reply_q": "r", "_timeout": "60"}`), "_timeout", false},
		{"call without reply queue", envelope(`{"method": "x", "_msg_id": "a"}`), "_reply_q", false},
		{"context is_admin string", envelope(`{"method": "x", "_context_is_admin": "yes"}`), "_context_is_admin", false},
		{"context roles", envelope(`{"method": "x", "_context_roles": "admin"}`), "_context_roles", false},
		{"instance without uuid", buildInner(t, func(m map[string]any) { delete(instanceData(m), "uuid") }), "args.instance.uuid", true},
		{"instance uuid null", buildInner(t, func(m map[string]any) { instanceData(m)["uuid"] = nil }), "args.instance.uuid", true},
		{"power_state out of range", buildInner(t, func(m map[string]any) { instanceData(m)["power_state"] = 5 }), "args.instance.power_state", true},
		{"power_state 99", buildInner(t, func(m map[string]any) { instanceData(m)["power_state"] = 99 }), "args.instance.power_state", true},
		{"power_state string", buildInner(t, func(m map[string]any) { instanceData(m)["power_state"] = "running" }), "args.instance.power_state", true},
		{"instance missing", buildInner(t, func(m map[string]any) { delete(m["args"].(map[string]any), "instance") }), "args.instance", true},
		{"instance not object", buildInner(t, func(m map[string]any) { m["args"].(map[string]any)["instance"] = "x" }), "args.instance", true},
		{"instance no data", buildInner(t, func(m map[string]any) {
			delete(m["args"].(map[string]any)["instance"].(map[string]any), "nova_object.data")
		}), "args.instance.nova_object.data", true},
		{"flavor bad memory", buildInner(t, func(m map[string]any) {
			instanceData(m)["flavor"].(map[string]any)["nova_object.data"].(map[string]any)["memory_mb"] = "lots"
		}), "args.instance.flavor.memory_mb", true},
		{"network_info not list", buildInner(t, func(m map[string]any) {
			instanceData(m)["info_cache"].(map[string]any)["nova_object.data"].(map[string]any)["network_info"] = "{}"
		}), "args.instance.info_cache.network_info", true},
		{"image missing", buildInner(t, func(m map[string]any) { delete(m["args"].(map[string]any), "image") }), "args.image", true},
		{"node missing", buildInner(t, func(m map[string]any) { delete(m["args"].(map[string]any), "node") }), "args.node", true},
		{"injected_files shape", buildInner(t, func(m map[string]any) { m["args"].(map[string]any)["injected_files"] = []any{[]any{"only-path"}} }), "args.injected_files.0", true},
		{"requested_networks item", buildInner(t, func(m map[string]any) {
			rn := m["args"].(map[string]any)["requested_networks"].(map[string]any)["nova_object.data"].(map[string]any)
			rn["objects"] = []any{map[string]any{"nova_object.name": "NetworkRequest"}}
		}), "args.requested_networks.nova_object.data.objects.0.nova_object.namespace", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(c.body) == 0 {
				c.body = []byte(`{"oslo.version": "3.0", "oslo.message": "{}"}`)
				c.field = "oslo.version"
			}
			req, err := DecodeRequest(c.body)
			if err == nil && c.args {
				_, err = req.BuildAndRunInstance()
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want *FieldError", err, err)
			}
			if fe.Field != c.field || fe.Problem == "" {
				t.Errorf("field %q (%s), want %q", fe.Field, err, c.field)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("message %q does not name %q", err, c.field)
			}
		})
	}
}

func TestUnenvelopedRequest(t *testing.T) {
	req, err := DecodeRequest([]byte(`{"method": "ping", "namespace": "baseapi", "args": {"arg": {"x": 1}}, "_msg_id": "m1", "_reply_q": "reply_q1", "_timeout": null, "_unique_id": "u1", "_context_user_id": "u", "x_future": 7}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.Version != "1.0" || !req.IsCall() || req.Namespace != BaseAPINamespace || req.Timeout != nil || req.Context.UserID() != "u" {
		t.Errorf("request = %+v", req)
	}
	p, _ := req.Ping()
	out, err := EncodeReply(req.MsgID, PingResult(p.Arg))
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeReply(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Result) != `{"arg":{"x":1},"service":"compute"}` || r.MsgID != "m1" || !r.Ending {
		t.Errorf("reply = %s %+v", r.Result, r)
	}
	body, err := EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	msg := innerOf(t, body)
	if msg["x_future"] != float64(7) || msg["version"] != "1.0" {
		t.Errorf("re-encoded = %v", msg)
	}
}

// TestCallMembersWithoutMsgID checks that only `_msg_id` makes a call, as in oslo's
// server: a request with `_reply_q` or `_timeout` but no `_msg_id` is a cast, and
// those members re-encode as received.
func TestCallMembersWithoutMsgID(t *testing.T) {
	for _, tc := range []struct {
		name, stray string
		want        map[string]any
	}{
		{"reply queue", `"_reply_q": "reply_x"`, map[string]any{"_reply_q": "reply_x"}},
		{"timeout", `"_timeout": 30`, map[string]any{"_timeout": float64(30)}},
		{"timeout of a wrong kind", `"_timeout": "soon"`, map[string]any{"_timeout": "soon"}},
		{"empty msg id", `"_msg_id": "", "_reply_q": "reply_x", "_timeout": null`,
			map[string]any{"_msg_id": "", "_reply_q": "reply_x", "_timeout": nil}},
		{"null msg id", `"_msg_id": null, "_reply_q": "reply_x"`, map[string]any{"_msg_id": nil, "_reply_q": "reply_x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := DecodeRequest([]byte(`{"method": "stop_instance", "args": {}, ` + tc.stray + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if req.IsCall() || req.ReplyQueue != "" || req.Timeout != nil {
				t.Fatalf("decoded as a call: %+v", req)
			}
			body, err := EncodeRequest(req)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			msg := innerOf(t, body)
			for k, v := range tc.want {
				got, ok := msg[k]
				if !ok || got != v {
					t.Errorf("re-encoded %s = %v (present %v), want %v", k, got, ok, v)
				}
			}
			again, err := DecodeRequest(body)
			if err != nil || again.IsCall() {
				t.Fatalf("re-decode: %v, call %v", err, again != nil && again.IsCall())
			}
		})
	}
	// On a call the members are read, and a wrong kind is rejected.
	for _, tc := range []struct{ body, field string }{
		{`{"method": "stop_instance", "_msg_id": "m1", "_reply_q": "r", "_timeout": "soon"}`, "_timeout"},
		{`{"method": "stop_instance", "_msg_id": "m1", "_reply_q": 7}`, "_reply_q"},
		{`{"method": "stop_instance", "_msg_id": "m1"}`, "_reply_q"},
	} {
		_, err := DecodeRequest([]byte(tc.body))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: error %v, want one naming %s", tc.body, err, tc.field)
		}
	}
}

func TestEnvelopeVersions(t *testing.T) {
	for _, c := range []struct {
		ver string
		ok  bool
	}{{"2.0", true}, {"2", true}, {"2.1", false}, {"1.0", false}, {"3.0", false}, {"x", false}, {"", false}} {
		_, err := DecodeEnvelope([]byte(fmt.Sprintf(`{"oslo.version": %q, "oslo.message": "{}"}`, c.ver)))
		if (err == nil) != c.ok {
			t.Errorf("%q: err = %v", c.ver, err)
		}
	}
	if _, err := EncodeEnvelope([]int{1}); err == nil {
		t.Error("a list encoded as a message")
	}
}

func TestCheckVersion(t *testing.T) {
	for _, c := range []struct {
		v  string
		ok bool
	}{{"6.0", true}, {"6.4", true}, {"6", true}, {"6.5", false}, {"5.13", false}, {"7.0", false}, {"six", false}} {
		err := CheckComputeVersion(c.v)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.v, err)
		}
		var f *Failure
		if err != nil && (!errors.As(err, &f) || f.Class != "UnsupportedVersion" || f.Module != DispatcherModule) {
			t.Errorf("%s: %#v", c.v, err)
		}
	}
}

func TestFailureReplies(t *testing.T) {
	for _, f := range []*Failure{NoSuchMethod("", "rebuild_instance"), NoSuchMethod("baseapi", "pong"), UnsupportedVersion("7.0"), UnsupportedVersionOf("7.0", "x"), InstanceNotFound("abc")} {
		body, err := EncodeFailureReply("m", f)
		if err != nil {
			t.Fatal(err)
		}
		inner := innerOf(t, body)
		if _, isString := inner["failure"].(string); !isString || inner["result"] != nil || inner["ending"] != true {
			t.Errorf("inner = %v", inner)
		}
		r, err := DecodeReply(body)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failure.Class != f.Class || r.Failure.Message != f.Message || r.Failure.Traceback == nil || r.Failure.Kwargs == nil {
			t.Errorf("decoded %#v", r.Failure)
		}
	}
	if got := InstanceNotFound("abc").Error(); got != "nova.exception.InstanceNotFound: Instance abc could not be found." {
		t.Errorf("Error() = %q", got)
	}
	if got := NoSuchMethod("", "x").Message; got != "Endpoint does not support RPC method x" {
		t.Errorf("message = %q", got)
	}
	hb, err := EncodeHeartbeatReply("m")
	if err != nil {
		t.Fatal(err)
	}
	if inner := innerOf(t, hb); inner["ending"] != false || inner["_msg_id"] != "m" {
		t.Errorf("heartbeat = %v", inner)
	}
	if _, err := EncodeReply("", nil); err == nil {
		t.Error("reply without msg id")
	}
	if _, err := DecodeReply(envelope(`{"result": null, "failure": "{\"class\": 1}", "_msg_id": "m"}`)); err == nil || !strings.Contains(err.Error(), "failure.class") {
		t.Errorf("bad failure: %v", err)
	}
}

func TestContext(t *testing.T) {
	c := NewContext()
	for k, v := range map[string]any{"user_id": "u", "project_id": "p", "roles": []string{"admin"}, "is_admin": true, "service_user_id": "s", "remote_address": "10.0.0.1", "project": "p"} {
		if err := c.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	c.SetAuthToken(config.NewSecret("s3cr3t-tok"))
	if err := c.Set("auth_token", config.NewSecret("x")); err == nil {
		t.Error("Set accepted a Secret")
	}
	if err := c.Set("is_admin", "yes"); err == nil {
		t.Error("is_admin accepted a string")
	}
	if c.AuthToken().Reveal() != "s3cr3t-tok" || strings.Contains(c.String(), "s3cr3t") || strings.Contains(fmt.Sprint(c.AuthToken()), "s3cr3t") {
		t.Errorf("token handling: %q", c.String())
	}
	n := c.ForNotification()
	if got := strings.Join(n.Keys(), ","); got != "is_admin,project_id,roles,service_user_id,user_id" {
		t.Errorf("notification keys = %s", got)
	}
	body, err := EncodeRequest(&Request{Method: "x", Version: "6.0", Context: c})
	if err != nil {
		t.Fatal(err)
	}
	msg := innerOf(t, body)
	if msg["_context_auth_token"] != "s3cr3t-tok" || msg["_unique_id"] == "" || len(msg["_unique_id"].(string)) != 32 {
		t.Errorf("encoded = %v", msg)
	}
}

func TestFormats(t *testing.T) {
	at := time.Date(2026, 11, 25, 2, 37, 8, 711531999, time.FixedZone("x", 3600))
	if got := FormatTimestamp(at); got != "2026-11-25 01:37:08.711531" {
		t.Errorf("FormatTimestamp = %s", got)
	}
	if got := FormatNovaTime(at); got != "2026-11-25T01:37:08Z" {
		t.Errorf("FormatNovaTime = %s", got)
	}
	if id := NewMessageID(); len(id) != 36 || id[14] != '4' {
		t.Errorf("message id %s", id)
	}
	if id := NewUniqueID(); len(id) != 32 || strings.Contains(id, "-") {
		t.Errorf("unique id %s", id)
	}
	p := CallProperties(30 * time.Second)
	if p.Expiration != "30000" || p.DeliveryMode != 2 || p.ContentType != "application/json" || p.ContentEncoding != "utf-8" || p.Headers == nil {
		t.Errorf("call properties %+v", p)
	}
	if CastProperties().Expiration != "" || NotificationProperties().Expiration != "" || ReplyProperties().Expiration != "" {
		t.Error("expiration on a non-call")
	}
}

func TestPowerState(t *testing.T) {
	for v, name := range map[int64]string{0: "nostate", 1: "running", 3: "paused", 4: "shutdown", 6: "crashed", 7: "suspended"} {
		p, err := ParsePowerState(v)
		if err != nil || p.String() != name {
			t.Errorf("%d: %v %v", v, p, err)
		}
	}
	for _, v := range []int64{-1, 2, 5, 8, 1 << 40} {
		if _, err := ParsePowerState(v); err == nil {
			t.Errorf("%d accepted", v)
		}
	}
	if NoState.NotificationName() != "pending" || Shutdown.NotificationName() != "shutdown" {
		t.Error("notification names")
	}
}

func TestOtherComputeMethods(t *testing.T) {
	req, in := buildInstance(t, false)
	instance := in.Object
	event, _ := NewObject("InstanceExternalEvent", "1.5", map[string]any{"instance_uuid": in.UUID, "name": "network-vif-plugged", "status": "completed", "tag": "port-1", "data": nil})
	r := &Request{Method: MethodExternalInstanceEvent, Version: "6.0", Context: req.Context}
	_ = r.SetArg("instances", []*Object{instance})
	_ = r.SetArg("events", []*Object{event})
	body, err := EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	a, err := got.ExternalInstanceEvent()
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Instances) != 1 || a.Events[0].Name != "network-vif-plugged" || a.Events[0].Tag != "port-1" {
		t.Errorf("args = %+v", a)
	}
	reboot := &Request{Method: MethodRebootInstance, Args: map[string]json.RawMessage{}}
	_ = reboot.SetArg("instance", instance)
	_ = reboot.SetArg("reboot_type", "WARM")
	var fe *FieldError
	if _, err := reboot.RebootInstance(); !errors.As(err, &fe) || fe.Field != "args.reboot_type" {
		t.Errorf("reboot WARM: %v", err)
	}
	console := &Request{Method: MethodGetConsoleOutput}
	_ = console.SetArg("instance", instance)
	_ = console.SetArg("tail_length", "ten")
	if _, err := console.GetConsoleOutput(); !errors.As(err, &fe) || fe.Field != "args.tail_length" {
		t.Errorf("tail_length: %v", err)
	}
	stop := &Request{Method: MethodStopInstance}
	_ = stop.SetArg("instance", instance)
	sa, err := stop.StopInstance()
	if err != nil || !sa.CleanShutdown {
		t.Errorf("stop default clean_shutdown: %+v %v", sa, err)
	}
}

func TestJobs(t *testing.T) {
	req, err := NewJobRequest(MethodRegisterImages, &RegisterImagesArgs{Images: []ImageRegistration{{XCATName: "rhels9", Name: "RHEL 9"}}, Cloud: "prod"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	a, err := got.RegisterImages()
	if err != nil || a.Images[0].XCATName != "rhels9" || a.Cloud != "prod" || got.Namespace != "xcatbm" || got.Version != "1.0" {
		t.Errorf("register_images = %+v %v", a, err)
	}
	if _, err := got.RegisterNodes(); err == nil {
		t.Error("register_images decoded as register_nodes")
	}
	var fe *FieldError
	for _, c := range []struct {
		method string
		args   JobArgs
		field  string
	}{
		{MethodRegisterNodes, &RegisterNodesArgs{ComputeHost: "h", ResourceClass: "r"}, "args.noderange"},
		{MethodRegisterNodes, &RegisterNodesArgs{NodeRange: "n[01-04]", ResourceClass: "r"}, "args.compute_host"},
		{MethodRegisterNodes, &RegisterNodesArgs{NodeRange: "n1", ComputeHost: "h", ResourceClass: "gpu large"}, "args.resource_class"},
		{MethodRegisterNodes, &RegisterNodesArgs{NodeRange: "n1", ComputeHost: "h", ResourceClass: "a/b"}, "args.resource_class"},
		{MethodRegisterNodes, &RegisterNodesArgs{NodeRange: "n1", ComputeHost: "h", ResourceClass: strings.Repeat("x", 201)}, "args.resource_class"},
		{MethodRegisterImages, &RegisterImagesArgs{Images: []ImageRegistration{{Name: "x"}}, Cloud: "c"}, "args.images.0.xcat_name"},
		{MethodRemoveNodes, &RemoveNodesArgs{}, "args.noderange"},
		{"drop_tables", &RemoveNodesArgs{NodeRange: "n1"}, "method"},
	} {
		if _, err := NewJobRequest(c.method, c.args, nil); !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want field %s", c.method, err, c.field)
		}
	}
	rn, err := NewJobRequest(MethodRegisterNodes, &RegisterNodesArgs{NodeRange: "n[01-04]", ComputeHost: "xcat-mn1", ResourceClass: "baremetal.general"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := rn.RegisterNodes(); err != nil || a.NodeRange != "n[01-04]" {
		t.Errorf("register_nodes = %+v %v", a, err)
	}

	n, err := NewJobNotification("xcat-mn1", true, JobPayload{JobID: "j1", Kind: MethodRegisterNodes, Done: 3, Total: 3,
		Results: []JobItemResult{{Name: "n01", Status: ItemOK}, {Name: "n02", Status: ItemFailed, Message: "no bmc"},
			{Name: "n03", Status: ItemPending, Message: "no resource provider yet"}}}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.RoutingKey() != "xcatbm_notifications.info" || n.PublisherID != "xcatbm-worker:xcat-mn1" || n.EventType != EventJobEnd {
		t.Errorf("notification %+v", n)
	}
	nb, err := n.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dn, err := DecodeNotification(nb)
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodeJobPayload(dn.Payload)
	if err != nil || p.Results[1].Message != "no bmc" || p.Results[2].Status != ItemPending || p.Done != 3 {
		t.Errorf("payload %+v %v", p, err)
	}
	for _, bad := range []JobPayload{
		{Kind: "k"}, {JobID: "j"}, {JobID: "j", Kind: "k", Done: 3, Total: 2},
		{JobID: "j", Kind: "k", Done: 1, Total: 1, Results: []JobItemResult{{Name: "n", Status: "meh"}}},
	} {
		if _, err := NewJobNotification("h", false, bad, time.Now(), nil); !errors.As(err, &fe) {
			t.Errorf("%+v accepted: %v", bad, err)
		}
	}
}
