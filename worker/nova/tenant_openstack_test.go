package nova_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"xcatbm/internal/testkit/testcloudinit"
	"xcatbm/internal/testkit/testopenstack"
	"xcatbm/postscripts/genesis"
	"xcatbm/worker"
	"xcatbm/worker/configdrive"
	"xcatbm/xcat/sim"
)

// The osimages of the tenant test's simulated cluster: the one every server is built
// from (sim.NewCluster's), the one it is rebuilt on, and the netboot rescue system.
const (
	tenantBuildImage   = "rhels7.5-x86_64-install-compute"
	tenantRebuildImage = "rocky9.4-x86_64-install-compute"
	tenantRescueImage  = "rescue-x86_64-netboot-compute"
)

// cli runs Debian's `openstack` client against the plane, through the clouds.yaml
// of writeClouds, and returns its standard output; it fails the test when the
// client exits non-zero.
type cli struct {
	t      *testing.T
	clouds string
}

// writeClouds writes the clouds.yaml the real client needs to drive the plane
// without Keystone: the admin_token plugin, each service's endpoint given, compute
// at 2.92 (the newest this client accepts).
func writeClouds(t *testing.T, p *testopenstack.Plane) cli {
	t.Helper()
	f := filepath.Join(t.TempDir(), "clouds.yaml")
	body := fmt.Sprintf(`clouds:
  e2e:
    auth_type: admin_token
    auth:
      endpoint: %[1]s
      token: %[2]s
    compute_endpoint_override: %[1]s
    image_endpoint_override: %[3]s
    network_endpoint_override: %[4]s
    placement_endpoint_override: %[5]s
    compute_api_version: "2.92"
    image_api_version: "2"
`, p.NovaURL, testopenstack.Token, p.GlanceURL, p.NeutronURL, p.PlacementURL)
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cli{t: t, clouds: f}
}

func (c cli) run(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/openstack", args...)
	// Debian's client with Debian's Python and nothing of another Python's setup.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + c.t.TempDir(), "LC_ALL=C.UTF-8",
		"OS_CLIENT_CONFIG_FILE=" + c.clouds, "OS_CLOUD=e2e"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	begin := time.Now()
	err := cmd.Run()
	c.t.Logf("openstack %s: %s, rc %v", strings.Join(args, " "), time.Since(begin).Round(time.Millisecond), cmd.ProcessState.ExitCode())
	if err != nil {
		c.t.Fatalf("openstack %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String()
}

// waitStatus polls `openstack server show` until the server's status is want with no
// task under way (the client has no --wait for rescue and unrescue; nova shows
// RESCUE as soon as the API has set task_state rescuing).
func (c cli) waitStatus(server, want string, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	var last struct {
		Status string  `json:"status"`
		Task   *string `json:"OS-EXT-STS:task_state"`
	}
	for time.Now().Before(deadline) {
		out := c.run("server", "show", "-f", "json", "-c", "status", "-c", "OS-EXT-STS:task_state", server)
		if err := json.Unmarshal([]byte(out), &last); err != nil {
			c.t.Fatalf("server show: %v: %s", err, out)
		}
		if last.Status == want && (last.Task == nil || *last.Task == "" || *last.Task == "None") {
			return
		}
		if last.Status == "ERROR" {
			c.t.Fatalf("server %s went ERROR waiting for %s: %s", server, want, c.run("server", "show", "-f", "value", "-c", "fault", server))
		}
		time.Sleep(time.Second)
	}
	c.t.Fatalf("server %s is %s (task %v) after %s, want %s", server, last.Status, last.Task, within, want)
}

// leftOnManagementNode lists what the store directory under the install directory
// holds besides the cleaning runimage: tenant data that outlived its delivery.
func leftOnManagementNode(t *testing.T, installDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(installDir, configdrive.StoreDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != genesis.CleanImageName(worker.CleanMetadata) {
			out = append(out, e.Name())
		}
	}
	return out
}

// dbHolding names the worker's tables with rows whose text holds s, as written or
// hex-encoded (bytea columns read as hex).
func (e *plane) dbHolding(s string) []string {
	e.t.Helper()
	rows, err := e.st.DB().Query(`SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		tables = append(tables, n)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	if !slices.Contains(tables, "jobs") {
		e.t.Fatalf("the worker's tables are not in the current schema: %v", tables)
	}
	var out []string
	for _, tb := range tables {
		var n int
		q := fmt.Sprintf(`SELECT count(*) FROM %q x WHERE strpos(x::text, $1) > 0 OR strpos(x::text, $2) > 0`, tb)
		if err := e.st.DB().QueryRow(q, s, hex.EncodeToString([]byte(s))).Scan(&n); err != nil {
			e.t.Fatalf("%s: %v", tb, err)
		}
		if n > 0 {
			out = append(out, fmt.Sprintf("%s (%d rows)", tb, n))
		}
	}
	return out
}

// driveView hands the config drive a node fetched to the real cloud-init.
func driveView(t *testing.T, f sim.ConfigDriveFetch) testcloudinit.View {
	t.Helper()
	dir := t.TempDir()
	for p, b := range f.Files {
		rel, ok := strings.CutPrefix(p, configdrive.DriveDir+"/")
		if !ok {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return testcloudinit.Read(t, dir, nil)
}

// nodeCommands returns the xCAT requests that named node, "command args...".
func (e *plane) nodeCommands(node string) []string {
	var out []string
	for _, r := range e.sim.NodeCalls(node) {
		out = append(out, strings.TrimSpace(r.Command+" "+strings.Join(r.Args, " ")))
	}
	return out
}

func countPrefix(cmds []string, prefix string) int {
	n := 0
	for _, c := range cmds {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// TestOpenStackTenant drives a tenant's server through the real `openstack` client
// against the real nova plane: a key pair, user data, an admin password and a config
// drive reach the node nova placed the server on (read back by the real cloud-init);
// a rebuild reinstalls the node with the other image and delivers the tenant data
// again; rescue boots the rescue system and unrescue the installed disk; delete
// leaves nothing of the tenant on the management node, cleans the disks while the
// node is held in placement, and gives the node back. No secret reaches the worker's
// log or database.
func TestOpenStackTenant(t *testing.T) {
	id := rnd()
	nodes := []string{"bt" + id + "01", "bt" + id + "02"}
	cluster := sim.NewCluster(ipmiNode(nodes[0], "10.0.2.1"), ipmiNode(nodes[1], "10.0.2.2"))
	for name, a := range map[string][2]string{tenantRebuildImage: {"rocky9.4", "install"}, tenantRescueImage: {"rescue", "netboot"}} {
		cluster.OSImages[name] = map[string]string{"profile": "compute", "imagetype": "linux", "provmethod": a[1],
			"osname": "Linux", "osvers": a[0], "osarch": "x86_64"}
	}
	installDir := t.TempDir()
	e := startPlaneWith(t, planeOpts{id: id, nodes: nodes, register: true, cluster: cluster, debugLog: true,
		simCfg: func(c *sim.Config) {
			c.InstallDir = installDir
			// A cleaning long enough to see the node held in placement while it runs.
			c.Timeline = sim.DefaultTimeline
			c.Timeline.Cleaning = 8 * time.Second
		},
		workCfg: func(c *worker.Config) {
			c.InstallDir, c.RescueOSImage, c.CleanMode, c.DHCPDomain = installDir, tenantRescueImage, worker.CleanMetadata, "novalocal"
		}})
	osc := writeClouds(t, e.p)

	// The tenant's key pair, made by ssh-keygen, and the secrets to look for.
	keyDir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tenant-"+id, "-f", filepath.Join(keyDir, "id")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pubBytes, err := os.ReadFile(filepath.Join(keyDir, "id.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub := strings.TrimSpace(string(pubBytes))
	canary := "CANARY-userdata-" + id
	script := "#!/bin/sh\necho " + canary + " > /root/hello\n"
	udFile := filepath.Join(t.TempDir(), "init.sh")
	if err := os.WriteFile(udFile, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	pass := map[string]string{"build": "CANARY-pass-build-" + id, "rebuild": "CANARY-pass-rebuild-" + id, "rescue": "CANARY-pass-rescue-" + id}

	fp, err := exec.Command("ssh-keygen", "-l", "-f", filepath.Join(keyDir, "id.pub")).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v", err)
	}
	fingerprint := strings.TrimSpace(string(fp))
	key := "key-" + id
	osc.run("keypair", "create", "--public-key", filepath.Join(keyDir, "id.pub"), key)
	if got := strings.TrimSpace(osc.run("keypair", "show", "--public-key", key)); got != pub {
		t.Fatalf("nova holds the key pair as %q, want %q", got, pub)
	}
	imgFile := filepath.Join(t.TempDir(), "stand-in")
	if err := os.WriteFile(imgFile, []byte("xcat osimage stand-in"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := strings.TrimSpace(osc.run("image", "create", "-f", "value", "-c", "id", "--disk-format", "raw", "--container-format", "bare",
		"--public", "--file", imgFile, "--property", "xcat_image_name="+tenantRebuildImage, "rocky-"+id))

	// Boot.
	name := "tenant-" + id
	server := strings.TrimSpace(osc.run("server", "create", "-f", "value", "-c", "id", "--flavor", e.flavor, "--image", e.image,
		"--key-name", key, "--user-data", udFile, "--config-drive", "True", "--password", pass["build"], "--nic", "none", "--wait", name))
	srv := e.waitServer(server, "ACTIVE", time.Minute)
	node, _ := srv["OS-EXT-SRV-ATTR:hypervisor_hostname"].(string)
	if !slices.Contains(nodes, node) {
		t.Fatalf("server %s on node %q, want one of %v", server, node, nodes)
	}
	otherNode := nodes[0]
	if otherNode == node {
		otherNode = nodes[1]
	}
	checkDrive := func(step string, n int, password string) {
		t.Helper()
		fetches := e.sim.ConfigDriveFetches(node)
		if len(fetches) != n || fetches[n-1].Err != "" {
			var errs []string
			for _, f := range fetches {
				errs = append(errs, f.Location+": "+f.Err)
			}
			t.Fatalf("%s: %s fetched %d config drives, want %d without error: %q", step, node, len(fetches), n, errs)
		}
		f := fetches[n-1]
		v := driveView(t, f)
		// nova keeps the key as the client sent it, with ssh-keygen's newline.
		if !slices.ContainsFunc(v.PublicKeys, func(k string) bool { return strings.TrimSpace(k) == pub }) {
			t.Errorf("%s: cloud-init reads the public keys %q, want %q", step, v.PublicKeys, pub)
		}
		if string(v.UserData) != script {
			t.Errorf("%s: cloud-init reads the user data %q, want %q", step, v.UserData, script)
		}
		if v.AdminPass == nil || *v.AdminPass != password {
			t.Errorf("%s: cloud-init reads another admin password (set: %v)", step, v.AdminPass != nil)
		}
		if v.InstanceID != server || !strings.HasPrefix(v.LocalHostname, name) {
			t.Errorf("%s: cloud-init reads instance %q hostname %q, want %s and %s", step, v.InstanceID, v.LocalHostname, server, name)
		}
		if !strings.Contains(string(f.Files["authorized_keys"]), pub) {
			t.Errorf("%s: authorized_keys for images without cloud-init: %q", step, f.Files["authorized_keys"])
		}
		if len(e.sim.ConfigDriveFetches(otherNode)) != 0 {
			t.Errorf("%s: %s, which runs no server, fetched tenant data", step, otherNode)
		}
		if left := leftOnManagementNode(t, installDir); len(left) != 0 {
			t.Errorf("%s: tenant data left on the management node once delivered: %v", step, left)
		}
		t.Logf("%s: %s fetched %d files of its config drive at %s, key %s", step, node, len(f.Files), f.Time.Format(time.RFC3339Nano), fingerprint)
	}
	checkDrive("create", 1, pass["build"])
	if cmds := e.nodeCommands(node); countPrefix(cmds, "nodeset osimage="+tenantBuildImage) != 1 {
		t.Errorf("create: %v", cmds)
	}

	// Rebuild on the other image: the same node reinstalled, the tenant data again.
	e.sim.ResetRequests()
	osc.run("server", "rebuild", "--image", other, "--password", pass["rebuild"], "--wait", server)
	srv = e.waitServer(server, "ACTIVE", time.Minute)
	if img, _ := srv["image"].(map[string]any); img["id"] != other {
		t.Errorf("server image after the rebuild: %v, want %s", srv["image"], other)
	}
	if n := srv["OS-EXT-SRV-ATTR:hypervisor_hostname"]; n != node {
		t.Errorf("rebuilt on node %v, want %s", n, node)
	}
	cmds := e.nodeCommands(node)
	for _, want := range []string{"nodeset osimage=" + tenantRebuildImage, "rsetboot net", "rpower boot"} {
		if countPrefix(cmds, want) != 1 {
			t.Errorf("rebuild: %q %d times in %v", want, countPrefix(cmds, want), cmds)
		}
	}
	checkDrive("rebuild", 2, pass["rebuild"])

	// Rescue into the rescue osimage, then back to the installed disk.
	e.sim.ResetRequests()
	osc.run("server", "rescue", "--password", pass["rescue"], server)
	osc.waitStatus(server, "RESCUE", 3*time.Minute)
	if cmds := e.nodeCommands(node); countPrefix(cmds, "nodeset osimage="+tenantRescueImage) != 1 || countPrefix(cmds, "rpower boot") != 1 {
		t.Errorf("rescue: %v", cmds)
	}
	checkDrive("rescue", 3, pass["rescue"])
	e.sim.ResetRequests()
	osc.run("server", "unrescue", server)
	osc.waitStatus(server, "ACTIVE", 3*time.Minute)
	cmds = e.nodeCommands(node)
	for _, want := range []string{"nodeset boot", "rsetboot hd", "rpower boot"} {
		if countPrefix(cmds, want) != 1 {
			t.Errorf("unrescue: %q %d times in %v", want, countPrefix(cmds, want), cmds)
		}
	}
	if countPrefix(cmds, "nodeset osimage") != 0 || len(e.sim.ConfigDriveFetches(node)) != 3 {
		t.Errorf("unrescue reinstalled the node: %v", cmds)
	}

	// Delete: the node is held while its disks are erased, then given back.
	osc.run("server", "delete", "--wait", server)
	e.waitServer(server, "gone", time.Minute)
	held := false
	deadline := time.Now().Add(3 * time.Minute)
	for {
		used, reserved := e.provider(node)
		if reserved == 1 {
			held = true
		}
		if used == 0 && reserved == 0 && len(e.sim.Cleanings(node)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("provider of %s after the delete: used %d reserved %d", node, used, reserved)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !held {
		t.Errorf("%s was schedulable while its disks were being erased", node)
	}
	cl := e.sim.Cleanings(node)
	if len(cl) != 1 || cl[0].Err != "" || cl[0].Mode != worker.CleanMetadata {
		t.Errorf("cleanings of %s: %+v, want one metadata erase", node, cl)
	}
	if len(e.sim.Cleanings(otherNode)) != 0 {
		t.Errorf("%s, never a tenant's, was cleaned", otherNode)
	}
	if left := leftOnManagementNode(t, installDir); len(left) != 0 {
		t.Errorf("tenant data left on the management node after the delete: %v", left)
	}
	if st, _ := e.sim.Node(node); slices.ContainsFunc(st.PostBootScripts, func(s string) bool { return strings.Contains(s, "config_ops_bmnode") }) {
		t.Errorf("%s's postbootscripts after the delete: %v", node, st.PostBootScripts)
	}

	// The node is nova's again: two servers take both nodes.
	var again []string
	var on []string
	for i := range 2 {
		s := strings.TrimSpace(osc.run("server", "create", "-f", "value", "-c", "id", "--flavor", e.flavor, "--image", e.image,
			"--nic", "none", "--wait", fmt.Sprintf("again-%s-%d", id, i)))
		again = append(again, s)
		n, _ := e.waitServer(s, "ACTIVE", time.Minute)["OS-EXT-SRV-ATTR:hypervisor_hostname"].(string)
		on = append(on, n)
	}
	if !slices.Contains(on, node) || !slices.Contains(on, otherNode) {
		t.Errorf("two servers after the clean went to %v, want %s and %s", on, node, otherNode)
	}
	osc.run(append([]string{"server", "delete", "--wait"}, again...)...)

	// No secret in the worker's log or database.
	secrets := []string{canary, base64.StdEncoding.EncodeToString([]byte(script))}
	for _, p := range pass {
		secrets = append(secrets, p)
	}
	logged := e.log.String()
	if !strings.Contains(logged, server) {
		t.Fatalf("the worker's log does not name the server: the secrets check would read nothing")
	}
	for _, s := range secrets {
		if strings.Contains(logged, s) {
			t.Errorf("the worker's log holds a secret (%.12s...)", s)
		}
		if where := e.dbHolding(s); len(where) != 0 {
			t.Errorf("the worker's database holds a secret (%.12s...): %v", s, where)
		}
	}
	if where := e.dbHolding(server); len(where) == 0 {
		t.Errorf("the database check finds not even the server's uuid")
	}
}
