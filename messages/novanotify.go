package messages

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Versions of the versioned notification payloads xcatbm emits (nova 2024.2+).
const (
	InstanceActionPayloadVersion = "1.9"
	InstanceCreatePayloadVersion = "1.13"
	// InstanceActionRebuildPayloadVersion and InstanceActionRescuePayloadVersion
	// follow InstanceActionPayload's: nova bumps them together with every field
	// InstancePayload gains.
	InstanceActionRebuildPayloadVersion = "1.10"
	InstanceActionRescuePayloadVersion  = "1.4"
	FlavorPayloadVersion                = "1.4"
	IPPayloadVersion                    = "1.0"
	ExceptionPayloadVersion             = "1.1"
	KeypairPayloadVersion               = "1.0"
)

// DefaultNotificationSource is the service a versioned publisher_id names.
const DefaultNotificationSource = "nova-compute"

// Fault is the exception an `.error` notification reports.
type Fault struct {
	Exception    string // exception class name, e.g. "BuildAbortException"
	Message      string
	FunctionName string // where it was raised; "" is null
	ModuleName   string // e.g. "xcatbm.worker"; "" is null
	Traceback    string
	Code         int // legacy payload `code`; 0 means 500
}

// NotifyInput is what NewInstanceNotifications needs to describe an instance event.
type NotifyInput struct {
	Instance *Instance // as nova sent it
	Host     string    // compute host: publisher ids "nova-compute:<host>", "compute.<host>"
	Action   string    // create, delete, power_on, power_off, reboot, shutdown
	Phase    string    // start, end, error

	// The instance's state as the notification reports it.
	VMState    string     // required: building, active, stopped, deleted, error, ...
	PowerState PowerState // new power state
	TaskState  string     // "" is null

	Fault     *Fault    // required for the error phase, else nil
	Time      time.Time // when it happened; the notification timestamp
	Context   *Context  // the request's context (whitelisted on encode)
	ImageName string    // image name, for the legacy create.start payload
	// ImageBaseURL is glance's endpoint; the legacy image_ref_url is
	// "<ImageBaseURL>/images/<image_ref>" (just the image ref when empty).
	ImageBaseURL string
	Source       string // service in the versioned publisher id; DefaultNotificationSource when ""
	// RescueImageRef is rescue_instance's rescue_image_ref ("" is null), for the
	// rescue payloads; RescueImageName the legacy payload's rescue_image_name.
	RescueImageRef  string
	RescueImageName string
}

var instanceEventPhases = map[string][]string{
	"create":    {"start", "end", "error"},
	"delete":    {"start", "end"},
	"power_on":  {"start", "end"},
	"power_off": {"start", "end"},
	"reboot":    {"start", "end", "error"},
	"shutdown":  {"start", "end"},
	"rebuild":   {"start", "end", "error"},
	"rescue":    {"start", "end"},
	"unrescue":  {"start", "end"},
}

func (in *NotifyInput) validate() error {
	switch {
	case in.Instance == nil || in.Instance.Object == nil:
		return fieldErr("Instance", "missing", nil)
	case in.Host == "":
		return fieldErr("Host", "empty", nil)
	case in.VMState == "":
		return fieldErr("VMState", "empty", nil)
	case !in.PowerState.Valid():
		return fieldErr("PowerState", fmt.Sprintf("%d out of range", in.PowerState), nil)
	case in.Time.IsZero():
		return fieldErr("Time", "zero", nil)
	}
	phases, ok := instanceEventPhases[in.Action]
	if !ok {
		return fieldErr("Action", fmt.Sprintf("%q is not an instance action xcatbm reports", in.Action), nil)
	}
	if !slices.Contains(phases, in.Phase) {
		return fieldErr("Phase", fmt.Sprintf("%q is not a phase of %s (%s)", in.Phase, in.Action, strings.Join(phases, ", ")), nil)
	}
	if (in.Phase == "error") != (in.Fault != nil) {
		return fieldErr("Fault", "must be set exactly for the error phase", nil)
	}
	return nil
}

// NewInstanceNotifications builds the pair of notifications nova-compute sends for
// an instance event: the versioned one (topic versioned_notifications, event
// "instance.<action>.<phase>", InstanceCreatePayload for create, else
// InstanceActionPayload) and the legacy one (topic notifications, event
// "compute.instance.<action>.<phase>", flat payload). Priority is ERROR for the error
// phase, INFO otherwise. Errors are *FieldError naming the NotifyInput field.
func NewInstanceNotifications(in NotifyInput) (versioned, legacy *Notification, err error) {
	if versioned, err = NewVersionedInstanceNotification(in); err != nil {
		return nil, nil, err
	}
	if legacy, err = NewLegacyInstanceNotification(in); err != nil {
		return nil, nil, err
	}
	return versioned, legacy, nil
}

// NewVersionedInstanceNotification builds the versioned notification of the pair
// NewInstanceNotifications builds.
func NewVersionedInstanceNotification(in NotifyInput) (*Notification, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	vp, err := versionedInstancePayload(&in)
	if err != nil {
		return nil, err
	}
	return NewNotification(VersionedTopic, in.source()+":"+in.Host,
		"instance."+in.Action+"."+in.Phase, in.priority(), vp, in.Time, in.Context)
}

// NewLegacyInstanceNotification builds the legacy notification of the pair
// NewInstanceNotifications builds.
func NewLegacyInstanceNotification(in NotifyInput) (*Notification, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	lp, err := legacyInstancePayload(&in)
	if err != nil {
		return nil, err
	}
	return NewNotification(LegacyTopic, "compute."+in.Host,
		"compute.instance."+in.Action+"."+in.Phase, in.priority(), lp, in.Time, in.Context)
}

// priority is ERROR for the error phase, INFO otherwise.
func (in *NotifyInput) priority() string {
	if in.Phase == "error" {
		return PriorityError
	}
	return PriorityInfo
}

// source is the versioned notification's publisher prefix.
func (in *NotifyInput) source() string {
	if in.Source == "" {
		return DefaultNotificationSource
	}
	return in.Source
}

// rawOr returns the raw JSON of data field key, or null when absent.
func rawOr(o *Object, key string) json.RawMessage {
	if o != nil {
		if raw, ok := o.Data[key]; ok {
			return raw
		}
	}
	return json.RawMessage("null")
}

func nullableString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func novaTimeOrNull(t *time.Time) any {
	if t == nil {
		return nil
	}
	return FormatNovaTime(*t)
}

// eventTimes returns launched_at, terminated_at and deleted_at as the instance has
// them after the event: create.end launches, delete.end terminates and deletes.
func eventTimes(in *NotifyInput) (launched, terminated, deleted *time.Time) {
	inst := in.Instance
	launched, terminated, deleted = inst.LaunchedAt, inst.TerminatedAt, inst.DeletedAt
	now := in.Time.UTC()
	if in.Action == "create" && in.Phase == "end" && launched == nil {
		launched = &now
	}
	if in.Action == "delete" && in.Phase == "end" {
		if terminated == nil {
			terminated = &now
		}
		if deleted == nil {
			deleted = &now
		}
	}
	return launched, terminated, deleted
}

func versionedInstancePayload(in *NotifyInput) (json.RawMessage, error) {
	inst := in.Instance
	o := inst.Object
	launched, terminated, deleted := eventTimes(in)
	flavor, err := flavorPayload(inst)
	if err != nil {
		return nil, err
	}
	ips := []json.RawMessage{}
	if !(in.Action == "delete" && in.Phase == "end") {
		if ips, err = ipPayloads(inst.NetworkInfo); err != nil {
			return nil, err
		}
	}
	autoDisk := "MANUAL"
	if inst.AutoDiskConfig {
		autoDisk = "AUTO"
	}
	metadata := rawOr(o, "metadata")
	if string(metadata) == "null" {
		metadata = json.RawMessage("{}")
	}
	var fault json.RawMessage
	if in.Fault != nil {
		f := newPayloadData(5)
		f.set("exception", in.Fault.Exception)
		f.set("exception_message", in.Fault.Message)
		f.set("function_name", nullableString(in.Fault.FunctionName))
		f.set("module_name", nullableString(in.Fault.ModuleName))
		f.set("traceback", in.Fault.Traceback)
		if fault, err = f.object("ExceptionPayload", ExceptionPayloadVersion); err != nil {
			return nil, err
		}
	}
	data := newPayloadData(44)
	data.set("uuid", inst.UUID)
	for _, k := range [...]struct{ payload, instance string }{
		{"user_id", "user_id"}, {"tenant_id", "project_id"}, {"reservation_id", "reservation_id"},
		{"display_name", "display_name"}, {"display_description", "display_description"},
		{"host_name", "hostname"}, {"host", "host"}, {"node", "node"}, {"os_type", "os_type"},
		{"architecture", "architecture"}, {"availability_zone", "availability_zone"},
		{"image_uuid", "image_ref"}, {"key_name", "key_name"}, {"kernel_id", "kernel_id"}, {"ramdisk_id", "ramdisk_id"},
	} {
		data.set(k.payload, rawOr(o, k.instance))
	}
	data.set("flavor", flavor)
	data.set("created_at", novaTimeOrNull(inst.CreatedAt))
	data.set("launched_at", novaTimeOrNull(launched))
	data.set("terminated_at", novaTimeOrNull(terminated))
	data.set("deleted_at", novaTimeOrNull(deleted))
	data.set("updated_at", FormatNovaTime(in.Time))
	data.set("state", in.VMState)
	data.set("power_state", in.PowerState.NotificationName())
	data.set("task_state", nullableString(in.TaskState))
	data.set("progress", inst.Progress)
	data.set("ip_addresses", ips)
	data.set("block_devices", []any{})
	data.set("metadata", metadata)
	data.set("locked", inst.Locked)
	data.set("auto_disk_config", autoDisk)
	data.set("request_id", nullableString(in.Context.RequestID()))
	data.set("action_initiator_user", nullableString(in.Context.UserID()))
	data.set("action_initiator_project", nullableString(in.Context.ProjectID()))
	data.set("locked_reason", nullableString(inst.LockedReason))
	data.set("shares", []any{})
	data.set("fault", fault)
	switch in.Action {
	case "create":
	case "rebuild":
		data.set("trusted_image_certificates", nil)
		return data.object("InstanceActionRebuildPayload", InstanceActionRebuildPayloadVersion)
	case "rescue":
		data.set("rescue_image_ref", nullableString(in.RescueImageRef))
		return data.object("InstanceActionRescuePayload", InstanceActionRescuePayloadVersion)
	default:
		return data.object("InstanceActionPayload", InstanceActionPayloadVersion)
	}
	keypairs, err := keypairPayloads(inst)
	if err != nil {
		return nil, err
	}
	tags := inst.Tags
	if tags == nil {
		tags = []string{}
	}
	data.set("keypairs", keypairs)
	data.set("tags", tags)
	data.set("trusted_image_certificates", nil)
	data.set("instance_name", fmt.Sprintf("instance-%08x", inst.ID))
	return data.object("InstanceCreatePayload", InstanceCreatePayloadVersion)
}

var flavorPayloadKeys = []string{
	"flavorid", "name", "memory_mb", "vcpus", "root_gb", "ephemeral_gb", "swap",
	"rxtx_factor", "vcpu_weight", "disabled", "is_public", "extra_specs", "projects", "description",
}

// flavorPayload returns the FlavorPayload of the instance's flavor, nil without one.
func flavorPayload(inst *Instance) (json.RawMessage, error) {
	if inst.Flavor == nil {
		return nil, nil
	}
	data := newPayloadData(len(flavorPayloadKeys) + 1)
	for _, k := range flavorPayloadKeys {
		data.set(k, rawOr(inst.Flavor.Object, k))
	}
	if inst.Flavor.ExtraSpecs == nil {
		data.set("extra_specs", map[string]string{})
	}
	return data.object("FlavorPayload", FlavorPayloadVersion)
}

// ipPayloads lists IpPayload objects from network_info, one per fixed IP of each VIF.
func ipPayloads(vifs []VIF) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	for _, vif := range vifs {
		meta := vif.Meta
		if meta == nil {
			meta = map[string]any{}
		}
		for _, sn := range vif.Network.Subnets {
			for _, ip := range sn.IPs {
				version := ip.Version
				if version == 0 {
					version = sn.Version
				}
				data := newPayloadData(7)
				data.set("label", vif.Network.Label)
				data.set("mac", vif.Address)
				data.set("meta", meta)
				data.set("port_uuid", vif.ID)
				data.set("version", version)
				data.set("address", ip.Address)
				data.set("device_name", vif.DevName)
				p, err := data.object("IpPayload", IPPayloadVersion)
				if err != nil {
					return nil, err
				}
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func keypairPayloads(inst *Instance) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	kl, err := inst.Object.Child("keypairs")
	if err != nil || kl == nil {
		return out, within("keypairs", err)
	}
	items, err := kl.Objects()
	if err != nil {
		return nil, within("keypairs", err)
	}
	for _, kp := range items {
		data := newPayloadData(5)
		for _, k := range []string{"user_id", "name", "public_key", "fingerprint", "type"} {
			data.set(k, rawOr(kp, k))
		}
		p, err := data.object("KeypairPayload", KeypairPayloadVersion)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// legacy (unversioned) payload, nova/notifications/base.py info_from_instance.

// legacyTime is nova's null_safe_isotime: strtime "2026-11-25T03:16:22.000000" or "".
func legacyTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000")
}

// legacyCreatedAt is Python's str() of an aware datetime: "2026-11-25 03:16:20+00:00".
func legacyCreatedAt(t *time.Time) string {
	if t == nil {
		return ""
	}
	u := t.UTC().Truncate(time.Microsecond)
	if u.Nanosecond() == 0 {
		return u.Format("2006-01-02 15:04:05") + "+00:00"
	}
	return u.Format("2006-01-02 15:04:05.000000") + "+00:00"
}

func legacyInstancePayload(in *NotifyInput) (map[string]any, error) {
	inst := in.Instance
	o := inst.Object
	launched, terminated, deleted := eventTimes(in)
	var instanceType, flavorID any
	if inst.Flavor != nil {
		instanceType, flavorID = inst.Flavor.Name, inst.Flavor.FlavorID
	}
	imageRef := inst.ImageRef
	imageURL := imageRef
	if in.ImageBaseURL != "" {
		imageURL = strings.TrimRight(in.ImageBaseURL, "/") + "/images/" + imageRef
	}
	imageMeta := map[string]string{}
	for k, v := range inst.SystemMetadata {
		if name, ok := strings.CutPrefix(k, "image_"); ok {
			imageMeta[name] = v
		}
	}
	metadata := maps.Clone(inst.Metadata)
	if metadata == nil {
		metadata = map[string]string{}
	}
	var progress any = ""
	if inst.Progress != 0 {
		progress = inst.Progress
	}
	p := map[string]any{
		"tenant_id":          rawOr(o, "project_id"),
		"user_id":            rawOr(o, "user_id"),
		"instance_id":        inst.UUID,
		"display_name":       rawOr(o, "display_name"),
		"reservation_id":     rawOr(o, "reservation_id"),
		"hostname":           rawOr(o, "hostname"),
		"instance_type":      instanceType,
		"instance_type_id":   rawOr(o, "instance_type_id"),
		"instance_flavor_id": flavorID,
		"architecture":       rawOr(o, "architecture"),
		"memory_mb":          inst.MemoryMB,
		"disk_gb":            inst.RootGB + inst.EphemeralGB,
		"vcpus":              inst.VCPUs,
		"root_gb":            inst.RootGB,
		"ephemeral_gb":       inst.EphemeralGB,
		"host":               rawOr(o, "host"),
		"node":               rawOr(o, "node"),
		"availability_zone":  rawOr(o, "availability_zone"),
		"cell_name":          "",
		"created_at":         legacyCreatedAt(inst.CreatedAt),
		"terminated_at":      legacyTime(terminated),
		"deleted_at":         legacyTime(deleted),
		"launched_at":        legacyTime(launched),
		"image_ref_url":      imageURL,
		"os_type":            rawOr(o, "os_type"),
		"kernel_id":          rawOr(o, "kernel_id"),
		"ramdisk_id":         rawOr(o, "ramdisk_id"),
		"state":              in.VMState,
		"state_description":  in.TaskState,
		"progress":           progress,
		"access_ip_v4":       rawOr(o, "access_ip_v4"),
		"access_ip_v6":       rawOr(o, "access_ip_v6"),
		"metadata":           metadata,
		"image_meta":         imageMeta,
	}
	// What nova-compute adds per event: extra_usage_info, and fixed_ips where it
	// passes the network info.
	event := in.Action + "." + in.Phase
	switch event {
	case "create.start", "rebuild.start", "rebuild.end", "rebuild.error":
		p["image_name"] = in.ImageName
	case "rescue.start", "rescue.end":
		p["rescue_image_name"] = in.RescueImageName
	}
	switch event {
	case "create.end", "rebuild.end", "rescue.start", "rescue.end", "unrescue.start", "unrescue.end":
		fixed, err := legacyFixedIPs(inst.NetworkInfo)
		if err != nil {
			return nil, err
		}
		p["fixed_ips"] = fixed
	}
	if event == "create.end" {
		p["message"] = "Success"
	}
	if in.Fault != nil {
		code := in.Fault.Code
		if code == 0 {
			code = 500
		}
		p["message"] = in.Fault.Message
		p["exception"] = in.Fault.Exception
		p["code"] = code
	}
	return p, nil
}

// legacyFixedIPs is nova's network_info.fixed_ips() flattened with the VIF's
// label, MAC and vif type, as the legacy payload's fixed_ips.
func legacyFixedIPs(vifs []VIF) ([]map[string]any, error) {
	out := []map[string]any{}
	for _, vif := range vifs {
		for _, sn := range vif.Network.Subnets {
			for _, ip := range sn.IPs {
				meta := ip.Meta
				if meta == nil {
					meta = map[string]any{}
				}
				floating := ip.FloatingIPs
				if floating == nil {
					floating = []IPAddress{}
				}
				version := ip.Version
				if version == 0 {
					version = sn.Version
				}
				out = append(out, map[string]any{
					"address":      ip.Address,
					"type":         ip.Type,
					"version":      version,
					"meta":         meta,
					"floating_ips": floating,
					"label":        vif.Network.Label,
					"vif_mac":      vif.Address,
				})
			}
		}
	}
	return out, nil
}
