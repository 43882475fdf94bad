package messages

import (
	"encoding/json"
	"fmt"
	"time"

	"xcatbm/internal/config"
)

// PowerState is nova's integer power state of an instance (nova.compute.power_state).
type PowerState int

// nova's power states; other values are invalid.
const (
	NoState   PowerState = 0
	Running   PowerState = 1
	Paused    PowerState = 3
	Shutdown  PowerState = 4
	Crashed   PowerState = 6
	Suspended PowerState = 7
)

var powerStateNames = map[PowerState]string{
	NoState: "nostate", Running: "running", Paused: "paused",
	Shutdown: "shutdown", Crashed: "crashed", Suspended: "suspended",
}

// ParsePowerState returns v as a PowerState, or an error if nova has no such state.
func ParsePowerState(v int64) (PowerState, error) {
	p := PowerState(v)
	if int64(p) != v || !p.Valid() {
		return 0, fmt.Errorf("power state %d out of range (0,1,3,4,6,7)", v)
	}
	return p, nil
}

// Valid reports whether p is one of nova's power states.
func (p PowerState) Valid() bool { _, ok := powerStateNames[p]; return ok }

// String returns nova's name of p ("nostate", "running", ...).
func (p PowerState) String() string {
	if n, ok := powerStateNames[p]; ok {
		return n
	}
	return fmt.Sprintf("PowerState(%d)", int(p))
}

// NotificationName returns p as versioned notifications spell it
// (fields.InstancePowerState): as String, except that NoState is "pending".
func (p PowerState) NotificationName() string {
	if p == NoState {
		return "pending"
	}
	return p.String()
}

// Instance is a typed view of a nova Instance primitive (version 2.x). Object is
// the primitive as received; send it back unchanged where nova expects the instance.
type Instance struct {
	Object *Object
	// raw is the primitive Object was decoded from, when it was (DecodeInstance):
	// EncodeWithoutSecrets returns it as it is when it holds no secret.
	raw json.RawMessage

	ID                 int64
	UUID               string
	Hostname           string
	DisplayName        string
	DisplayDescription string
	Host               string
	Node               string
	ImageRef           string
	KernelID           string
	RamdiskID          string
	KeyName            string
	OSType             string
	Architecture       string
	VMState            string // building, active, stopped, deleted, error, ...
	PowerState         PowerState
	TaskState          string // "" when null
	UserID             string
	ProjectID          string
	ReservationID      string
	AvailabilityZone   string
	InstanceTypeID     int64
	MemoryMB           int64
	VCPUs              int64
	RootGB             int64
	EphemeralGB        int64
	Progress           int64
	Locked             bool
	LockedReason       string // from system_metadata "locked_reason"
	AutoDiskConfig     bool
	LaunchedAt         *time.Time
	TerminatedAt       *time.Time
	CreatedAt          *time.Time
	UpdatedAt          *time.Time
	DeletedAt          *time.Time

	Flavor         *Flavor           // nil when not loaded
	Metadata       map[string]string // user metadata
	SystemMetadata map[string]string
	NetworkInfo    []VIF    // parsed info_cache.network_info
	Tags           []string // names from the TagList, nil when not loaded

	// What the tenant asked to find on the server (the config drive's inputs).

	// UserData is the user data as nova sends it: base64 text, at most 64 KiB
	// decoded; empty when null. It is a secret: it prints as config.Redacted.
	UserData config.Secret
	// KeyData is the public key of the instance's key pair (key_name), as text.
	KeyData string
	// Keypairs are the instance's key pairs (the KeyPairList), nil when not loaded.
	Keypairs []KeyPair
	// LaunchIndex is the instance's index among the servers of one request.
	LaunchIndex int64
	// ConfigDrive is nova's config_drive field: "True" when the user asked for a
	// config drive, "" when not (an image ID in old nova).
	ConfigDrive string
	// EC2IDs are the instance's EC2-style identifiers, nil when not loaded.
	EC2IDs *EC2IDs
	// RootDeviceName, DefaultEphemeralDevice and DefaultSwapDevice are the guest
	// device names nova recorded ("/dev/sda"); empty when null.
	RootDeviceName         string
	DefaultEphemeralDevice string
	DefaultSwapDevice      string
	// SecurityGroups are the names in the instance's SecurityGroupList, nil when
	// not loaded.
	SecurityGroups []string
}

// KeyPair is one key pair of an instance (KeyPair 1.4).
type KeyPair struct {
	Name      string
	Type      string // "ssh" or "x509"
	PublicKey string
	UserID    string
}

// EC2IDs are an instance's EC2-style identifiers (EC2Ids 1.0).
type EC2IDs struct {
	InstanceID string // i-00000001
	AMIID      string // ami-00000001
	KernelID   string // "" when null
	RamdiskID  string // "" when null
}

// InstanceFromObject builds the typed view of an Instance primitive. Errors are
// *FieldError naming the data key: a missing uuid, a power_state out of range, a
// field of the wrong kind.
func InstanceFromObject(o *Object) (*Instance, error) {
	if o.Name != "Instance" {
		return nil, fieldErr(objName, fmt.Sprintf("%q is not Instance", o.Name), nil)
	}
	in := &Instance{Object: o}
	var err error
	str := func(key string, dst *string) {
		if err == nil {
			*dst, err = o.Str(key)
		}
	}
	num := func(key string, dst *int64) {
		if err == nil {
			*dst, err = o.Int(key)
		}
	}
	tm := func(key string, dst **time.Time) {
		if err == nil {
			*dst, err = o.Time(key)
		}
	}
	str("uuid", &in.UUID)
	str("hostname", &in.Hostname)
	str("display_name", &in.DisplayName)
	str("display_description", &in.DisplayDescription)
	str("host", &in.Host)
	str("node", &in.Node)
	str("image_ref", &in.ImageRef)
	str("kernel_id", &in.KernelID)
	str("ramdisk_id", &in.RamdiskID)
	str("key_name", &in.KeyName)
	str("os_type", &in.OSType)
	str("architecture", &in.Architecture)
	str("vm_state", &in.VMState)
	str("task_state", &in.TaskState)
	str("user_id", &in.UserID)
	str("project_id", &in.ProjectID)
	str("reservation_id", &in.ReservationID)
	str("availability_zone", &in.AvailabilityZone)
	str("key_data", &in.KeyData)
	str("config_drive", &in.ConfigDrive)
	str("root_device_name", &in.RootDeviceName)
	str("default_ephemeral_device", &in.DefaultEphemeralDevice)
	str("default_swap_device", &in.DefaultSwapDevice)
	var userData string
	str("user_data", &userData)
	in.UserData = config.NewSecret(userData)
	num("launch_index", &in.LaunchIndex)
	num("id", &in.ID)
	num("instance_type_id", &in.InstanceTypeID)
	num("memory_mb", &in.MemoryMB)
	num("vcpus", &in.VCPUs)
	num("root_gb", &in.RootGB)
	num("ephemeral_gb", &in.EphemeralGB)
	num("progress", &in.Progress)
	tm("launched_at", &in.LaunchedAt)
	tm("terminated_at", &in.TerminatedAt)
	tm("created_at", &in.CreatedAt)
	tm("updated_at", &in.UpdatedAt)
	tm("deleted_at", &in.DeletedAt)
	if err != nil {
		return nil, err
	}
	if in.UUID == "" {
		return nil, fieldErr("uuid", "missing", nil)
	}
	var ps int64
	if ps, err = o.Int("power_state"); err != nil {
		return nil, err
	}
	if in.PowerState, err = ParsePowerState(ps); err != nil {
		return nil, fieldErr("power_state", "out of range", err)
	}
	if in.Locked, err = o.Bool("locked"); err != nil {
		return nil, err
	}
	if in.AutoDiskConfig, err = o.Bool("auto_disk_config"); err != nil {
		return nil, err
	}
	if in.Metadata, err = o.StringMap("metadata"); err != nil {
		return nil, err
	}
	if in.SystemMetadata, err = o.StringMap("system_metadata"); err != nil {
		return nil, err
	}
	in.LockedReason = in.SystemMetadata["locked_reason"]
	if fo, err := o.Child("flavor"); err != nil {
		return nil, err
	} else if fo != nil {
		if in.Flavor, err = FlavorFromObject(fo); err != nil {
			return nil, within("flavor", err)
		}
	}
	if ic, err := o.Child("info_cache"); err != nil {
		return nil, err
	} else if ic != nil {
		if in.NetworkInfo, err = ParseNetworkInfo(ic.Data["network_info"]); err != nil {
			return nil, within("info_cache.network_info", err)
		}
	}
	if err := in.tenantObjects(o); err != nil {
		return nil, err
	}
	if tl, err := o.Child("tags"); err != nil {
		return nil, err
	} else if tl != nil {
		tags, err := tl.Objects()
		if err != nil {
			return nil, within("tags", err)
		}
		in.Tags = make([]string, 0, len(tags))
		for i, t := range tags {
			name, err := t.Str("tag")
			if err != nil {
				return nil, within(fmt.Sprintf("tags.%d", i), err)
			}
			in.Tags = append(in.Tags, name)
		}
	}
	return in, nil
}

// tenantObjects reads the nested objects the config drive needs: keypairs, ec2_ids
// and security_groups.
func (in *Instance) tenantObjects(o *Object) error {
	if kl, err := o.Child("keypairs"); err != nil {
		return err
	} else if kl != nil {
		items, err := kl.Objects()
		if err != nil {
			return within("keypairs", err)
		}
		in.Keypairs = make([]KeyPair, 0, len(items))
		for i, it := range items {
			var kp KeyPair
			for _, s := range []struct {
				key string
				dst *string
			}{{"name", &kp.Name}, {"type", &kp.Type}, {"public_key", &kp.PublicKey}, {"user_id", &kp.UserID}} {
				if *s.dst, err = it.Str(s.key); err != nil {
					return within(fmt.Sprintf("keypairs.%s.objects.%d", objData, i), err)
				}
			}
			in.Keypairs = append(in.Keypairs, kp)
		}
	}
	if eo, err := o.Child("ec2_ids"); err != nil {
		return err
	} else if eo != nil {
		ids := &EC2IDs{}
		for _, s := range []struct {
			key string
			dst *string
		}{{"instance_id", &ids.InstanceID}, {"ami_id", &ids.AMIID}, {"kernel_id", &ids.KernelID}, {"ramdisk_id", &ids.RamdiskID}} {
			if *s.dst, err = eo.Str(s.key); err != nil {
				return within("ec2_ids", err)
			}
		}
		in.EC2IDs = ids
	}
	if sl, err := o.Child("security_groups"); err != nil {
		return err
	} else if sl != nil {
		items, err := sl.Objects()
		if err != nil {
			return within("security_groups", err)
		}
		in.SecurityGroups = make([]string, 0, len(items))
		for i, it := range items {
			name, err := it.Str("name")
			if err != nil {
				return within(fmt.Sprintf("security_groups.%s.objects.%d", objData, i), err)
			}
			in.SecurityGroups = append(in.SecurityGroups, name)
		}
	}
	return nil
}

// DecodeInstance decodes an Instance primitive and builds its typed view. The
// Instance keeps raw (EncodeWithoutSecrets may return it): raw must not be changed
// afterwards.
func DecodeInstance(raw []byte) (*Instance, error) {
	o, err := DecodeObject(raw)
	if err != nil {
		return nil, err
	}
	return instanceFrom(o, raw)
}

// validInstance is DecodeInstance for raw known to be valid JSON (a request's
// argument).
func validInstance(raw []byte) (*Instance, error) {
	o, err := validObjectPrimitive(raw)
	if err != nil {
		return nil, err
	}
	return instanceFrom(o, raw)
}

// instanceFrom builds the typed view of o, decoded from raw, and records raw.
func instanceFrom(o *Object, raw []byte) (*Instance, error) {
	in, err := InstanceFromObject(o)
	if err != nil {
		return nil, err
	}
	in.raw = raw
	return in, nil
}

// EncodeWithoutSecrets returns the JSON of the instance's primitive with its secret
// fields null (WithoutInstanceSecrets): the primitive as it was decoded when none of
// them holds anything, else the object encoded again. It is for an Instance whose
// Object was not changed after it was decoded.
func (in *Instance) EncodeWithoutSecrets() ([]byte, error) {
	if in.raw != nil && !hasSecrets(in.Object) {
		return in.raw, nil
	}
	return WithoutInstanceSecrets(in.Object).MarshalJSON()
}

// hasSecrets reports whether a secret field of an Instance primitive is set.
func hasSecrets(o *Object) bool {
	for _, k := range InstanceSecretFields {
		if raw, ok := o.Data[k]; ok && string(raw) != "null" {
			return true
		}
	}
	return false
}

// Flavor is a typed view of a nova Flavor primitive (1.2).
type Flavor struct {
	Object      *Object
	ID          int64
	Name        string
	FlavorID    string
	MemoryMB    int64
	VCPUs       int64
	RootGB      int64
	EphemeralGB int64
	Swap        int64
	RXTXFactor  float64
	VCPUWeight  int64
	Disabled    bool
	IsPublic    bool
	Description string
	ExtraSpecs  map[string]string
}

// FlavorFromObject builds the typed view of a Flavor primitive.
func FlavorFromObject(o *Object) (*Flavor, error) {
	if o.Name != "Flavor" {
		return nil, fieldErr(objName, fmt.Sprintf("%q is not Flavor", o.Name), nil)
	}
	f := &Flavor{Object: o}
	var err error
	for _, s := range []struct {
		key string
		dst *string
	}{{"name", &f.Name}, {"flavorid", &f.FlavorID}, {"description", &f.Description}} {
		if *s.dst, err = o.Str(s.key); err != nil {
			return nil, err
		}
	}
	for _, n := range []struct {
		key string
		dst *int64
	}{
		{"id", &f.ID}, {"memory_mb", &f.MemoryMB}, {"vcpus", &f.VCPUs}, {"root_gb", &f.RootGB},
		{"ephemeral_gb", &f.EphemeralGB}, {"swap", &f.Swap}, {"vcpu_weight", &f.VCPUWeight},
	} {
		if *n.dst, err = o.Int(n.key); err != nil {
			return nil, err
		}
	}
	if f.RXTXFactor, err = o.Float("rxtx_factor"); err != nil {
		return nil, err
	}
	if f.Disabled, err = o.Bool("disabled"); err != nil {
		return nil, err
	}
	if f.IsPublic, err = o.Bool("is_public"); err != nil {
		return nil, err
	}
	if f.ExtraSpecs, err = o.StringMap("extra_specs"); err != nil {
		return nil, err
	}
	return f, nil
}

// VIF is one virtual interface of an instance's network_info (nova.network.model).
type VIF struct {
	ID      string         `json:"id"`      // neutron port id
	Address string         `json:"address"` // MAC
	DevName string         `json:"devname"`
	Type    string         `json:"type"`
	Active  bool           `json:"active"`
	Meta    map[string]any `json:"meta"`
	Network VIFNetwork     `json:"network"`
}

// VIFNetwork is the network a VIF is on.
type VIFNetwork struct {
	ID      string         `json:"id"`
	Label   string         `json:"label"`
	Bridge  string         `json:"bridge"`
	Subnets []Subnet       `json:"subnets"`
	Meta    map[string]any `json:"meta"`
}

// Subnet is a subnet of a VIF's network with the VIF's addresses on it.
type Subnet struct {
	CIDR    string      `json:"cidr"`
	Version int         `json:"version"`
	Gateway IPAddress   `json:"gateway"`
	IPs     []FixedIP   `json:"ips"`
	DNS     []IPAddress `json:"dns"`
	Routes  []Route     `json:"routes"`
	// Meta holds the subnet's extra facts: dhcp_server (the address of Neutron's
	// DHCP port on it) and ipv6_address_mode, when set.
	Meta map[string]any `json:"meta"`
}

// Route is a static route of a subnet (a Neutron host route).
type Route struct {
	CIDR      string         `json:"cidr"`
	Gateway   IPAddress      `json:"gateway"`
	Interface string         `json:"interface"`
	Meta      map[string]any `json:"meta"`
}

// IPAddress is an address with its type and IP version.
type IPAddress struct {
	Address string         `json:"address"`
	Type    string         `json:"type"`
	Version int            `json:"version"`
	Meta    map[string]any `json:"meta"`
}

// FixedIP is a fixed address of a VIF with the floating addresses mapped to it.
type FixedIP struct {
	IPAddress
	FloatingIPs []IPAddress `json:"floating_ips"`
}

// ParseNetworkInfo parses an InstanceInfoCache network_info value: a JSON string
// holding the list of VIFs (as nova sends it), a list directly, or null/absent
// (no VIFs).
func ParseNetworkInfo(raw json.RawMessage) ([]VIF, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		if text == "" {
			return nil, nil
		}
		raw = json.RawMessage(text)
	}
	var vifs []VIF
	if err := json.Unmarshal(raw, &vifs); err != nil {
		return nil, fieldErr("", "not a list of VIFs", err)
	}
	return vifs, nil
}

// ImageMeta is the `image` argument of build_and_run_instance: a plain dict of the
// glance image (not a NovaObject).
type ImageMeta struct {
	Raw             json.RawMessage // the dict as received
	ID              string
	Name            string
	Status          string
	DiskFormat      string
	ContainerFormat string
	Owner           string
	Checksum        string
	MinDisk         int64
	MinRAM          int64
	Size            int64
	Properties      map[string]string // custom properties; non-strings as JSON text
}

// Image properties naming the xCAT osimage to deploy.
const (
	XCATImageProperty       = "xcat_image_name"
	LegacyXCATImageProperty = "xcat_osimage"
)

// XCATImageName returns the xCAT osimage the image stands for: its property
// xcat_image_name, else xcat_osimage; "" when it has neither.
func (m *ImageMeta) XCATImageName() string {
	if v := m.Properties[XCATImageProperty]; v != "" {
		return v
	}
	return m.Properties[LegacyXCATImageProperty]
}

// DecodeImageMeta decodes the `image` dict.
func DecodeImageMeta(raw json.RawMessage) (*ImageMeta, error) {
	d, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	o := &Object{Data: d}
	m := &ImageMeta{Raw: raw}
	for _, s := range []struct {
		key string
		dst *string
	}{
		{"id", &m.ID}, {"name", &m.Name}, {"status", &m.Status}, {"disk_format", &m.DiskFormat},
		{"container_format", &m.ContainerFormat}, {"owner", &m.Owner}, {"checksum", &m.Checksum},
	} {
		if *s.dst, err = o.Str(s.key); err != nil {
			return nil, err
		}
	}
	for _, n := range []struct {
		key string
		dst *int64
	}{{"min_disk", &m.MinDisk}, {"min_ram", &m.MinRAM}, {"size", &m.Size}} {
		if *n.dst, err = o.Int(n.key); err != nil {
			return nil, err
		}
	}
	if m.Properties, err = o.StringMap("properties"); err != nil {
		return nil, err
	}
	return m, nil
}

// NetworkRequest is one requested network of a build (NetworkRequest 1.3).
type NetworkRequest struct {
	NetworkID     string
	Address       string
	PortID        string
	PCIRequestID  string
	Tag           string
	ARQUUID       string
	DeviceProfile string
}

// NetworkRequestsFromObject reads a NetworkRequestList primitive.
func NetworkRequestsFromObject(o *Object) ([]NetworkRequest, error) {
	if o.Name != "NetworkRequestList" {
		return nil, fieldErr(objName, fmt.Sprintf("%q is not NetworkRequestList", o.Name), nil)
	}
	items, err := o.Objects()
	if err != nil {
		return nil, err
	}
	out := make([]NetworkRequest, 0, len(items))
	for i, it := range items {
		var nr NetworkRequest
		for _, s := range []struct {
			key string
			dst *string
		}{
			{"network_id", &nr.NetworkID}, {"address", &nr.Address}, {"port_id", &nr.PortID},
			{"pci_request_id", &nr.PCIRequestID}, {"tag", &nr.Tag}, {"arq_uuid", &nr.ARQUUID},
			{"device_profile", &nr.DeviceProfile},
		} {
			if *s.dst, err = it.Str(s.key); err != nil {
				return nil, within(fmt.Sprintf("%s.objects.%d", objData, i), err)
			}
		}
		out = append(out, nr)
	}
	return out, nil
}

// InstanceExternalEvent is an event neutron (or cinder) reports about an instance,
// e.g. network-vif-plugged.
type InstanceExternalEvent struct {
	Object       *Object
	InstanceUUID string
	Name         string // network-vif-plugged, network-changed, ...
	Status       string // completed, failed, in-progress
	Tag          string // usually the port id
	Data         json.RawMessage
}

// ExternalEventFromObject reads an InstanceExternalEvent primitive.
func ExternalEventFromObject(o *Object) (*InstanceExternalEvent, error) {
	if o.Name != "InstanceExternalEvent" {
		return nil, fieldErr(objName, fmt.Sprintf("%q is not InstanceExternalEvent", o.Name), nil)
	}
	ev := &InstanceExternalEvent{Object: o, Data: o.Data["data"]}
	var err error
	for _, s := range []struct {
		key string
		dst *string
	}{{"instance_uuid", &ev.InstanceUUID}, {"name", &ev.Name}, {"status", &ev.Status}, {"tag", &ev.Tag}} {
		if *s.dst, err = o.Str(s.key); err != nil {
			return nil, err
		}
	}
	if ev.InstanceUUID == "" {
		return nil, fieldErr("instance_uuid", "missing", nil)
	}
	if ev.Name == "" {
		return nil, fieldErr("name", "missing", nil)
	}
	return ev, nil
}

// InstanceSecretFields are the Instance data keys whose values are secrets: the
// user data. They must not be stored or logged; see WithoutInstanceSecrets.
var InstanceSecretFields = []string{"user_data"}

// WithoutInstanceSecrets returns a copy of an Instance primitive whose secret fields
// (InstanceSecretFields) are null, for storing or logging; o is not changed. A
// field absent from o stays absent.
func WithoutInstanceSecrets(o *Object) *Object {
	c := o.Clone()
	for _, k := range InstanceSecretFields {
		if _, ok := c.Data[k]; ok {
			c.Data[k] = json.RawMessage("null")
		}
	}
	return c
}
