package postscripts

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The nm flavour runs against a real NetworkManager: each test node gets, besides its
// network and UTS namespaces, a mount namespace in which /run is a fresh tmpfs, /etc
// and /var are overlays whose writes land in temporary directories, the keyfile
// directory starts empty and sysfs shows the node's own NICs. A private D-Bus system
// bus and NetworkManager run there, managing the veth NIC through a keyfile profile
// "install" holding the install address. The scripts run there without XCATBM_ROOT,
// as on a node, and so also find NetworkManager by themselves.

const (
	nmInstallAddr = "192.0.2.10/24"
	nmProfileDir  = "/etc/NetworkManager/system-connections"
	nmProfile     = nmProfileDir + "/install.nmconnection"
)

// busConfig is a system bus on the socket path NetworkManager and nmcli use, open to
// everyone: only root's test processes reach it, in their own mount namespace.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
`

// nmConfig keeps NetworkManager to the keyfile profiles and away from DNS and the
// hostname. NICs are managed because, sysfs being read-only, NetworkManager does not
// wait for udev (which does not run in the namespace) to announce them.
const nmConfig = `[main]
plugins=keyfile
dns=none
rc-manager=unmanaged
hostname-mode=none
no-auto-default=*
auth-polkit=false

[keyfile]
unmanaged-devices=interface-name:other0

[device-install]
match-device=interface-name:inst0
managed=1
`

const installProfile = `[connection]
id=install
type=ethernet
interface-name=inst0

[ipv4]
method=manual
address1=` + nmInstallAddr + `

[ipv6]
method=ignore
`

// nmMounts runs in the holder before it becomes sleep; set -e, so that sleep runs only
// once every mount is in place. The hostname file written last proves the overlay.
const nmMounts = `set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/etc,workdir=$1/etc.work" /etc
mount -t overlay overlay -o "lowerdir=/var,upperdir=$1/var,workdir=$1/var.work" /var
mount -t sysfs -o ro sysfs /sys
mkdir -p ` + nmProfileDir + `
mount -t tmpfs -o mode=0700 tmpfs ` + nmProfileDir + `
echo installed >/etc/hostname
exec sleep 3600
`

var (
	installNM    sync.Once
	installNMErr error
)

// ensureNetworkManager installs NetworkManager from Debian's packages when it is
// missing and the tests run as root on a machine with apt-get; nothing is started by
// the installation where services are not started (containers), and NetworkManager is
// only ever run by the tests, in their namespaces.
func ensureNetworkManager(t *testing.T) {
	installNM.Do(func() { installNMErr = aptInstall([]string{"NetworkManager", "nmcli"}, "network-manager") })
	for _, tool := range []string{"NetworkManager", "nmcli", "dbus-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("NetworkManager cannot run here: %s is not installed (apt-get install network-manager)", tool)
			if installNMErr != nil {
				msg += fmt.Sprintf("; installing it failed: %v", installNMErr)
			}
			t.Skip(msg)
		}
	}
}

// nmNode is a node whose install NIC NetworkManager manages.
type nmNode struct {
	*node
	upper string // the overlays' upper directories: what the node wrote to /etc, /var
	conf  string // bus and NetworkManager configuration
	nm    *exec.Cmd
	nmLog *bytes.Buffer
}

// cannotRun ends a test that could not bring NetworkManager up: a failure under CI,
// where NetworkManager is installed for the tests, else a skip.
func cannotRun(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf("NetworkManager cannot run here: "+format, args...)
}

func newNMNode(t *testing.T, shell []string) *nmNode {
	t.Helper()
	needRoot(t)
	ensureNetworkManager(t)
	n := &nmNode{upper: t.TempDir(), conf: t.TempDir()}
	for _, d := range []string{"etc", "etc.work", "var", "var.work"} {
		if err := os.Mkdir(filepath.Join(n.upper, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, n.conf, "bus.conf", busConfig)
	write(t, n.conf, "nm.conf", nmConfig)
	if err := os.Mkdir(filepath.Join(n.conf, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}

	var holderErr bytes.Buffer
	holder := exec.Command("unshare", "--net", "--uts", "--mount", "--propagation", "private", "sh", "-c", nmMounts, "sh", n.upper)
	holder.Stderr = &holderErr
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = holder.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		<-exited
	})
	pid := holder.Process.Pid
	self, _ := os.Readlink("/proc/self/ns/mnt")
	for deadline := time.Now().Add(5 * time.Second); ; {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if ns != "" && ns != self && strings.HasSuffix(exe, "/sleep") {
			break
		}
		select {
		case <-exited:
			cannotRun(t, "private mounts: %s", holderErr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("unshare did not start its namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The scripts run without XCATBM_ROOT: make sure their writes go to the overlay.
	if b, err := os.ReadFile(filepath.Join(n.upper, "etc", "hostname")); err != nil || string(b) != "installed\n" {
		t.Fatalf("the /etc overlay is not in place: %q, %v", b, err)
	}

	n.node = &node{t: t, pid: pid, shell: shell, nic: "inst0", script: t.TempDir(),
		nsenter: []string{"--net", "--uts", "--mount"}}
	if _, err := Install(n.script); err != nil {
		t.Fatal(err)
	}
	n.must("ip", "link", "add", "other0", "type", "veth", "peer", "name", n.nic)
	n.must("ip", "link", "set", n.nic, "address", installMAC)
	n.must("ip", "link", "set", n.nic, "up")
	n.must("ip", "link", "set", "other0", "up")
	n.must("ip", "link", "set", "lo", "up")
	n.must("hostname", "installed")
	n.writeFile(nmProfile, installProfile, 0o600)
	n.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"XCATBM_NETCONF=",
		"NODE=node7",
		"MACADDRESS=" + strings.ToUpper(installMAC) + "!node7|52:54:00:00:00:01!node7-ib0",
	}

	bus := n.daemon("dbus-daemon", "--config-file="+filepath.Join(n.conf, "bus.conf"), "--nofork", "--nopidfile")
	for deadline := time.Now().Add(5 * time.Second); ; {
		if fi, err := os.Stat(n.path("/run/dbus/system_bus_socket")); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			cannotRun(t, "dbus-daemon did not open its socket: %s", bus.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.startNM()
	return n
}

// path is the node's view of an absolute path.
func (n *nmNode) path(p string) string { return fmt.Sprintf("/proc/%d/root%s", n.pid, p) }

func (n *nmNode) writeFile(p, content string, mode os.FileMode) {
	n.t.Helper()
	if err := os.WriteFile(n.path(p), []byte(content), mode); err != nil {
		n.t.Fatal(err)
	}
}

func (n *nmNode) readFile(p string) string {
	b, err := os.ReadFile(n.path(p))
	if err != nil {
		return ""
	}
	return string(b)
}

// daemon starts argv inside the node and stops it when the test ends: SIGTERM, then
// SIGKILL if it is still there after 5 s. Its output is returned for failure messages.
func (n *nmNode) daemon(argv ...string) *bytes.Buffer {
	n.t.Helper()
	cmd, out := n.start(argv...)
	n.t.Cleanup(func() { stop(cmd) })
	return out
}

func (n *nmNode) start(argv ...string) (*exec.Cmd, *bytes.Buffer) {
	n.t.Helper()
	// nsenter without --fork execs argv after entering: the pid is argv's.
	cmd := exec.Command("nsenter", append(append([]string{"-t", fmt.Sprint(n.pid)}, n.nsenter...), append([]string{"--"}, argv...)...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("%v: %v", argv, err)
	}
	return cmd, &out
}

func stop(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// startNM starts NetworkManager and waits until it has activated the install profile.
func (n *nmNode) startNM() {
	n.t.Helper()
	n.nm, n.nmLog = n.start("NetworkManager", "--no-daemon", "--config="+filepath.Join(n.conf, "nm.conf"),
		"--config-dir="+filepath.Join(n.conf, "conf.d"), "--system-config-dir="+filepath.Join(n.conf, "conf.d"))
	nm := n.nm
	n.t.Cleanup(func() { stop(nm) })
	if state := n.waitConnected(); state != "" {
		cannotRun(n.t, "NetworkManager did not activate the install profile on %s: %s\nlog:\n%s", n.nic, state, n.nmLog.String())
	}
}

func (n *nmNode) stopNM() {
	stop(n.nm)
}

// waitConnected waits up to 10 s for the NIC to be connected with the install profile;
// it returns "" once it is, else what nmcli last said.
func (n *nmNode) waitConnected() string {
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, errOut, err := n.exec(os.Environ(), "nmcli", "-g", "GENERAL.STATE,GENERAL.CONNECTION", "device", "show", n.nic)
		if err == nil && strings.HasPrefix(out, "100 (connected)\ninstall\n") {
			return ""
		}
		last = out + errOut
	}
	return last
}

// profileAddrs returns the addresses of the install profile as NetworkManager wrote it.
func (n *nmNode) profileAddrs() []string {
	var as []string
	for _, m := range regexp.MustCompile(`(?m)^address\d+=(\S+)$`).FindAllStringSubmatch(n.readFile(nmProfile), -1) {
		as = append(as, strings.Split(m[1], ",")[0]) // addressN=ip/prefix[,gateway]
	}
	return as
}

func TestScriptsNetworkManager(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(strings.Join(sh, "_")), func(t *testing.T) {
			n := newNMNode(t, sh)
			// expect checks the NIC's addresses and the profile's, both in any order.
			expect := func(step string, want ...string) {
				t.Helper()
				want = append([]string{nmInstallAddr}, want...)
				slices.Sort(want)
				if got := n.addrs(); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
					t.Errorf("%s: addresses on %s %v, want %v", step, n.nic, got, want)
				}
				if got := n.profileAddrs(); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
					t.Errorf("%s: addresses in the profile %v, want %v:\n%s", step, got, want, n.readFile(nmProfile))
				}
			}
			expect("before")

			// Found by itself: NetworkManager runs and manages the NIC.
			out := n.run("config_ops_bmnode", "tenant-1", "10.20.30.40", "255.255.255.0")
			if !strings.Contains(out, "on inst0 (nm)") {
				t.Errorf("detected flavour is not nm: %s", out)
			}
			n.env[1] = "XCATBM_NETCONF=nm"
			expect("config", "10.20.30.40/24")
			if n.hostname() != "tenant-1" || n.readFile("/etc/hostname") != "tenant-1\n" {
				t.Errorf("hostname %q, /etc/hostname %q", n.hostname(), n.readFile("/etc/hostname"))
			}

			// Twice: nothing changes, nothing is logged as changed.
			profile := n.readFile(nmProfile)
			out = n.run("config_ops_bmnode", "tenant-1", "10.20.30.40", "24")
			if regexp.MustCompile(`wrote|added|removed|set to`).MatchString(out) {
				t.Errorf("second run reports changes: %s", out)
			}
			if after := n.readFile(nmProfile); after != profile {
				t.Errorf("second run changed the profile:\nbefore %s\nafter  %s", profile, after)
			}
			expect("second run", "10.20.30.40/24")

			// The profile alone brings the address back: NetworkManager restarted on a
			// NIC without addresses, as at boot.
			n.stopNM()
			n.must("ip", "addr", "flush", "dev", n.nic)
			n.startNM()
			expect("restart", "10.20.30.40/24")

			// Another IP replaces the old one, now and in the profile.
			n.run("config_ops_bmnode", "tenant-2", "10.20.31.5", "255.255.254.0")
			expect("new IP", "10.20.31.5/23")

			// deconfig removes it, twice without harm, and brings back the node name.
			for i := range 2 {
				n.run("deconfig_ops_bmnode", "10.20.31.5")
				expect(fmt.Sprintf("deconfig %d", i))
				if n.hostname() != "node7" || n.readFile("/etc/hostname") != "node7\n" {
					t.Errorf("deconfig %d: hostname %q, /etc/hostname %q", i, n.hostname(), n.readFile("/etc/hostname"))
				}
			}
			if st := n.readFile("/var/lib/xcatbm/ops_bmnode"); st != "" {
				t.Errorf("address still recorded: %q", st)
			}

			// Nor does NetworkManager put it back when it configures the NIC again, as
			// it does from the connection it applied when the link comes back.
			n.must("ip", "link", "set", n.nic, "down")
			time.Sleep(200 * time.Millisecond)
			n.must("ip", "link", "set", n.nic, "up")
			time.Sleep(1500 * time.Millisecond)
			if state := n.waitConnected(); state != "" {
				t.Fatalf("after the link came back: %s", state)
			}
			expect("link down and up")
		})
	}
}
