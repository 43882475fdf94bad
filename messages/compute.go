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
	in, err := DecodeInstance(raw)
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
	o, err := DecodeObject(raw)
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
	var pw *string
	if err := r.argInto("admin_password", &pw, "a string or null"); err != nil {
		return nil, err
	}
	if pw != nil {
		a.AdminPassword = config.NewSecret(*pw)
	}
	var files [][]string
	if err := r.argInto("injected_files", &files, "a list of [path, contents] pairs"); err != nil {
		return nil, err
	}
	for i, f := range files {
		if len(f) != 2 {
			return nil, fieldErr(fmt.Sprintf("args.injected_files.%d", i), "not a [path, contents] pair", nil)
		}
		a.InjectedFiles = append(a.InjectedFiles, [2]string{f[0], f[1]})
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
		in, err := DecodeInstance(raw)
		if err != nil {
			return nil, within(fmt.Sprintf("args.instances.%d", i), err)
		}
		a.Instances = append(a.Instances, in)
	}
	for i, raw := range events {
		o, err := DecodeObject(raw)
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
