// Package testcloudinit reads config drives with the real cloud-init (Debian's
// package), for tests: its ConfigDrive datasource takes a directory as it takes
// /var/lib/cloud/seed/config_drive on a node, and its convert_net_json turns
// network_data.json into the network configuration it would apply. Nothing of the
// machine's own cloud-init state is read or written.
//
// Python returns a Python that imports cloud-init, installing Debian's cloud-init
// package when it is missing and the tests run as root on a machine with apt-get,
// as the postscript tests install their tools: no service starts during the install
// (a policy-rc.d says so where none is set), and /etc/cloud/cloud-init.disabled keeps
// cloud-init from running at any boot of the machine. Without cloud-init a test
// fails under CI and skips elsewhere.
package testcloudinit

import (
	"bytes"
	_ "embed" // the reader script
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
)

//go:embed read_config_drive.py
var readScript string

var (
	once    sync.Once
	python  string
	initErr error
)

func imports(py string) bool {
	return exec.Command(py, "-c", "import cloudinit.sources.DataSourceConfigDrive").Run() == nil
}

// find returns a Python that imports cloud-init: Debian's /usr/bin/python3 first
// (PATH may lead to another Python without Debian's modules).
func find() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil && imports(path) {
			return path
		}
	}
	return ""
}

func install() error {
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return nil
	}
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); os.IsNotExist(err) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# xcatbm tests: no service starts during package installs\nexit 101\n"), 0o755); err != nil {
			return err
		}
		defer os.Remove(policy)
	}
	run := func() error {
		cmd := exec.Command("apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "--no-install-recommends", "cloud-init")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	err := run()
	if err != nil {
		_ = exec.Command("apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq").Run()
		err = run()
	}
	if err != nil {
		return err
	}
	return os.WriteFile("/etc/cloud/cloud-init.disabled", []byte("xcatbm's tests installed cloud-init only to read config drives with it\n"), 0o644)
}

// Python returns the Python that runs cloud-init (see the package doc).
func Python(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if python = find(); python != "" {
			return
		}
		if initErr = install(); initErr == nil {
			python = find()
		}
	})
	if python == "" {
		msg := "cloud-init is not installed (apt-get install cloud-init, as root)"
		if initErr != nil {
			msg += fmt.Sprintf("; installing it failed: %v", initErr)
		}
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return python
}

// View is what cloud-init's ConfigDrive datasource found in a drive.
type View struct {
	// Found is true when the datasource took the directory as a config drive
	// (version 2, from the seed directory).
	Found            bool           `json:"found"`
	Seed             bool           `json:"source"`
	Version          int            `json:"version"`
	InstanceID       string         `json:"instance_id"`
	LocalHostname    string         `json:"local_hostname"`
	FQDN             string         `json:"fqdn"`
	PublicKeys       []string       `json:"public_keys"`
	AvailabilityZone *string        `json:"availability_zone"`
	AdminPass        *string        `json:"admin_pass"`
	Meta             map[string]any `json:"meta"`
	// UserData is the user data cloud-init would run, nil when none.
	UserData     []byte  `json:"userdata_b64"`
	EC2LocalIPv4 *string `json:"ec2_local_ipv4"`
	// NetworkConfig is convert_net_json's result (network config v1), null
	// without network_data.
	NetworkConfig json.RawMessage `json:"network_config"`
}

// Read reads the drive in dir (openstack/..., ec2/...) with cloud-init; macs maps
// the MACs of network_data.json's links to interface names. It fails the test when
// cloud-init fails or does not take dir as a version 2 config drive.
func Read(t testing.TB, dir string, macs map[string]string) View {
	t.Helper()
	py := Python(t)
	m, err := json.Marshal(macs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", readScript, dir, string(m))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cloud-init: %v\n%s", err, stderr.Bytes())
	}
	var v View
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("cloud-init's view %q: %v", out, err)
	}
	if !v.Found || !v.Seed || v.Version != 2 {
		t.Fatalf("cloud-init did not take %s as a version 2 config drive: %s\n%s", dir, out, stderr.Bytes())
	}
	return v
}
