package messages

import (
	"encoding/json"
	"fmt"

	"xcatbm/internal/config"
)

// Compute RPC methods xcatbm serves, and the `baseapi` namespace of ping.
const (
	MethodBuildAndRunInstance   = "build_and_run_instance"
	MethodTerminateInstance     = "terminate_instance"
	MethodStartInstance         = "start_instance"
	MethodStopInstance          = "stop_instance"
	MethodRebootInstance        = "reboot_instance"
	MethodRebuildInstance       = "rebuild_instance"
	MethodRescueInstance        = "rescue_instance"
	MethodUnrescueInstance      = "unrescue_instance"
	MethodGetConsoleOutput      = "get_console_output"
	MethodExternalInstanceEvent = "external_instance_event"
	MethodPing                  = "ping"
	BaseAPINamespace            = "baseapi"
)

// Reboot types of reboot_instance.
const (
	RebootSoft = "SOFT"
	RebootHard = "HARD"
)

// argument readers: errors are *FieldError rooted at "args.<name>".

func (r *Request) argInstance(name string) (*Instance, error) {
	raw, ok := r.Args[name]
	if !ok || string(raw) == "null" {
		return nil, fieldErr("args."+name, "missing", nil)
	}
	in, err := validInstance(raw)
	if err != nil {
		return nil, within("args."+name, err)
	}
	return in, nil
}

func (r *Request) argObject(name string) (*Object, error) {
	raw, ok := r.Args[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	o, err := validObjectPrimitive(raw)
	if err != nil {
		return nil, within("args."+name, err)
	}
	return o, nil
}

// argInto decodes an optional argument into dst; absent leaves dst unchanged.
func (r *Request) argInto(name string, dst any, want string) error {
	raw, ok := r.Args[name]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fieldErr("args."+name, "not "+want, nil)
	}
	return nil
}

// BuildAndRunInstanceArgs are the arguments of build_and_run_instance (cast, 6.0).
type BuildAndRunInstanceArgs struct {
	Instance            *Instance
	Image               *ImageMeta
	RequestSpec         json.RawMessage // RequestSpec primitive, kept raw
	FilterProperties    json.RawMessage // dict, kept raw
	AdminPassword       config.Secret   // empty when null
	InjectedFiles       [][2]string     // [path, contents] pairs
	RequestedNetworks   []NetworkRequest
	SecurityGroups      json.RawMessage // kept raw (null from nova 6.0)
	BlockDeviceMapping  json.RawMessage // BlockDeviceMappingList primitive, kept raw
	Node                string          // nova node name = xCAT node
	Limits              json.RawMessage // dict, kept raw
	HostList            json.RawMessage // list of Selection primitives, kept raw
	AcceleratorRequests []string        // accel_uuids
}

// BuildAndRunInstance decodes the arguments of a build_and_run_instance request.
// The instance, the image and the node are required.
func (r *Request) BuildAndRunInstance() (*BuildAndRunInstanceArgs, error) {
	a := &BuildAndRunInstanceArgs{
		RequestSpec:        r.Args["request_spec"],
		FilterProperties:   r.Args["filter_properties"],
		SecurityGroups:     r.Args["security_groups"],
		BlockDeviceMapping: r.Args["block_device_mapping"],
		Limits:             r.Args["limits"],
		HostList:           r.Args["host_list"],
	}
	var err error
	if a.Instance, err = r.argInstance("instance"); err != nil {
		return nil, err
	}
	rawImage, ok := r.Args["image"]
	if !ok || string(rawImage) == "null" {
		return nil, fieldErr("args.image", "missing", nil)
	}
	if a.Image, err = DecodeImageMeta(rawImage); err != nil {
		return nil, within("args.image", err)
	}
	if a.AdminPassword, err = r.secretArg("admin_password"); err != nil {
		return nil, err
	}
	if a.InjectedFiles, err = r.injectedFiles(); err != nil {
		return nil, err
	}
	nets, err := r.argObject("requested_networks")
	if err != nil {
		return nil, err
	}
	if nets != nil {
		if a.RequestedNetworks, err = NetworkRequestsFromObject(nets); err != nil {
			return nil, within("args.requested_networks", err)
		}
	}
	if err := r.argInto("node", &a.Node, "a string"); err != nil {
		return nil, err
	}
	if a.Node == "" {
		return nil, fieldErr("args.node", "missing", nil)
	}
	if err := r.argInto("accel_uuids", &a.AcceleratorRequests, "a list of strings"); err != nil {
		return nil, err
	}
	return a, nil
}

// injectedFiles reads the optional injected_files argument: [path, contents] pairs.
func (r *Request) injectedFiles() ([][2]string, error) {
	var files [][]string
	if err := r.argInto("injected_files", &files, "a list of [path, contents] pairs"); err != nil {
		return nil, err
	}
	var out [][2]string
	for i, f := range files {
		if len(f) != 2 {
			return nil, fieldErr(fmt.Sprintf("args.injected_files.%d", i), "not a [path, contents] pair", nil)
		}
		out = append(out, [2]string{f[0], f[1]})
	}
	return out, nil
}

// secretArg reads an optional string-or-null argument as a secret.
func (r *Request) secretArg(name string) (config.Secret, error) {
	var pw *string
	if err := r.argInto(name, &pw, "a string or null"); err != nil {
		return config.Secret{}, err
	}
	if pw == nil {
		return config.Secret{}, nil
	}
	return config.NewSecret(*pw), nil
}

// RebuildInstanceArgs are the arguments of rebuild_instance (cast, 6.0 to 6.4; 5.x
// without reimage_boot_volume and target_state).
type RebuildInstanceArgs struct {
	Instance          *Instance
	OrigImageRef      string
	ImageRef          string
	InjectedFiles     [][2]string
	NewPassword       config.Secret // new_pass; empty when null
	OrigSysMetadata   json.RawMessage
	BDMs              json.RawMessage
	Recreate          bool  // an evacuation to this host
	OnSharedStorage   *bool // null: the driver decides
	PreserveEphemeral bool
	Migration         json.RawMessage
	ScheduledNode     string
	Limits            json.RawMessage
	RequestSpec       json.RawMessage
	AccelUUIDs        []string
	ReimageBootVolume bool
	TargetState       string // "" when absent or null
}

// RebuildInstance decodes the arguments of a rebuild_instance request. The instance
// is required; image_ref may be empty (an evacuation keeps the image).
func (r *Request) RebuildInstance() (*RebuildInstanceArgs, error) {
	a := &RebuildInstanceArgs{OrigSysMetadata: r.Args["orig_sys_metadata"], BDMs: r.Args["bdms"], Migration: r.Args["migration"],
		Limits: r.Args["limits"], RequestSpec: r.Args["request_spec"]}
	var err error
	if a.Instance, err = r.argInstance("instance"); err != nil {
		return nil, err
	}
	var orig, ref, node, target *string
	for _, s := range []struct {
		name string
		dst  **string
	}{{"orig_image_ref", &orig}, {"image_ref", &ref}, {"scheduled_node", &node}, {"target_state", &target}} {
		if err := r.argInto(s.name, s.dst, "a string or null"); err != nil {
			return nil, err
		}
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	a.OrigImageRef, a.ImageRef, a.ScheduledNode, a.TargetState = deref(orig), deref(ref), deref(node), deref(target)
	if a.InjectedFiles, err = r.injectedFiles(); err != nil {
		return nil, err
	}
	if a.NewPassword, err = r.secretArg("new_pass"); err != nil {
		return nil, err
	}
	var recreate, preserve, reimage *bool
	for _, b := range []struct {
		name string
		dst  **bool
	}{{"recreate", &recreate}, {"preserve_ephemeral", &preserve}, {"reimage_boot_volume", &reimage}, {"on_shared_storage", &a.OnSharedStorage}} {
		if err := r.argInto(b.name, b.dst, "a boolean or null"); err != nil {
			return nil, err
		}
	}
	a.Recreate, a.PreserveEphemeral, a.ReimageBootVolume = recreate != nil && *recreate, preserve != nil && *preserve, reimage != nil && *reimage
	if err := r.argInto("accel_uuids", &a.AccelUUIDs, "a list of strings"); err != nil {
		return nil, err
	}
	return a, nil
}

// RescueInstanceArgs are the arguments of rescue_instance (cast).
type RescueInstanceArgs struct {
	Instance       *Instance
	RescuePassword config.Secret // empty when null: nova-compute then makes one up
	RescueImageRef string        // "" when null: rescue with the instance's own image
	CleanShutdown  bool
}

// RescueInstance decodes the arguments of a rescue_instance request.
func (r *Request) RescueInstance() (*RescueInstanceArgs, error) {
	in, err := r.argInstance("instance")
	if err != nil {
		return nil, err
	}
	a := &RescueInstanceArgs{Instance: in, CleanShutdown: true}
	if a.RescuePassword, err = r.secretArg("rescue_password"); err != nil {
		return nil, err
	}
	var ref *string
	if err := r.argInto("rescue_image_ref", &ref, "a string or null"); err != nil {
		return nil, err
	}
	if ref != nil {
		a.RescueImageRef = *ref
	}
	if err := r.argInto("clean_shutdown", &a.CleanShutdown, "a boolean"); err != nil {
		return nil, err
	}
	return a, nil
}

// UnrescueInstanceArgs are the arguments of unrescue_instance (cast).
type UnrescueInstanceArgs struct {
	Instance *Instance
}

// UnrescueInstance decodes the arguments of an unrescue_instance request.
func (r *Request) UnrescueInstance() (*UnrescueInstanceArgs, error) {
	in, err := r.argInstance("instance")
	if err != nil {
		return nil, err
	}
	return &UnrescueInstanceArgs{Instance: in}, nil
}

// TerminateInstanceArgs are the arguments of terminate_instance (cast).
type TerminateInstanceArgs struct {
	Instance *Instance
	BDMs     json.RawMessage // BlockDeviceMappingList primitive, kept raw
}

// TerminateInstance decodes the arguments of a terminate_instance request.
func (r *Request) TerminateInstance() (*TerminateInstanceArgs, error) {
	in, err := r.argInstance("instance")
	if err != nil {
		return nil, err
	}
	return &TerminateInstanceArgs{Instance: in, BDMs: r.Args["bdms"]}, nil
}

// StartInstanceArgs are the arguments of start_instance (cast).
type StartInstanceArgs struct {
	Instance *Instance
}

// StartInstance decodes the arguments of a start_instance request.
func (r *Request) StartInstance() (*StartInstanceArgs, error) {
	in, err := r.argInstance("instance")
	if err != nil {
		return nil, err
	}
	return &StartInstanceArgs{Instance: in}, nil
}

// StopInstanceArgs are the arguments of stop_instance (cast, or call answered null).
type StopInstanceArgs struct {
	Instance      *Instance
	CleanShutdown bool // true when absent, nova's default
}

// StopInstance decodes the arguments of a stop_instance request.
func (r *Request) StopInstance() (*StopInstanceArgs, error) {
	in, err := r.argInstance("instance")
	if err != nil {
		return nil, err
	}
	a := &StopInstanceArgs{Instance: in, CleanShutdown: true}
	if err := r.argInto("clean_shutdown", &a.CleanShutdown, "a boolean"); err != nil {
		return nil, err
	}
	return a, nil
}

// RebootInstanceArgs are the arguments of reboot_instance (cast).
type RebootInstanceArgs struct {
	Instance        *Instance
	BlockDeviceInfo json.RawMessage // null from the API, kept raw
	RebootType      string          // RebootSoft or RebootHard
}

// RebootInstance decodes the arguments of a reboot_instance request; reboot_type
// must be SOFT or HARD.
func (r *Request) RebootInstance() (*RebootInstanceArgs, error) {
	in, err := r.argInstance("instance")
	if err != nil {
		return nil, err
	}
	a := &RebootInstanceArgs{Instance: in, BlockDeviceInfo: r.Args["block_device_info"]}
	if err := r.argInto("reboot_type", &a.RebootType, "a string"); err != nil {
		return nil, err
	}
	if a.RebootType != RebootSoft && a.RebootType != RebootHard {
		return nil, fieldErr("args.reboot_type", fmt.Sprintf("%q is not SOFT or HARD", a.RebootType), nil)
	}
	return a, nil
}

// GetConsoleOutputArgs are the arguments of get_console_output (call; the reply is a
// string).
type GetConsoleOutputArgs struct {
	Instance   *Instance
	TailLength *int // nil: the whole log
}

// GetConsoleOutput decodes the arguments of a get_console_output request.
func (r *Request) GetConsoleOutput() (*GetConsoleOutputArgs, error) {
	in, err := r.argInstance("instance")
	if err != nil {
		return nil, err
	}
	a := &GetConsoleOutputArgs{Instance: in}
	if err := r.argInto("tail_length", &a.TailLength, "an integer or null"); err != nil {
		return nil, err
	}
	if a.TailLength != nil && *a.TailLength < 0 {
		return nil, fieldErr("args.tail_length", "negative", nil)
	}
	return a, nil
}

// PingArgs are the arguments of the baseapi ping call.
type PingArgs struct {
	Arg json.RawMessage // echoed back; null when absent
}

// Ping decodes the arguments of a baseapi ping request.
func (r *Request) Ping() (*PingArgs, error) {
	a := &PingArgs{Arg: json.RawMessage("null")}
	if raw, ok := r.Args["arg"]; ok {
		a.Arg = raw
	}
	return a, nil
}

// PingResult is the result of a baseapi ping: {"service": "compute", "arg": ...}.
func PingResult(arg json.RawMessage) map[string]any {
	if len(arg) == 0 {
		arg = json.RawMessage("null")
	}
	return map[string]any{"service": "compute", "arg": arg}
}

// ExternalInstanceEventArgs are the arguments of external_instance_event (cast).
type ExternalInstanceEventArgs struct {
	Instances []*Instance
	Events    []*InstanceExternalEvent
}

// ExternalInstanceEvent decodes the arguments of an external_instance_event
// request: `instances` and `events` are lists of primitives.
func (r *Request) ExternalInstanceEvent() (*ExternalInstanceEventArgs, error) {
	a := &ExternalInstanceEventArgs{}
	var instances, events []json.RawMessage
	if err := r.argInto("instances", &instances, "a list"); err != nil {
		return nil, err
	}
	if err := r.argInto("events", &events, "a list"); err != nil {
		return nil, err
	}
	for i, raw := range instances {
		in, err := validInstance(raw)
		if err != nil {
			return nil, within(fmt.Sprintf("args.instances.%d", i), err)
		}
		a.Instances = append(a.Instances, in)
	}
	for i, raw := range events {
		o, err := validObjectPrimitive(raw)
		if err == nil {
			var ev *InstanceExternalEvent
			if ev, err = ExternalEventFromObject(o); err == nil {
				a.Events = append(a.Events, ev)
				continue
			}
		}
		return nil, within(fmt.Sprintf("args.events.%d", i), err)
	}
	return a, nil
}
