package configdrive

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// The OpenStack metadata versions nova 26 writes, oldest first (nova's
// api/metadata/base.py OPENSTACK_VERSIONS), then "latest", which holds the newest.
var openstackVersions = []string{
	"2012-08-10", // Folsom
	"2013-04-04", // Grizzly: random_seed
	"2013-10-17", // Havana: vendor_data.json
	"2015-10-15", // Liberty: network_data.json, project_id
	"2016-06-30", // Newton: devices
	"2016-10-06", // Newton: vendor_data2.json
	"2017-02-22", // Ocata
	"2018-08-27", // Rocky
	"2020-10-14", // Victoria: dedicated_cpus
	"latest",
}

// ec2Versions are the EC2 metadata versions a config drive holds: nova's
// [api]config_drive_skip_versions skips every older one by default.
var ec2Versions = []string{"2009-04-04", "latest"}

// atLeast reports whether OpenStack metadata version v includes what appeared in
// version since.
func atLeast(v, since string) bool {
	return slices.Index(openstackVersions, v) >= slices.Index(openstackVersions, since)
}

// DefaultDHCPDomain is nova's default [api]dhcp_domain.
const DefaultDHCPDomain = "novalocal"

// Options are the compute host's settings that shape the drive.
type Options struct {
	// DHCPDomain is nova's [api]dhcp_domain: the drive's hostname is the
	// instance's hostname + "." + DHCPDomain; "" for the bare hostname. nova's
	// default is DefaultDHCPDomain.
	DHCPDomain string
	// Rand is where each meta_data.json's random_seed (512 bytes) comes from;
	// nil is crypto/rand.
	Rand io.Reader
}

// File is one file of the drive. Its String and Format forms give the path and size
// only, never the content.
type File struct {
	// Path is relative to the drive's root, e.g. "openstack/latest/meta_data.json".
	Path string
	// Data is the content.
	Data []byte
	// Secret is true when Data holds user data or the admin password.
	Secret bool
}

// String implements fmt.Stringer without the content.
func (f File) String() string { return fmt.Sprintf("%s (%d bytes)", f.Path, len(f.Data)) }

// Format implements fmt.Formatter so that every verb prints String.
func (f File) Format(s fmt.State, _ rune) { _, _ = io.WriteString(s, f.String()) }

// Layout returns every file of the instance's config drive, in nova's order: the
// EC2 tree (ec2/2009-04-04 and ec2/latest: meta-data.json, user-data), then per
// OpenStack version (openstack/<date> and openstack/latest) meta_data.json,
// user_data, vendor_data.json, network_data.json and vendor_data2.json as far as
// the version has them. The bytes are those nova's metadata code writes (Python's
// JSON form); vendor data is empty ({}, {"static": {}}), as nova writes it without
// a vendordata_jsonfile_path. net may be nil (no network: network_data.json {}).
func Layout(in *Instance, net *Network, opts Options) ([]File, error) {
	ec2, err := ec2Files(in, net, opts, true)
	if err != nil {
		return nil, err
	}
	files := ec2
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	for _, v := range openstackVersions {
		dir := path.Join("openstack", v)
		md, err := metaDataJSON(in, v, opts.DHCPDomain, rnd)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: path.Join(dir, "meta_data.json"), Data: md, Secret: !in.AdminPassword.IsZero()})
		if in.UserData.IsSet() {
			files = append(files, File{Path: path.Join(dir, "user_data"), Data: in.UserData.Bytes(), Secret: true})
		}
		if atLeast(v, "2013-10-17") {
			files = append(files, File{Path: path.Join(dir, "vendor_data.json"), Data: []byte("{}")})
		}
		if atLeast(v, "2015-10-15") {
			files = append(files, File{Path: path.Join(dir, "network_data.json"), Data: net.JSON()})
		}
		if atLeast(v, "2016-10-06") {
			files = append(files, File{Path: path.Join(dir, "vendor_data2.json"), Data: []byte(`{"static": {}}`)})
		}
	}
	return files, nil
}

// NetworkFiles returns the files of the drive that change with the network:
// network_data.json of every OpenStack version that has one, and the EC2
// meta-data.json files (local-ipv4, public-ipv4). None of them holds a secret, so
// in may be an Instance without UserData and AdminPassword. Replace these files in
// a drive written earlier (Store.Update) when the address becomes known.
func NetworkFiles(in *Instance, net *Network, opts Options) ([]File, error) {
	files, err := ec2Files(in, net, opts, false)
	if err != nil {
		return nil, err
	}
	for _, v := range openstackVersions {
		if atLeast(v, "2015-10-15") {
			files = append(files, File{Path: path.Join("openstack", v, "network_data.json"), Data: net.JSON()})
		}
	}
	return files, nil
}

// metaDataJSON is openstack/<version>/meta_data.json.
func metaDataJSON(in *Instance, version, domain string, rnd io.Reader) ([]byte, error) {
	md := object{{"uuid", in.UUID}}
	meta, err := metadataObject(in.Metadata)
	if err != nil {
		return nil, fmt.Errorf("configdrive: metadata: %w", err)
	}
	if len(meta) > 0 {
		md.add("meta", meta)
	}
	if !in.AdminPassword.IsZero() {
		md.add("admin_pass", in.AdminPassword.Reveal())
	}
	if in.KeyName != "" && len(in.Keypairs) > 0 {
		kp := in.Keypairs[0]
		md.add("public_keys", object{{kp.Name, kp.Data}})
		md.add("keys", []any{object{{"name", kp.Name}, {"type", kp.Type}, {"data", kp.Data}}})
	}
	md.add("hostname", in.hostname(domain))
	md.add("name", nullable(in.DisplayName))
	md.add("launch_index", in.LaunchIndex)
	md.add("availability_zone", nullable(in.AvailabilityZone))
	if atLeast(version, "2013-04-04") {
		seed := make([]byte, 512)
		if _, err := io.ReadFull(rnd, seed); err != nil {
			return nil, fmt.Errorf("configdrive: random_seed: %w", err)
		}
		md.add("random_seed", base64.StdEncoding.EncodeToString(seed))
	}
	if atLeast(version, "2015-10-15") {
		md.add("project_id", nullable(in.ProjectID))
	}
	if atLeast(version, "2016-06-30") {
		md.add("devices", []any{})
	}
	if atLeast(version, "2020-10-14") {
		md.add("dedicated_cpus", []any{})
	}
	return pyJSON(md)
}

// ec2Files are ec2/<version>/meta-data.json (and user-data when withUserData and
// the instance has user data).
func ec2Files(in *Instance, net *Network, opts Options, withUserData bool) ([]File, error) {
	md, err := ec2MetaData(in, net, opts.DHCPDomain)
	if err != nil {
		return nil, err
	}
	var files []File
	for _, v := range ec2Versions {
		if withUserData && in.UserData.IsSet() {
			files = append(files, File{Path: path.Join("ec2", v, "user-data"), Data: in.UserData.Bytes(), Secret: true})
		}
		files = append(files, File{Path: path.Join("ec2", v, "meta-data.json"), Data: md})
	}
	return files, nil
}

// ec2MetaData is ec2/<version>/meta-data.json; the two versions a drive holds
// have the same content.
func ec2MetaData(in *Instance, net *Network, domain string) ([]byte, error) {
	host := in.hostname(domain)
	var fixed, floating any = nil, ""
	if net != nil {
		if len(net.fixedIPv4) > 0 {
			fixed = net.fixedIPv4[0]
		}
		if len(net.floatingIPs) > 0 {
			floating = net.floatingIPs[0]
		}
	}
	groups := in.SecurityGroups
	if groups == nil {
		groups = []string{}
	}
	md := object{
		{"ami-id", nullable(in.EC2.AMIID)},
		{"ami-launch-index", in.LaunchIndex},
		{"ami-manifest-path", "FIXME"},
		{"instance-id", nullable(in.EC2.InstanceID)},
		{"hostname", host},
		{"local-ipv4", fixed},
		{"reservation-id", nullable(in.ReservationID)},
		{"security-groups", groups},
	}
	if in.KeyName != "" {
		// nova means to drop _name from the drive but deletes it from the wrong
		// dict, so its drives keep it.
		md.add("public-keys", object{{"0", object{{"_name", "0=" + in.KeyName}, {"openssh-key", nullable(in.KeyData)}}}})
	}
	md.add("local-hostname", host)
	md.add("public-hostname", host)
	md.add("public-ipv4", floating)
	md.add("instance-type", nullable(in.FlavorName))
	md.add("block-device-mapping", blockDeviceMapping(in))
	if in.EC2.KernelID != "" {
		md.add("kernel-id", in.EC2.KernelID)
	}
	if in.EC2.RamdiskID != "" {
		md.add("ramdisk-id", in.EC2.RamdiskID)
	}
	md.add("placement", object{{"availability-zone", nullable(in.AvailabilityZone)}})
	md.add("instance-action", "none")
	return pyJSON(md)
}

// blockDeviceMapping is ec2's block-device-mapping (nova's block_device
// instance_block_mapping for an instance without volumes or blank devices).
func blockDeviceMapping(in *Instance) object {
	if in.RootDeviceName == "" {
		return object{{"ami", "sda1"}, {"ephemeral0", "sda2"}, {"root", "/dev/sda1"}, {"swap", "sda3"}}
	}
	m := object{{"ami", strings.TrimPrefix(in.RootDeviceName, "/dev/")}, {"root", in.RootDeviceName}}
	if in.DefaultEphemeralDevice != "" {
		m.add("ephemeral0", in.DefaultEphemeralDevice)
	}
	if in.DefaultSwapDevice != "" {
		m.add("swap", in.DefaultSwapDevice)
	}
	return m
}

// Tree is what a node gets: the config drive and, for images without cloud-init,
// the public keys as an authorized_keys file.
type Tree struct {
	// Drive is the config drive (Layout).
	Drive []File
	// AuthorizedKeys is Instance.AuthorizedKeys; nil when the instance has no SSH
	// key.
	AuthorizedKeys []byte
}

// Build lays out the whole tree of an instance: Layout and AuthorizedKeys. Call it
// when the cast is read, where the secrets are at hand; only the files, never the
// Instance's secrets, should outlive the call.
func Build(in *Instance, net *Network, opts Options) (*Tree, error) {
	drive, err := Layout(in, net, opts)
	if err != nil {
		return nil, err
	}
	keys, err := in.AuthorizedKeys()
	if err != nil {
		return nil, err
	}
	return &Tree{Drive: drive, AuthorizedKeys: keys}, nil
}
