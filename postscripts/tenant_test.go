package postscripts

import (
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"xcatbm/internal/config"
	"xcatbm/internal/testkit/testcloudinit"
	"xcatbm/worker/configdrive"
)

// These tests run config_ops_bmnode --config-drive as a node runs it: the tree is
// written by configdrive.Store into an install directory that an HTTP server serves
// from inside the node's network namespace (as xCAT's web server serves the install
// directory to the node), and the script fetches it from $MASTER_IP:$HTTPPORT.

// tenantKey is the captured tenant's public key (a real ed25519 key).
const tenantKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICympHXpUTGkr/k6ikER7ej/1JJ+qTG20PJzBuKUQpmZ mi-test\n"

// adminKey stands for the xCAT administrator's key already in root's file.
const adminKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHE5yvNW0JyfQeR/ufM8iZ9pVpE8tEcDMmKNM+5m7H2n xcat-admin\n"

const tenantUUID = "4b45a405-9a64-40fa-a63e-82f04644e7bf"
const tenantUserData = "#!/bin/sh\necho hello-from-user-data > /tmp/ud-ran\n"

var installKeygen sync.Once

// keygen returns ssh-keygen, installing openssh-client when it is missing (as root
// with apt-get); without it the test fails under CI and skips elsewhere.
func keygen(t *testing.T) string {
	t.Helper()
	installKeygen.Do(func() {
		if err := aptInstall([]string{"ssh-keygen"}, "openssh-client"); err != nil {
			t.Logf("installing openssh-client: %v", err)
		}
	})
	p, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ssh-keygen is not installed (apt-get install openssh-client)")
		}
		t.Skip("ssh-keygen is not installed (apt-get install openssh-client)")
	}
	return p
}

// tenantTree is the tree of a tenant instance with a key pair, user data and an
// admin password.
func tenantTree(t *testing.T) *configdrive.Tree {
	t.Helper()
	in := &configdrive.Instance{
		UUID: tenantUUID, Hostname: "s1", DisplayName: "s1", AvailabilityZone: "nova", ProjectID: "admin",
		KeyName: "k1", KeyData: tenantKey, Keypairs: []configdrive.Keypair{{Name: "k1", Type: "ssh", Data: tenantKey}},
		UserData: configdrive.NewUserData([]byte(tenantUserData)), AdminPassword: config.NewSecret("VYGfyuvYu5tQ"),
	}
	tree, err := configdrive.Build(in, nil, configdrive.Options{DHCPDomain: configdrive.DefaultDHCPDomain})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// setns moves the calling thread into the network namespace f names.
func setns(f *os.File) error { return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET) }

// listenInNode opens a TCP listener on 127.0.0.1 inside the node's network
// namespace: a socket stays in the namespace it was made in.
func listenInNode(n *node) net.Listener {
	n.t.Helper()
	n.must("ip", "link", "set", "lo", "up")
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer self.Close()
		target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", n.pid))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if err := setns(self); err != nil {
			// The thread stays locked and ends with this goroutine.
			if ln != nil {
				ln.Close()
			}
			ch <- result{err: fmt.Errorf("back to the test's namespace: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ln, lerr}
	}()
	r := <-ch
	if r.err != nil {
		n.t.Fatalf("listening in the node's namespace: %v", r.err)
	}
	return r.ln
}

// mgmtNode is the management node's web server as the node sees it: the install
// directory under /install, and a record of the paths asked for.
type mgmtNode struct {
	install string
	store   *configdrive.Store
	port    string
	mu      sync.Mutex
	paths   []string
}

func newMgmtNode(n *node) *mgmtNode {
	n.t.Helper()
	m := &mgmtNode{install: n.t.TempDir()}
	var err error
	if m.store, err = configdrive.OpenStore(m.install, configdrive.StoreOptions{}); err != nil {
		n.t.Fatal(err)
	}
	ln := listenInNode(n)
	files := http.StripPrefix("/install/", http.FileServer(http.Dir(m.install)))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.paths = append(m.paths, r.URL.Path)
		m.mu.Unlock()
		files.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	n.t.Cleanup(func() { _ = srv.Close() })
	_, m.port, _ = net.SplitHostPort(ln.Addr().String())
	n.env = append(n.env, "MASTER_IP=127.0.0.1", "MASTER=mn1", "HTTPPORT="+m.port, "INSTALLDIR=/install", "XCATBM_FETCH_RETRY_DELAY=0")
	return m
}

// requested returns the paths asked for since the last call.
func (m *mgmtNode) requested() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.paths
	m.paths = nil
	return out
}

// write writes tree into the store and returns the postscript's argument.
func (m *mgmtNode) write(t *testing.T, tree *configdrive.Tree) string {
	t.Helper()
	loc, err := m.store.Write(tree)
	if err != nil {
		t.Fatal(err)
	}
	return loc.Path()
}

// wantRequests is what fetching the tree at location asks for: the manifest, then
// every file it lists.
func wantRequests(t *testing.T, m *mgmtNode, location string) []string {
	t.Helper()
	manifest, err := os.ReadFile(filepath.Join(m.install, location, configdrive.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"/install/" + location + "/manifest"}
	for _, l := range strings.Split(strings.TrimSpace(string(manifest)), "\n") {
		out = append(out, "/install/"+location+"/"+l)
	}
	return out
}

// prepareUsers lays out /etc/passwd, root's home with the administrator's key, and
// a cloud-user's home.
func prepareUsers(t *testing.T, root string) {
	t.Helper()
	write(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\ncloud-user:x:1000:1000:Cloud User:/home/cloud-user:/bin/sh\n")
	write(t, root, "root/.ssh/authorized_keys", adminKey)
	must(t, os.Chmod(filepath.Join(root, "root"), 0o700))
	must(t, os.Chmod(filepath.Join(root, "root/.ssh"), 0o700))
	must(t, os.Chmod(filepath.Join(root, "root/.ssh/authorized_keys"), 0o600))
	must(t, os.MkdirAll(filepath.Join(root, "home/cloud-user"), 0o755))
	must(t, os.Chown(filepath.Join(root, "home/cloud-user"), 1000, 1000))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// owned checks p's owner and permission bits.
func owned(t *testing.T, p string, uid, gid int, perm fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != perm {
		t.Errorf("%s: owner %d:%d mode %v, want %d:%d %v", p, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid, perm)
	}
}

// fingerprints lists what ssh-keygen -l reads from an authorized_keys file.
func fingerprints(t *testing.T, keygen, file string) []string {
	t.Helper()
	out, err := exec.Command(keygen, "-l", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -l -f %s: %v\n%s", file, err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// fingerprintOf is ssh-keygen -l of one key.
func fingerprintOf(t *testing.T, keygen, key string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "key.pub")
	must(t, os.WriteFile(f, []byte(key), 0o600))
	return fingerprints(t, keygen, f)[0]
}

// changeWords are the words the scripts log when they change something.
var changeWords = regexp.MustCompile(`wrote|added|removed|set to|installed|created`)

func TestScriptsTenantWithoutCloudInit(t *testing.T) {
	kg := keygen(t)
	for _, sh := range shells(t) {
		t.Run(filepath.Base(strings.Join(sh, "_")), func(t *testing.T) {
			n := newNode(t, sh, "debian")
			prepareUsers(t, n.root)
			m := newMgmtNode(n)
			tree := tenantTree(t)
			loc := m.write(t, tree)

			out := n.run("config_ops_bmnode", "--config-drive", loc, "tenant-1")
			if got, want := m.requested(), wantRequests(t, m, loc); !slices.Equal(got, want) {
				t.Errorf("requests:\n%q\nwant\n%q", got, want)
			}
			if strings.Contains(out, string(loc[len("xcatbm/"):])) {
				t.Errorf("the token is in the output: %s", out)
			}
			keys := filepath.Join(n.root, "root/.ssh/authorized_keys")
			fps := fingerprints(t, kg, keys)
			if len(fps) != 2 || fps[0] != fingerprintOf(t, kg, adminKey) || fps[1] != fingerprintOf(t, kg, tenantKey) {
				t.Errorf("ssh-keygen reads %q", fps)
			}
			if f := n.file("root/.ssh/authorized_keys"); !strings.HasPrefix(f, adminKey) || !strings.Contains(f, "xcatbm-managed") {
				t.Errorf("authorized_keys:\n%s", f)
			}
			owned(t, keys, 0, 0, 0o600)
			owned(t, filepath.Dir(keys), 0, 0, 0o700)
			if n.file("var/lib/xcatbm/user_data") != tenantUserData {
				t.Errorf("user data %q", n.file("var/lib/xcatbm/user_data"))
			}
			owned(t, filepath.Join(n.root, "var/lib/xcatbm/user_data"), 0, 0, 0o600)
			if n.hostname() != "tenant-1" || n.file("etc/hostname") != "tenant-1\n" {
				t.Errorf("hostname %q, /etc/hostname %q", n.hostname(), n.file("etc/hostname"))
			}
			// Files the script writes besides the tenant's keep their usual mode.
			owned(t, filepath.Join(n.root, "etc/hostname"), 0, 0, 0o644)
			owned(t, filepath.Join(n.root, "var/lib/xcatbm/tenant"), 0, 0, 0o600)
			if n.exists("var/lib/cloud/seed/config_drive") {
				t.Error("a cloud-init seed without cloud-init")
			}
			left, _ := filepath.Glob(filepath.Join(n.root, "var/lib/xcatbm/.config-drive*"))
			if len(left) != 0 {
				t.Errorf("staging left: %v", left)
			}

			// Again: the same tree changes nothing.
			before := n.snapshot()
			out = n.run("config_ops_bmnode", "--config-drive", loc, "tenant-1")
			if fmt.Sprint(n.snapshot()) != fmt.Sprint(before) {
				t.Errorf("second run changed files")
			}
			if changeWords.MatchString(out) {
				t.Errorf("second run reports changes: %s", out)
			}

			// Another login user: the keys move there, with that user's ownership.
			n.run("config_ops_bmnode", "--login-user", "cloud-user", "--config-drive", loc, "tenant-1")
			userKeys := filepath.Join(n.root, "home/cloud-user/.ssh/authorized_keys")
			if fps := fingerprints(t, kg, userKeys); len(fps) != 1 || fps[0] != fingerprintOf(t, kg, tenantKey) {
				t.Errorf("cloud-user's keys: %q", fps)
			}
			owned(t, userKeys, 1000, 1000, 0o600)
			owned(t, filepath.Dir(userKeys), 1000, 1000, 0o700)
			if f := n.file("root/.ssh/authorized_keys"); f != adminKey {
				t.Errorf("root's keys after the move:\n%s", f)
			}

			// deconfig removes the tenant's keys and user data, keeps the rest.
			for i := range 2 {
				n.run("deconfig_ops_bmnode", "--no-ip")
				if f := n.file("home/cloud-user/.ssh/authorized_keys"); strings.Contains(f, "ssh-") {
					t.Errorf("deconfig %d: cloud-user's keys left:\n%s", i, f)
				}
				if n.file("root/.ssh/authorized_keys") != adminKey || n.exists("var/lib/xcatbm/user_data") || n.exists("var/lib/xcatbm/tenant") {
					t.Errorf("deconfig %d left tenant data:\n%v", i, n.snapshot())
				}
				if n.hostname() != "node7" {
					t.Errorf("deconfig %d: hostname %q", i, n.hostname())
				}
			}
		})
	}
}

func TestScriptsTenantWgetAndIP(t *testing.T) {
	if _, err := exec.LookPath("wget"); err != nil {
		t.Skip("wget is not installed")
	}
	sh := shells(t)[0]
	n := newNode(t, sh, "debian")
	prepareUsers(t, n.root)
	m := newMgmtNode(n)
	loc := m.write(t, tenantTree(t))
	out, errOut, err := n.try([]string{"XCATBM_FETCH=wget"}, "config_ops_bmnode", "--config-drive", loc, "tenant-2", "10.20.30.40", "24")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	if got, want := m.requested(), wantRequests(t, m, loc); !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
	if got := n.addrs(); len(got) != 1 || got[0] != "10.20.30.40/24" {
		t.Errorf("addresses %v", got)
	}
	if !strings.Contains(n.file("root/.ssh/authorized_keys"), tenantKey) {
		t.Errorf("keys: %s", n.file("root/.ssh/authorized_keys"))
	}
	n.run("deconfig_ops_bmnode", "10.20.30.40")
	if len(n.addrs()) != 0 || n.file("root/.ssh/authorized_keys") != adminKey || n.exists("var/lib/xcatbm/user_data") {
		t.Errorf("after deconfig: %v %v", n.addrs(), n.snapshot())
	}
}

// fakeCloudInit is a cloud-init command that records its arguments and, on init
// --local, takes the seed's instance as cloud-init does.
const fakeCloudInit = `#!/bin/sh
echo "$*" >>"$XCATBM_ROOT/cloud-init.calls"
if [ "$*" = "init --local" ]; then
	mkdir -p "$XCATBM_ROOT/var/lib/cloud/data"
	sed -n 's/^{"uuid": "\([^"]*\)".*/\1/p' "$XCATBM_ROOT/var/lib/cloud/seed/config_drive/openstack/latest/meta_data.json" >"$XCATBM_ROOT/var/lib/cloud/data/instance-id"
fi
`

func TestScriptsTenantWithCloudInit(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(strings.Join(sh, "_")), func(t *testing.T) {
			n := newNode(t, sh, "debian")
			prepareUsers(t, n.root)
			write(t, n.root, "etc/cloud/cloud.cfg", "datasource_list: [ ConfigDrive, None ]\n")
			fake := filepath.Join(t.TempDir(), "cloud-init")
			must(t, os.WriteFile(fake, []byte(fakeCloudInit), 0o755))
			n.env = append(n.env, "XCATBM_CLOUD_INIT="+fake)
			m := newMgmtNode(n)
			tree := tenantTree(t)
			loc := m.write(t, tree)
			calls := func() string {
				b, _ := os.ReadFile(filepath.Join(n.root, "cloud-init.calls"))
				_ = os.Remove(filepath.Join(n.root, "cloud-init.calls"))
				return string(b)
			}

			// From the install-time postscripts: cloud-init has not looked yet.
			n.run("config_ops_bmnode", "--config-drive", loc, "tenant-1")
			seed := filepath.Join(n.root, "var/lib/cloud/seed/config_drive")
			got := map[string]string{}
			_ = filepath.WalkDir(seed, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					b, _ := os.ReadFile(p)
					rel, _ := filepath.Rel(seed, p)
					got[rel] = string(b)
				}
				return err
			})
			if len(got) != len(tree.Drive) {
				t.Errorf("%d files in the seed, want %d", len(got), len(tree.Drive))
			}
			for _, f := range tree.Drive {
				if got[f.Path] != string(f.Data) {
					t.Errorf("seed %s differs", f.Path)
				}
			}
			owned(t, seed, 0, 0, 0o700)
			if n.file("root/.ssh/authorized_keys") != adminKey || n.exists("var/lib/xcatbm/user_data") {
				t.Error("the fallback ran although cloud-init is there")
			}
			if c := calls(); c != "" {
				t.Errorf("cloud-init run before it looked for its datasource: %q", c)
			}
			// The real cloud-init reads the seed as the tenant's instance.
			v := testcloudinit.Read(t, seed, nil)
			if v.InstanceID != tenantUUID || !slices.Equal(v.PublicKeys, []string{tenantKey}) || string(v.UserData) != tenantUserData || v.FQDN != "s1.novalocal" {
				t.Errorf("cloud-init reads instance %q keys %q user data %q fqdn %q", v.InstanceID, v.PublicKeys, v.UserData, v.FQDN)
			}

			// At first boot, after cloud-init looked and found nothing (disabled):
			// every stage runs now, the final one too.
			must(t, os.MkdirAll(filepath.Join(n.root, "run/cloud-init"), 0o755))
			write(t, n.root, "run/cloud-init/disabled", "")
			n.run("config_ops_bmnode", "--config-drive", loc, "tenant-1")
			if c := calls(); c != "clean\ninit --local\ninit\nmodules --mode=config\nmodules --mode=final\n" {
				t.Errorf("cloud-init calls %q", c)
			}
			// Once cloud-init runs the instance, a rerun leaves it alone.
			n.run("config_ops_bmnode", "--config-drive", loc, "tenant-1")
			if c := calls(); c != "" {
				t.Errorf("cloud-init run again: %q", c)
			}
			// Enabled on this boot with another instance: cloud-final.service runs
			// the final stage later.
			write(t, n.root, "var/lib/cloud/data/instance-id", "iid-datasource-none\n")
			must(t, os.Rename(filepath.Join(n.root, "run/cloud-init/disabled"), filepath.Join(n.root, "run/cloud-init/enabled")))
			n.run("config_ops_bmnode", "--config-drive", loc, "tenant-1")
			if c := calls(); c != "clean\ninit --local\ninit\nmodules --mode=config\n" {
				t.Errorf("cloud-init calls %q", c)
			}

			n.run("deconfig_ops_bmnode", "--no-ip")
			if n.exists("var/lib/cloud/seed/config_drive/openstack/latest/meta_data.json") || n.exists("var/lib/xcatbm/tenant") {
				t.Errorf("deconfig left the seed: %v", n.snapshot())
			}
		})
	}
}

func TestScriptsTenantRefuse(t *testing.T) {
	sh := shells(t)[0]
	n := newNode(t, sh, "debian")
	prepareUsers(t, n.root)
	m := newMgmtNode(n)
	loc := m.write(t, tenantTree(t))
	// A tree whose manifest points outside it.
	bad := filepath.Join(m.install, "xcatbm", strings.Repeat("b", 32))
	must(t, os.MkdirAll(bad, 0o755))
	must(t, os.WriteFile(filepath.Join(bad, "manifest"), []byte("config-drive/openstack/../../../etc/passwd\n"), 0o644))
	// A tree without meta_data.json.
	empty := filepath.Join(m.install, "xcatbm", strings.Repeat("c", 32))
	must(t, os.MkdirAll(filepath.Join(empty, "config-drive/openstack/latest"), 0o755))
	must(t, os.WriteFile(filepath.Join(empty, "manifest"), []byte("config-drive/openstack/latest/user_data\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(empty, "config-drive/openstack/latest/user_data"), []byte("x"), 0o644))
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"missing value", []string{"--config-drive"}, nil, "--config-drive takes a value"},
		{"unknown option", []string{"--drive", loc, "h"}, nil, "unknown option --drive"},
		{"absolute location", []string{"--config-drive", "/etc", "h"}, nil, "invalid config drive location"},
		{"dot-dot location", []string{"--config-drive", "xcatbm/../postscripts", "h"}, nil, "invalid config drive location"},
		{"odd character", []string{"--config-drive", "xcatbm/a b", "h"}, nil, "invalid config drive location"},
		{"unknown user", []string{"--login-user", "nobody-here", "--config-drive", loc, "h"}, nil, "no user nobody-here in /etc/passwd"},
		{"bad user", []string{"--login-user", "-x", "--config-drive", loc, "h"}, nil, "invalid login user"},
		{"no such tree", []string{"--config-drive", "xcatbm/" + strings.Repeat("0", 32), "h"}, nil, "cannot fetch the config drive's manifest"},
		{"manifest outside", []string{"--config-drive", "xcatbm/" + strings.Repeat("b", 32), "h"}, nil, "invalid path"},
		{"no meta_data.json", []string{"--config-drive", "xcatbm/" + strings.Repeat("c", 32), "h"}, nil, "no openstack/latest/meta_data.json"},
		{"no management node", []string{"--config-drive", loc, "h"}, []string{"MASTER_IP=", "MASTER="}, "neither MASTER_IP nor MASTER"},
		{"bad fetcher", []string{"--config-drive", loc, "h"}, []string{"XCATBM_FETCH=ftp"}, "want curl or wget"},
		{"bad hostname first", []string{"--config-drive", loc, "bad_name!"}, nil, "invalid hostname"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := n.snapshot()
			out, errOut, err := n.try(tc.env, "config_ops_bmnode", tc.args...)
			if err == nil {
				t.Fatalf("succeeded: %s", out)
			}
			if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr %q, want one line with %q", errOut, tc.want)
			}
			if strings.Contains(errOut+out, strings.TrimPrefix(loc, "xcatbm/")) {
				t.Errorf("the token is in the output: %s%s", out, errOut)
			}
			if fmt.Sprint(n.snapshot()) != fmt.Sprint(before) || n.hostname() != "installed" {
				t.Errorf("a refused run changed the node:\n%v", n.snapshot())
			}
			left, _ := filepath.Glob(filepath.Join(n.root, "var/lib/xcatbm/.config-drive*"))
			if len(left) != 0 {
				t.Errorf("staging left: %v", left)
			}
		})
	}
}
