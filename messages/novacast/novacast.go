// Package novacast builds the compute RPC messages nova sends, starting from messages
// captured from the real oslo.messaging library and pointing them at a chosen node,
// instance, image and address. Tests, the demo and the benchmark use it to speak to a
// worker exactly as nova does; production code does not.
package novacast

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"

	"xcatbm/messages"
)

//go:embed vectors/*.json
var vectors embed.FS

// The captured vectors, by the method they carry.
const (
	Build           = "cast-build_and_run_instance.json"
	Terminate       = "cast-terminate_instance.json"
	Start           = "cast-start_instance.json"
	Stop            = "cast-stop_instance.json"
	Reboot          = "cast-reboot_instance.json"
	ConsoleCall     = "call-get_console_output.json"
	StopCall        = "call-stop_instance.json"
	DefaultImage    = "rhels7.5-x86_64-install-compute"
	tenantMAC       = "aa:bb:cc:00:00:99"
	networkInfoJSON = `[{"id":"p1","address":%q,"type":"other","network":{"id":"n1","label":"tenant","subnets":[{"cidr":%q,"version":4,"ips":[{"address":%q,"type":"fixed","version":4}]}]}}]`
)

// Spec says how to adapt a vector. Empty fields leave the vector's value.
type Spec struct {
	// Node is nova's node name (the xCAT node): the instance's node and, for a
	// build, the node argument.
	Node string
	// UUID and Hostname are the instance's.
	UUID, Hostname string
	// Image is the xcat_image_name property of a build's image; NoImage removes
	// every property instead.
	Image   string
	NoImage bool
	// IP and CIDR put a tenant address into the instance's network info.
	IP, CIDR string
	// Method and Version override the request's.
	Method, Version string
	// UniqueID is the envelope's _unique_id; empty makes a new one.
	UniqueID string
	// ReplyQueue overrides a call's _reply_q.
	ReplyQueue string
	// AuthToken overrides _context_auth_token; AdminPassword a build's
	// admin_password, a rebuild's new_pass and a rescue's rescue_password.
	AuthToken, AdminPassword string
	// UserData overrides the instance's user_data (base64, as nova sends it).
	UserData string
	// Args overrides arguments by name (preserve_ephemeral, rescue_image_ref, ...).
	Args map[string]any
}

// The captured casts of a tenant's server (a real nova 26 driven by the openstack
// CLI): a build with a key pair, user data and a config drive, and the rebuild,
// rescue and unrescue of that server.
const (
	TenantBuild    = "tenant-build_and_run_instance.json"
	TenantRebuild  = "tenant-rebuild_instance.json"
	TenantRescue   = "tenant-rescue_instance.json"
	TenantUnrescue = "tenant-unrescue_instance.json"
)

// Vector returns the raw body of a captured vector.
func Vector(name string) ([]byte, error) {
	raw, err := vectors.ReadFile("vectors/" + name)
	if err != nil {
		return nil, fmt.Errorf("novacast: %w", err)
	}
	var vec struct{ Body string }
	if err := json.Unmarshal(raw, &vec); err != nil {
		return nil, fmt.Errorf("novacast: %s: %w", name, err)
	}
	return []byte(vec.Body), nil
}

// Body returns the oslo envelope of vector adapted as s says.
func Body(vector string, s Spec) ([]byte, error) {
	body, err := Vector(vector)
	if err != nil {
		return nil, err
	}
	var env map[string]string
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("novacast: %s: %w", vector, err)
	}
	var msg map[string]any
	if err := json.Unmarshal([]byte(env["oslo.message"]), &msg); err != nil {
		return nil, fmt.Errorf("novacast: %s: %w", vector, err)
	}
	args, _ := msg["args"].(map[string]any)
	instObj, _ := args["instance"].(map[string]any)
	inst, _ := instObj["nova_object.data"].(map[string]any)
	if inst == nil {
		return nil, errors.New("novacast: " + vector + " carries no instance")
	}
	set := func(m map[string]any, k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set(inst, "node", s.Node)
	if _, ok := args["node"]; ok {
		set(args, "node", s.Node)
	}
	set(inst, "uuid", s.UUID)
	set(inst, "hostname", s.Hostname)
	if img, ok := args["image"].(map[string]any); ok {
		switch {
		case s.NoImage:
			img["properties"] = map[string]any{}
		case s.Image != "":
			img["properties"] = map[string]any{"xcat_image_name": s.Image}
		}
	}
	// A rebuild carries the new image's properties in the instance's system
	// metadata, as nova's API put them there.
	if _, rebuild := args["image_ref"]; rebuild && (s.Image != "" || s.NoImage) {
		sm, _ := inst["system_metadata"].(map[string]any)
		if sm == nil {
			sm = map[string]any{}
			inst["system_metadata"] = sm
		}
		delete(sm, "image_xcat_image_name")
		if !s.NoImage {
			sm["image_xcat_image_name"] = s.Image
		}
	}
	set(inst, "user_data", s.UserData)
	for k, v := range s.Args {
		args[k] = v
	}
	if s.IP != "" {
		ic, _ := inst["info_cache"].(map[string]any)
		icData, _ := ic["nova_object.data"].(map[string]any)
		if icData == nil {
			return nil, errors.New("novacast: " + vector + " has no info_cache")
		}
		icData["network_info"] = fmt.Sprintf(networkInfoJSON, tenantMAC, s.CIDR, s.IP)
	}
	for _, k := range []string{"admin_password", "new_pass", "rescue_password"} {
		if _, ok := args[k]; ok {
			set(args, k, s.AdminPassword)
		}
	}
	set(msg, "method", s.Method)
	set(msg, "version", s.Version)
	set(msg, "_reply_q", s.ReplyQueue)
	set(msg, "_context_auth_token", s.AuthToken)
	msg["_unique_id"] = s.UniqueID
	if s.UniqueID == "" {
		msg["_unique_id"] = messages.NewUniqueID()
	}
	inner, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": string(inner)})
}
