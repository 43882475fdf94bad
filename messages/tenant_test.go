package messages

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// tenantBuild decodes the n-th build_and_run_instance cast of the tenant capture (a
// boot with a key pair, user data, an admin password and a config drive).
func tenantBuild(t *testing.T, n int) (*Request, *BuildAndRunInstanceArgs) {
	t.Helper()
	seen := 0
	for _, rec := range readJSONL(t, "to-compute-tenant.jsonl") {
		body, err := EncodeEnvelope(rec["msg"])
		if err != nil {
			t.Fatal(err)
		}
		req, err := DecodeRequest(body)
		if err != nil {
			t.Fatal(err)
		}
		if req.Method != MethodBuildAndRunInstance {
			continue
		}
		if seen++; seen < n {
			continue
		}
		a, err := req.BuildAndRunInstance()
		if err != nil {
			t.Fatal(err)
		}
		return req, a
	}
	t.Fatalf("no build_and_run_instance number %d in the tenant capture", n)
	return nil, nil
}

func TestTenantBuildFields(t *testing.T) {
	t.Parallel()
	_, a := tenantBuild(t, 1)
	in := a.Instance
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICympHXpUTGkr/k6ikER7ej/1JJ+qTG20PJzBuKUQpmZ mi-test\n"
	if in.KeyName != "k1" || in.KeyData != key {
		t.Errorf("key_name %q key_data %q", in.KeyName, in.KeyData)
	}
	want := []KeyPair{{Name: "k1", Type: "ssh", PublicKey: key, UserID: "admin"}}
	if !reflect.DeepEqual(in.Keypairs, want) {
		t.Errorf("keypairs = %+v, want %+v", in.Keypairs, want)
	}
	ud, err := base64.StdEncoding.DecodeString(in.UserData.Reveal())
	if err != nil || string(ud) != "#!/bin/sh\necho hello-from-user-data > /tmp/ud-ran\n" {
		t.Errorf("user data %q, %v", ud, err)
	}
	if in.ConfigDrive != "True" || in.LaunchIndex != 0 || in.AvailabilityZone != "nova" || in.Hostname != "s1" {
		t.Errorf("config_drive %q launch_index %d az %q hostname %q", in.ConfigDrive, in.LaunchIndex, in.AvailabilityZone, in.Hostname)
	}
	if in.EC2IDs == nil || *in.EC2IDs != (EC2IDs{InstanceID: "i-00000001", AMIID: "ami-00000001"}) {
		t.Errorf("ec2_ids = %+v", in.EC2IDs)
	}
	if in.SecurityGroups == nil || len(in.SecurityGroups) != 0 {
		t.Errorf("security groups = %#v, want an empty loaded list", in.SecurityGroups)
	}
	if in.RootDeviceName != "" || in.DefaultEphemeralDevice != "" || in.DefaultSwapDevice != "" {
		t.Errorf("device names %q %q %q", in.RootDeviceName, in.DefaultEphemeralDevice, in.DefaultSwapDevice)
	}
	if a.AdminPassword.Reveal() != "VYGfyuvYu5tQ" {
		t.Errorf("admin password not decoded")
	}
	// The secrets never print.
	for _, s := range []string{fmt.Sprintf("%+v", *in), fmt.Sprintf("%#v", *in), fmt.Sprint(a)} {
		if strings.Contains(s, in.UserData.Reveal()) || strings.Contains(s, "VYGfyuvYu5tQ") {
			t.Errorf("a secret printed: %.200s", s)
		}
	}
}

// TestTenantCastsDecode decodes every instance of the tenant capture (builds,
// rebuilds, rescues, deletes) and checks that the config-drive fields are read
// wherever nova sent them: nova loads keypairs and ec2_ids for builds only; the
// second server was booted without a key pair and without user data.
func TestTenantCastsDecode(t *testing.T) {
	t.Parallel()
	builds := 0
	noKey := "0a50e9ab-"
	for _, rec := range readJSONL(t, "to-compute-tenant.jsonl") {
		body, err := EncodeEnvelope(rec["msg"])
		if err != nil {
			t.Fatal(err)
		}
		req, err := DecodeRequest(body)
		if err != nil {
			t.Fatal(err)
		}
		in, err := req.argInstance("instance")
		if err != nil {
			t.Fatalf("%s: %v", req.Method, err)
		}
		build := req.Method == MethodBuildAndRunInstance
		if build {
			builds++
		}
		if (in.Keypairs != nil) != build || (in.EC2IDs != nil) != build {
			t.Errorf("%s: keypairs %+v ec2_ids %+v: loaded only for builds", req.Method, in.Keypairs, in.EC2IDs)
		}
		if strings.HasPrefix(in.UUID, noKey) {
			if in.KeyName != "" || in.KeyData != "" || len(in.Keypairs) != 0 || !in.UserData.IsZero() || in.ConfigDrive != "" {
				t.Errorf("%s %s: key %q keypairs %+v user data set %v config drive %q", req.Method, in.UUID, in.KeyName, in.Keypairs, !in.UserData.IsZero(), in.ConfigDrive)
			}
			continue
		}
		if in.KeyName != "k1" || !strings.HasPrefix(in.KeyData, "ssh-ed25519 ") || in.UserData.IsZero() || in.ConfigDrive != "True" {
			t.Errorf("%s %s: key %q data %q user data set %v config drive %q", req.Method, in.UUID, in.KeyName, in.KeyData, !in.UserData.IsZero(), in.ConfigDrive)
		}
		if build && (len(in.Keypairs) != 1 || in.Keypairs[0].PublicKey != in.KeyData) {
			t.Errorf("%s: keypairs %+v", req.Method, in.Keypairs)
		}
	}
	if builds != 3 {
		t.Errorf("%d builds, want 3", builds)
	}
}

func TestTenantFieldErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		edit  func(d map[string]any)
		field string
	}{
		{"user_data not string", func(d map[string]any) { d["user_data"] = 5 }, "args.instance.user_data"},
		{"launch_index string", func(d map[string]any) { d["launch_index"] = "0" }, "args.instance.launch_index"},
		{"keypairs not object", func(d map[string]any) { d["keypairs"] = "k1" }, "args.instance.keypairs"},
		{"keypairs objects not list", func(d map[string]any) {
			d["keypairs"] = map[string]any{"nova_object.name": "KeyPairList", "nova_object.namespace": "nova",
				"nova_object.version": "1.3", "nova_object.data": map[string]any{"objects": 1}}
		}, "args.instance.keypairs.nova_object.data.objects"},
		{"keypair name number", func(d map[string]any) {
			d["keypairs"] = map[string]any{"nova_object.name": "KeyPairList", "nova_object.namespace": "nova",
				"nova_object.version": "1.3", "nova_object.data": map[string]any{"objects": []any{
					map[string]any{"nova_object.name": "KeyPair", "nova_object.namespace": "nova",
						"nova_object.version": "1.4", "nova_object.data": map[string]any{"name": 1}}}}}
		}, "args.instance.keypairs.nova_object.data.objects.0.name"},
		{"ec2 instance_id number", func(d map[string]any) {
			d["ec2_ids"] = map[string]any{"nova_object.name": "EC2Ids", "nova_object.namespace": "nova",
				"nova_object.version": "1.0", "nova_object.data": map[string]any{"instance_id": 1}}
		}, "args.instance.ec2_ids.instance_id"},
		{"security group name number", func(d map[string]any) {
			d["security_groups"] = map[string]any{"nova_object.name": "SecurityGroupList", "nova_object.namespace": "nova",
				"nova_object.version": "1.1", "nova_object.data": map[string]any{"objects": []any{
					map[string]any{"nova_object.name": "SecurityGroup", "nova_object.namespace": "nova",
						"nova_object.version": "1.2", "nova_object.data": map[string]any{"name": true}}}}}
		}, "args.instance.security_groups.nova_object.data.objects.0.name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := buildInner(t, func(m map[string]any) { c.edit(instanceData(m)) })
			req, err := DecodeRequest(body)
			if err != nil {
				t.Fatal(err)
			}
			_, err = req.BuildAndRunInstance()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("error %v, want field %s", err, c.field)
			}
		})
	}
}

func TestWithoutInstanceSecrets(t *testing.T) {
	t.Parallel()
	_, a := tenantBuild(t, 1)
	o := a.Instance.Object
	before, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	clean := WithoutInstanceSecrets(o)
	after, err := json.Marshal(o)
	if err != nil || string(after) != string(before) {
		t.Fatal("WithoutInstanceSecrets changed its argument")
	}
	b, err := json.Marshal(clean)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), a.Instance.UserData.Reveal()) || string(clean.Data["user_data"]) != "null" {
		t.Errorf("user data left: %s", clean.Data["user_data"])
	}
	in, err := InstanceFromObject(clean)
	if err != nil || !in.UserData.IsZero() || in.KeyData != a.Instance.KeyData || in.UUID != a.Instance.UUID {
		t.Errorf("scrubbed instance: %v, %+v", err, in)
	}
	// Every other field is kept as received.
	for k, v := range o.Data {
		if k != "user_data" && string(clean.Data[k]) != string(v) {
			t.Errorf("field %s changed", k)
		}
	}
	// A primitive without user_data gets none.
	if _, ok := WithoutInstanceSecrets(&Object{Name: "Instance", Data: map[string]json.RawMessage{}}).Data["user_data"]; ok {
		t.Error("user_data added to a primitive without it")
	}
}

func TestNetworkInfoRoutesAndMeta(t *testing.T) {
	t.Parallel()
	raw, _ := json.Marshal(`[{"id": "p1", "address": "fa:16:3e:00:00:01", "type": "ovs", "network": {"id": "n1", "meta": {"mtu": 9000},
	 "subnets": [{"cidr": "10.0.0.0/24", "version": 4, "meta": {"dhcp_server": "10.0.0.2"},
	  "gateway": {"address": "10.0.0.1", "type": "gateway", "version": 4},
	  "routes": [{"cidr": "192.168.0.0/16", "gateway": {"address": "10.0.0.254", "type": "gateway", "version": 4}, "interface": null, "meta": {}}],
	  "ips": [{"address": "10.0.0.5", "type": "fixed", "version": 4, "floating_ips": []}], "dns": []}]}}]`)
	vifs, err := ParseNetworkInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	sn := vifs[0].Network.Subnets[0]
	if len(sn.Routes) != 1 || sn.Routes[0].CIDR != "192.168.0.0/16" || sn.Routes[0].Gateway.Address != "10.0.0.254" {
		t.Errorf("routes = %+v", sn.Routes)
	}
	if sn.Meta["dhcp_server"] != "10.0.0.2" || vifs[0].Network.Meta["mtu"] != float64(9000) {
		t.Errorf("meta = %v / %v", sn.Meta, vifs[0].Network.Meta)
	}
}

// TestEncodeWithoutSecrets: an instance decoded from a request encodes without its
// user data when it has some, and as it was received when it has none.
func TestEncodeWithoutSecrets(t *testing.T) {
	t.Parallel()
	_, withData := tenantBuild(t, 1) // a spawn whose instance carries user data
	stop, err := DecodeRequest([]byte(loadVector(t, "cast-stop_instance.json").Body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := stop.StopInstance() // user_data null
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		in       *Instance
		asIs     bool // the received bytes, unchanged
		userData string
	}{
		{"user data", withData.Instance, false, withData.Instance.UserData.Reveal()},
		{"no user data", plain.Instance, true, ""},
		{"built, not decoded", &Instance{Object: plain.Instance.Object}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.in.EncodeWithoutSecrets()
			if err != nil {
				t.Fatal(err)
			}
			if tc.userData != "" && strings.Contains(string(b), tc.userData) {
				t.Fatal("user data kept")
			}
			raw, _ := stop.Arg("instance")
			if got := string(b) == string(raw); got != tc.asIs {
				t.Errorf("received bytes returned: %v, want %v", got, tc.asIs)
			}
			o, err := DecodeObject(b)
			if err != nil {
				t.Fatal(err)
			}
			if ud := string(o.Data["user_data"]); ud != "null" {
				t.Errorf("user_data %s, want null", ud)
			}
			if len(o.Data) != len(tc.in.Object.Data) {
				t.Errorf("%d fields, want %d", len(o.Data), len(tc.in.Object.Data))
			}
		})
	}
}
