package postscripts

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run the scripts for real: in a private network and UTS namespace
// (so addresses and the hostname are the namespace's own), on a veth NIC carrying the
// node's install MAC, with XCATBM_ROOT pointing the files they write at a temporary
// directory. They need root, unshare, nsenter and ip.

const installMAC = "52:54:00:aa:bb:cc"

var installTools sync.Once

// ensureTools installs shellcheck and busybox from Debian's packages when they are
// missing and the tests run as root on a machine with apt-get, so that a fresh machine
// (CI) runs every check; elsewhere the tests that need them skip.
func ensureTools(t *testing.T) {
	installTools.Do(func() {
		if err := aptInstall([]string{"shellcheck", "busybox"}, "shellcheck", "busybox"); err != nil {
			t.Logf("installing shellcheck and busybox: %v", err)
		}
	})
}

// aptInstall installs packages with apt-get (updating the package lists once if the
// first try fails) unless every one of programs is on PATH already, or the tests do
// not run as root on a machine with apt-get, which is not an error.
func aptInstall(programs []string, packages ...string) error {
	missing := false
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			missing = true
		}
	}
	if _, err := exec.LookPath("apt-get"); !missing || err != nil || os.Geteuid() != 0 {
		return nil
	}
	install := func() error {
		cmd := exec.Command("apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "--no-install-recommends"}, packages...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := install(); err == nil {
		return nil
	}
	_ = exec.Command("apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq").Run()
	return install()
}

// shells returns the POSIX shells the scripts are run under: dash, and busybox sh
// when busybox is installed.
func shells(t *testing.T) [][]string {
	ensureTools(t)
	var out [][]string
	if p, err := exec.LookPath("dash"); err == nil {
		out = append(out, []string{p})
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		out = append(out, []string{p, "sh"})
	} else {
		t.Log("busybox is not installed: scripts run under dash only (apt-get install busybox)")
	}
	if len(out) == 0 {
		t.Skip("neither dash nor busybox is installed")
	}
	return out
}

// node is a network+UTS namespace holding one veth NIC with the install MAC.
type node struct {
	t      *testing.T
	pid    int
	root   string // XCATBM_ROOT
	shell  []string
	env    []string
	nic    string
	script string // directory holding the scripts
	// nsenter lists the namespaces commands enter (default: --net --uts).
	nsenter []string
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running the postscripts needs root (network namespaces); run the tests as root")
	}
	for _, tool := range []string{"unshare", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("running the postscripts needs %s", tool)
		}
	}
}

func newNode(t *testing.T, shell []string, flavour string) *node {
	t.Helper()
	needRoot(t)
	// Without --fork, unshare execs sleep in its own process: that pid holds the
	// namespaces for as long as the test runs.
	holder := exec.Command("unshare", "--net", "--uts", "sleep", "3600")
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	n := &node{t: t, root: t.TempDir(), shell: shell, nic: "inst0", pid: holder.Process.Pid}
	// Wait until sleep runs in the new network namespace.
	self, _ := os.Readlink("/proc/self/ns/net")
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", n.pid)); err == nil && ns != self {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", n.pid)); strings.HasSuffix(exe, "/sleep") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("unshare did not start its namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.script = t.TempDir()
	if _, err := Install(n.script); err != nil {
		t.Fatal(err)
	}
	n.must("ip", "link", "add", "other0", "type", "veth", "peer", "name", n.nic)
	n.must("ip", "link", "set", n.nic, "address", installMAC)
	n.must("ip", "link", "set", n.nic, "up")
	n.must("hostname", "installed")
	n.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"XCATBM_ROOT=" + n.root,
		"XCATBM_NETCONF=" + flavour,
		"NODE=node7",
		// xCAT's mac table form: the install MAC (upper case here), then another NIC's.
		"MACADDRESS=" + strings.ToUpper(installMAC) + "!node7|52:54:00:00:00:01!node7-ib0",
	}
	return n
}

// exec runs argv inside the node's namespaces with env and returns its output.
func (n *node) exec(env []string, argv ...string) (stdout, stderr string, err error) {
	ns := n.nsenter
	if ns == nil {
		ns = []string{"--net", "--uts"}
	}
	args := append(append(append([]string{"-t", fmt.Sprint(n.pid)}, ns...), "--"), argv...)
	cmd := exec.Command("nsenter", args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func (n *node) must(argv ...string) string {
	n.t.Helper()
	out, errOut, err := n.exec(os.Environ(), argv...)
	if err != nil {
		n.t.Fatalf("%v: %v: %s", argv, err, errOut)
	}
	return out
}

// run runs a script under the node's shell and fails the test if it fails.
func (n *node) run(script string, args ...string) string {
	n.t.Helper()
	out, errOut, err := n.try(nil, script, args...)
	if err != nil {
		n.t.Fatalf("%s %v: %v\nstdout: %s\nstderr: %s", script, args, err, out, errOut)
	}
	n.t.Logf("%s %v:\n%s", script, args, out)
	return out
}

func (n *node) try(extraEnv []string, script string, args ...string) (string, string, error) {
	argv := append(append(append([]string{}, n.shell...), filepath.Join(n.script, script)), args...)
	return n.exec(append(append([]string{}, n.env...), extraEnv...), argv...)
}

// addrs returns the IPv4 addresses (with prefix) on the install NIC.
func (n *node) addrs() []string {
	out := n.must("ip", "-o", "-4", "addr", "show", "dev", n.nic)
	var as []string
	for _, m := range regexp.MustCompile(`inet (\S+)`).FindAllStringSubmatch(out, -1) {
		as = append(as, m[1])
	}
	return as
}

func (n *node) hostname() string { return strings.TrimSpace(n.must("hostname")) }

func (n *node) file(rel string) string {
	b, err := os.ReadFile(filepath.Join(n.root, rel))
	if err != nil {
		return ""
	}
	return string(b)
}

func (n *node) exists(rel string) bool {
	_, err := os.Stat(filepath.Join(n.root, rel))
	return err == nil
}

// snapshot maps every file under the root to its content, to prove a run changed
// nothing.
func (n *node) snapshot() map[string]string {
	m := map[string]string{}
	_ = filepath.Walk(n.root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			m[strings.TrimPrefix(p, n.root)] = string(b)
		}
		return nil
	})
	return m
}

// flavourCheck says what the persistent configuration must hold for one flavour.
type flavourCheck struct {
	name string
	// prepare lays out the distribution's files before the first run.
	prepare func(t *testing.T, root string)
	// holds reports whether the persistent configuration carries ip/prefix, and absent
	// whether it carries no xcatbm address at all.
	holds  func(n *node, ip, prefix string) bool
	absent func(n *node) bool
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	rhelMain = "DEVICE=inst0\nBOOTPROTO=dhcp\nONBOOT=yes\nHWADDR=52:54:00:aa:bb:cc\n"
	slesMain = "BOOTPROTO='dhcp'\nSTARTMODE='auto'\n"
)

var flavours = []flavourCheck{
	{
		name: "rhel",
		prepare: func(t *testing.T, root string) {
			write(t, root, "etc/redhat-release", "Rocky Linux release 9.3\n")
			write(t, root, "etc/sysconfig/network-scripts/ifcfg-inst0", rhelMain)
			// An admin's own alias is kept and not reused.
			write(t, root, "etc/sysconfig/network-scripts/ifcfg-inst0:0", "DEVICE=inst0:0\nIPADDR=192.0.2.9\nPREFIX=24\n")
			write(t, root, "etc/sysconfig/network", "NETWORKING=yes\nHOSTNAME=installed\n")
		},
		holds: func(n *node, ip, prefix string) bool {
			f := n.file("etc/sysconfig/network-scripts/ifcfg-inst0:1")
			return strings.Contains(f, "# xcatbm-managed") && strings.Contains(f, "\nDEVICE=inst0:1\n") &&
				strings.Contains(f, "\nIPADDR="+ip+"\n") && strings.Contains(f, "\nPREFIX="+prefix+"\n") &&
				n.file("etc/sysconfig/network-scripts/ifcfg-inst0") == rhelMain &&
				strings.Contains(n.file("etc/sysconfig/network-scripts/ifcfg-inst0:0"), "192.0.2.9")
		},
		absent: func(n *node) bool {
			return !n.exists("etc/sysconfig/network-scripts/ifcfg-inst0:1") &&
				n.file("etc/sysconfig/network-scripts/ifcfg-inst0") == rhelMain &&
				n.exists("etc/sysconfig/network-scripts/ifcfg-inst0:0")
		},
	},
	{
		name: "sles",
		prepare: func(t *testing.T, root string) {
			write(t, root, "etc/SuSE-release", "SUSE Linux Enterprise Server 15\n")
			write(t, root, "etc/sysconfig/network/ifcfg-inst0", slesMain)
			write(t, root, "etc/hostname", "installed\n")
		},
		holds: func(n *node, ip, prefix string) bool {
			f := n.file("etc/sysconfig/network/ifcfg-inst0")
			return strings.HasPrefix(f, slesMain) && strings.Contains(f, "# xcatbm-managed") &&
				strings.HasSuffix(f, "\nIPADDR_xcatbm='"+ip+"/"+prefix+"'\n") &&
				strings.Count(f, "IPADDR_") == 1
		},
		absent: func(n *node) bool { return n.file("etc/sysconfig/network/ifcfg-inst0") == slesMain },
	},
	{
		name: "debian",
		prepare: func(t *testing.T, root string) {
			write(t, root, "etc/debian_version", "12.5\n")
			write(t, root, "etc/network/interfaces", "source /etc/network/interfaces.d/*\nauto inst0\niface inst0 inet dhcp\n")
			write(t, root, "etc/hostname", "installed\n")
		},
		holds: func(n *node, ip, prefix string) bool {
			f := n.file("etc/network/interfaces.d/xcatbm-inst0")
			return strings.Contains(f, "# xcatbm-managed") && strings.Contains(f, "iface inst0 inet static\n") &&
				strings.Contains(f, "\taddress "+ip+"/"+prefix+"\n") && strings.Count(f, "\taddress ") == 1
		},
		absent: func(n *node) bool { return !n.exists("etc/network/interfaces.d/xcatbm-inst0") },
	},
}

func TestScriptsConfigureAndDeconfigure(t *testing.T) {
	for _, sh := range shells(t) {
		for _, fl := range flavours {
			t.Run(filepath.Base(strings.Join(sh, "_"))+"/"+fl.name, func(t *testing.T) {
				// Auto-detection picks the flavour from the files prepare lays out; the
				// first run proves it by leaving XCATBM_NETCONF empty.
				n := newNode(t, sh, "")
				fl.prepare(t, n.root)

				out := n.run("config_ops_bmnode", "tenant-1", "10.20.30.40", "255.255.255.0")
				if !strings.Contains(out, "("+fl.name+")") {
					t.Errorf("detected flavour is not %s: %s", fl.name, out)
				}
				n.env[2] = "XCATBM_NETCONF=" + fl.name
				if got := n.addrs(); len(got) != 1 || got[0] != "10.20.30.40/24" {
					t.Errorf("addresses after config: %v", got)
				}
				if n.hostname() != "tenant-1" {
					t.Errorf("hostname %q, want tenant-1", n.hostname())
				}
				if !persistentHostname(n, "tenant-1") {
					t.Errorf("hostname not persisted: /etc/hostname %q, sysconfig %q", n.file("etc/hostname"), n.file("etc/sysconfig/network"))
				}
				if !fl.holds(n, "10.20.30.40", "24") {
					t.Errorf("persistent configuration lacks 10.20.30.40/24:\n%v", n.snapshot())
				}

				// Twice: nothing changes, nothing is logged as changed.
				before := n.snapshot()
				out = n.run("config_ops_bmnode", "tenant-1", "10.20.30.40", "24")
				if after := n.snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Errorf("second run changed files:\nbefore %v\nafter  %v", before, after)
				}
				if regexp.MustCompile(`wrote|added|removed|set to`).MatchString(out) {
					t.Errorf("second run reports changes: %s", out)
				}
				if got := n.addrs(); len(got) != 1 || got[0] != "10.20.30.40/24" {
					t.Errorf("addresses after second run: %v", got)
				}

				// Another IP replaces the old one, now and persistently.
				n.run("config_ops_bmnode", "tenant-2", "10.20.31.5", "255.255.254.0")
				if got := n.addrs(); len(got) != 1 || got[0] != "10.20.31.5/23" {
					t.Errorf("addresses after new IP: %v", got)
				}
				if !fl.holds(n, "10.20.31.5", "23") {
					t.Errorf("persistent configuration lacks 10.20.31.5/23:\n%v", n.snapshot())
				}
				if strings.Contains(fmt.Sprint(n.snapshot()), "10.20.30.40") {
					t.Errorf("old address left in the files:\n%v", n.snapshot())
				}

				// An address someone else put on the NIC stays through config and deconfig.
				n.must("ip", "addr", "add", "172.16.0.1/16", "dev", n.nic)

				// deconfig removes it, twice without harm, and brings back the node name.
				for i := range 2 {
					n.run("deconfig_ops_bmnode", "10.20.31.5")
					if got := n.addrs(); len(got) != 1 || got[0] != "172.16.0.1/16" {
						t.Errorf("deconfig %d: addresses %v, want only 172.16.0.1/16", i, got)
					}
					if !fl.absent(n) {
						t.Errorf("deconfig %d: xcatbm configuration left:\n%v", i, n.snapshot())
					}
					if n.hostname() != "node7" || !persistentHostname(n, "node7") {
						t.Errorf("deconfig %d: hostname %q, files %v", i, n.hostname(), n.snapshot())
					}
				}
			})
		}
	}
}

func persistentHostname(n *node, name string) bool {
	if n.exists("etc/hostname") {
		return n.file("etc/hostname") == name+"\n"
	}
	return strings.Contains(n.file("etc/sysconfig/network"), "\nHOSTNAME="+name+"\n") &&
		strings.Count(n.file("etc/sysconfig/network"), "HOSTNAME=") == 1
}

func TestScriptsHostnameOnly(t *testing.T) {
	for _, sh := range shells(t) {
		n := newNode(t, sh, "debian")
		n.run("config_ops_bmnode", "only-name")
		if n.hostname() != "only-name" || n.file("etc/hostname") != "only-name\n" {
			t.Errorf("%v: hostname %q, file %q", sh, n.hostname(), n.file("etc/hostname"))
		}
		if got := n.addrs(); len(got) != 0 {
			t.Errorf("%v: addresses %v, want none", sh, got)
		}
	}
}

func TestScriptsFindNIC(t *testing.T) {
	for _, sh := range shells(t) {
		n := newNode(t, sh, "debian")
		tests := []struct {
			name string
			env  []string
		}{
			{"PRIMARYNIC as MAC", []string{"MACADDRESS=", "PRIMARYNIC=" + installMAC}},
			{"PRIMARYNIC as name", []string{"MACADDRESS=", "PRIMARYNIC=inst0"}},
			{"PRIMARYNIC=mac falls back to MACADDRESS", []string{"PRIMARYNIC=mac"}},
			{"plain MAC", []string{"MACADDRESS=" + installMAC}},
			{"install MAC not first", []string{"MACADDRESS=52:54:00:00:00:01!node7-ib0|" + installMAC + "!node7"}},
			{"no host part on the install MAC", []string{"MACADDRESS=52:54:00:00:00:01!node7-ib0|" + installMAC}},
		}
		for _, tc := range tests {
			out, errOut, err := n.try(tc.env, "config_ops_bmnode", "h", "10.1.1.1", "24")
			if err != nil || !strings.Contains(out, "on inst0") {
				t.Errorf("%v %s: %v\n%s%s", sh, tc.name, err, out, errOut)
			}
			n.run("deconfig_ops_bmnode", "10.1.1.1")
		}
	}
}

func TestScriptsRefuse(t *testing.T) {
	for _, sh := range shells(t) {
		n := newNode(t, sh, "debian")
		tests := []struct {
			script string
			args   []string
			env    []string
			want   string
		}{
			{"config_ops_bmnode", nil, nil, "usage"},
			{"config_ops_bmnode", []string{"h", "10.0.0.1"}, nil, "missing netmask"},
			{"config_ops_bmnode", []string{"h", "10.0.0.256", "24"}, nil, "invalid IP address: 10.0.0.256"},
			{"config_ops_bmnode", []string{"h", "10.0.0", "24"}, nil, "invalid IP address"},
			{"config_ops_bmnode", []string{"h", "10.0.0.01", "24"}, nil, "invalid IP address"},
			{"config_ops_bmnode", []string{"h", "10.0.0.1", "255.0.255.0"}, nil, "invalid netmask"},
			{"config_ops_bmnode", []string{"h", "10.0.0.1", "33"}, nil, "invalid netmask"},
			{"config_ops_bmnode", []string{"bad_name!", "10.0.0.1", "24"}, nil, "invalid hostname"},
			{"config_ops_bmnode", []string{"h", "10.0.0.1", "24"}, []string{"MACADDRESS=52:54:00:99:99:99"}, "no NIC with MAC 52:54:00:99:99:99"},
			{"config_ops_bmnode", []string{"h", "10.0.0.1", "24"}, []string{"PRIMARYNIC=eth9"}, "no NIC named eth9"},
			{"config_ops_bmnode", []string{"h", "10.0.0.1", "24"}, []string{"MACADDRESS="}, "cannot tell the install NIC"},
			{"config_ops_bmnode", []string{"h", "10.0.0.1", "24"}, []string{"XCATBM_NETCONF=gentoo"}, "want nm, rhel, sles or debian"},
			{"deconfig_ops_bmnode", nil, nil, "usage"},
			{"deconfig_ops_bmnode", []string{"10.0.0.1", "x"}, nil, "usage"},
			{"deconfig_ops_bmnode", []string{"not-an-ip"}, nil, "invalid IP address"},
		}
		for _, tc := range tests {
			before := n.snapshot()
			out, errOut, err := n.try(tc.env, tc.script, tc.args...)
			if err == nil {
				t.Errorf("%v %s %v: succeeded: %s", sh, tc.script, tc.args, out)
				continue
			}
			if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("%v %s %v: stderr %q, want one line with %q", sh, tc.script, tc.args, errOut, tc.want)
			}
			if fmt.Sprint(n.snapshot()) != fmt.Sprint(before) || len(n.addrs()) != 0 || n.hostname() != "installed" {
				t.Errorf("%v %s %v: a refused run changed the node", sh, tc.script, tc.args)
			}
		}
	}
}

// TestScriptsNetworkManagerDetection checks that auto-detection does not pick nm when
// NetworkManager does not run (or XCATBM_ROOT is set), and that forcing nm without
// nmcli is refused. TestScriptsNetworkManager runs the nm flavour itself.
func TestScriptsNetworkManagerDetection(t *testing.T) {
	for _, sh := range shells(t) {
		n := newNode(t, sh, "")
		write(t, n.root, "etc/os-release", "ID=rocky\nID_LIKE=\"rhel centos fedora\"\n")
		if _, err := exec.LookPath("nmcli"); err == nil {
			t.Log("nmcli is installed; with XCATBM_ROOT set the scripts never use it")
		}
		out := n.run("config_ops_bmnode", "h", "10.3.3.3", "24")
		if !strings.Contains(out, "(rhel)") {
			t.Errorf("%v: detection chose other than rhel: %s", sh, out)
		}
		n.run("deconfig_ops_bmnode", "10.3.3.3")
		if _, err := exec.LookPath("nmcli"); err != nil {
			_, errOut, err := n.try([]string{"XCATBM_NETCONF=nm"}, "config_ops_bmnode", "h", "10.3.3.3", "24")
			if err == nil || !strings.Contains(errOut, "nmcli is not installed") {
				t.Errorf("%v: forced nm without nmcli: %v %s", sh, err, errOut)
			}
		}
	}
}

func TestShellcheck(t *testing.T) {
	ensureTools(t)
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("shellcheck is not installed (apt-get install shellcheck)")
		}
		t.Skip("shellcheck is not installed (apt-get install shellcheck)")
	}
	out, err := exec.Command(sc, "-s", "sh", "-x", "config_ops_bmnode", "deconfig_ops_bmnode").CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}
