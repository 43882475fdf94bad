package configdrive

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"xcatbm/internal/config"
	"xcatbm/messages"
)

// MaxUserDataBase64 is nova's limit on user data: 65535 bytes once base64 encoded
// (the API refuses more).
const MaxUserDataBase64 = 65535

// UserData is an instance's decoded user data. It is a secret: its String, GoString,
// Format and JSON forms print config.Redacted; only Bytes returns it. The zero value
// is "no user data".
type UserData struct {
	b   []byte
	set bool
}

// NewUserData returns b as user data (b is not copied).
func NewUserData(b []byte) UserData { return UserData{b: b, set: true} }

// DecodeUserData decodes user data as nova receives it: base64 (standard alphabet,
// padded; line breaks and spaces are ignored, as Python's decoder ignores them), at
// most MaxUserDataBase64 bytes of text. Empty text is no user data. The error never
// quotes the text.
func DecodeUserData(text config.Secret) (UserData, error) {
	s := text.Reveal()
	if s == "" {
		return UserData{}, nil
	}
	if len(s) > MaxUserDataBase64 {
		return UserData{}, fmt.Errorf("configdrive: user data is %d bytes of base64, more than nova's %d", len(s), MaxUserDataBase64)
	}
	clean := strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', ' ', '\t':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.Strict().DecodeString(clean)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return UserData{}, fmt.Errorf("configdrive: user data is not valid base64 (at byte %d)", int64(ce))
		}
		return UserData{}, errors.New("configdrive: user data is not valid base64")
	}
	return UserData{b: b, set: true}, nil
}

// IsSet reports whether there is user data (possibly empty).
func (u UserData) IsSet() bool { return u.set }

// Bytes returns the user data; nil when not set. Call it only to write the drive.
func (u UserData) Bytes() []byte { return u.b }

// String implements fmt.Stringer without revealing the data.
func (u UserData) String() string {
	if !u.set {
		return ""
	}
	return config.Redacted
}

// GoString implements fmt.GoStringer without revealing the data.
func (u UserData) GoString() string { return "configdrive.UserData(" + config.Redacted + ")" }

// Format implements fmt.Formatter so that every verb prints String.
func (u UserData) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, u.String()) }

// MarshalJSON implements json.Marshaler without revealing the data.
func (u UserData) MarshalJSON() ([]byte, error) { return json.Marshal(u.String()) }

// Keypair is one key pair as nova's metadata lists it.
type Keypair struct {
	Name string
	Type string // "ssh" or "x509"
	Data string // the public key (or certificate), as stored by nova
}

// Instance is what the config drive says about one instance: everything nova's
// metadata code reads, taken from the build (or rebuild) cast. UserData and
// AdminPassword are secrets; the other fields are not and may be kept.
type Instance struct {
	UUID string
	// Hostname is the instance's hostname (nova's instance.hostname); the drive
	// says Hostname + "." + Options.DHCPDomain.
	Hostname string
	// DisplayName, AvailabilityZone: written as null when empty.
	DisplayName      string
	AvailabilityZone string
	LaunchIndex      int64
	ProjectID        string
	ReservationID    string
	// FlavorName is the flavor's name (ec2 instance-type).
	FlavorName string
	// KeyName and KeyData are the instance's key pair name and public key.
	KeyName string
	KeyData string
	// Keypairs are the instance's key pairs; nova's meta_data.json lists the first
	// (only when KeyName is set).
	Keypairs []Keypair
	// Metadata is the instance's metadata dict as JSON text, keys in the order
	// received; nil or "{}" for none.
	Metadata json.RawMessage
	// SecurityGroups are the names ec2's security-groups lists.
	SecurityGroups []string
	// EC2 holds the EC2-style ids (ami-id, instance-id, kernel-id, ramdisk-id).
	EC2 messages.EC2IDs
	// RootDeviceName, DefaultEphemeralDevice and DefaultSwapDevice feed ec2's
	// block-device-mapping; with RootDeviceName empty nova writes its default
	// mapping (sda1, sda2, /dev/sda1, sda3).
	RootDeviceName         string
	DefaultEphemeralDevice string
	DefaultSwapDevice      string

	// UserData is the decoded user data (secret).
	UserData UserData
	// AdminPassword is the admin password of the build (secret); nova writes it
	// as meta_data.json's admin_pass when set.
	AdminPassword config.Secret
}

// FromInstance builds the drive's Instance from a decoded Instance primitive and
// the cast's admin password (build_and_run_instance's admin_password, rebuild's
// new_pass; zero for none). It decodes and checks the user data.
//
// nova sends keypairs and ec2_ids with a build but not with a rebuild (it loads
// them from its database there): when keypairs are not loaded and the instance
// has a key, the key pair is taken as {key_name, "ssh", key_data}; when ec2_ids are
// not loaded, EC2 stays empty and the caller fills it from the build it kept.
func FromInstance(in *messages.Instance, adminPassword config.Secret) (*Instance, error) {
	if in == nil || in.UUID == "" {
		return nil, errors.New("configdrive: instance without uuid")
	}
	ud, err := DecodeUserData(in.UserData)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", in.UUID, err)
	}
	out := &Instance{
		UUID: in.UUID, Hostname: in.Hostname, DisplayName: in.DisplayName,
		AvailabilityZone: in.AvailabilityZone, LaunchIndex: in.LaunchIndex,
		ProjectID: in.ProjectID, ReservationID: in.ReservationID,
		KeyName: in.KeyName, KeyData: in.KeyData,
		SecurityGroups:         in.SecurityGroups,
		RootDeviceName:         in.RootDeviceName,
		DefaultEphemeralDevice: in.DefaultEphemeralDevice,
		DefaultSwapDevice:      in.DefaultSwapDevice,
		UserData:               ud,
		AdminPassword:          adminPassword,
	}
	if in.Flavor != nil {
		out.FlavorName = in.Flavor.Name
	}
	if in.EC2IDs != nil {
		out.EC2 = *in.EC2IDs
	}
	switch {
	case in.Keypairs != nil:
		for _, kp := range in.Keypairs {
			out.Keypairs = append(out.Keypairs, Keypair{Name: kp.Name, Type: kp.Type, Data: kp.PublicKey})
		}
	case in.KeyName != "" && in.KeyData != "":
		out.Keypairs = []Keypair{{Name: in.KeyName, Type: "ssh", Data: in.KeyData}}
	}
	if in.Object != nil {
		if raw, ok := in.Object.Data["metadata"]; ok && string(raw) != "null" {
			if _, err := metadataObject(raw); err != nil {
				return nil, fmt.Errorf("instance %s: metadata: %w", in.UUID, err)
			}
			out.Metadata = raw
		}
	}
	return out, nil
}

// metadataObject parses the metadata dict; nil for none.
func metadataObject(raw json.RawMessage) (object, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	v, err := parseOrdered(raw)
	if err != nil {
		return nil, err
	}
	o, ok := v.(object)
	if !ok {
		return nil, errors.New("configdrive: metadata is not a JSON object")
	}
	return o, nil
}

// hostname is the hostname nova's metadata says: instance.hostname, with
// "."+dhcp_domain when a domain is configured.
func (in *Instance) hostname(domain string) any {
	if domain != "" {
		return in.Hostname + "." + domain
	}
	return nullable(in.Hostname)
}

// nullable is nil for "" (Python's None), else s.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// AuthorizedKeys returns the instance's SSH public keys as an authorized_keys
// file (one key a line), for images without cloud-init: the key nova's
// meta_data.json lists when it is an SSH key, else the instance's key_data. nil when
// the instance has no SSH key. A key that is not one line is an error.
func (in *Instance) AuthorizedKeys() ([]byte, error) {
	if in.KeyName == "" {
		return nil, nil
	}
	key := in.KeyData
	if len(in.Keypairs) > 0 {
		if in.Keypairs[0].Type != "" && in.Keypairs[0].Type != "ssh" {
			return nil, nil
		}
		key = in.Keypairs[0].Data
	}
	key = strings.TrimRight(key, "\r\n")
	if key == "" {
		return nil, nil
	}
	if strings.ContainsAny(key, "\r\n") {
		return nil, fmt.Errorf("configdrive: key pair %q is not one line", in.KeyName)
	}
	return []byte(key + "\n"), nil
}
