package worker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xcatbm/messages/novacast"
	"xcatbm/worker"
	"xcatbm/worker/store"
	"xcatbm/xcat/sim"
)

// tenantCanary is planted in the user data and the admin password.
const tenantCanary = "CANARY-tenant-3f9c"

// tenantKey is the public key of the captured tenant build.
const tenantKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICympHXpUTGkr/k6ikER7ej/1JJ+qTG20PJzBuKUQpmZ"

const rescueImage = "rescue-x86_64-netboot-compute"

// tenantEnv is a simulator and a worker sharing one install directory, with a
// netboot rescue osimage defined.
func tenantEnv(t *testing.T, rescue string, nodes ...sim.NodeSpec) (*env, worker.Config) {
	t.Helper()
	dir := t.TempDir()
	e := newEnvWith(t, func(c *sim.Config) {
		c.InstallDir = dir
		c.Cluster.OSImages[rescueImage] = map[string]string{"profile": "compute", "imagetype": "linux", "provmethod": "netboot",
			"osname": "Linux", "osvers": "rescue", "osarch": "x86_64"}
	}, nodes...)
	cfg := testConfig()
	cfg.InstallDir, cfg.RescueOSImage, cfg.DHCPDomain = dir, rescue, "novalocal"
	return e, cfg
}

// trees lists the tenant data trees left in the install directory.
func trees(t *testing.T, cfg worker.Config) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(cfg.InstallDir, "xcatbm"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// dbHolds counts rows of the worker's tables whose text holds s.
func dbHolds(t *testing.T, e *env, s string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, q := range []struct{ table, expr string }{
		{"jobs", "request::text || data::text || error"}, {"job_history", "detail"},
		{"outbox", "convert_from(body, 'UTF8')"}, {"nova_outbox", "payload::text"},
	} {
		var n int
		if err := e.db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM %s WHERE strpos(%s, $1) > 0`, q.table, q.expr), s).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out[q.table] = n
		}
	}
	return out
}

// TestTenantDataReachesItsNode: a server booted with a key pair, user data and an
// admin password gets them in its config drive, fetched by its node alone during
// the install; afterwards nothing of it is left on the management node, and the
// secrets were never in the database.
func TestTenantDataReachesItsNode(t *testing.T) {
	t.Parallel()
	e, cfg := tenantEnv(t, "", ipmiNode("n61", "10.0.0.61"), ipmiNode("n62", "10.0.0.62"))
	e.startWorker(cfg)
	script := "#!/bin/sh\necho " + tenantCanary + " > /root/hello\n"
	ud := base64.StdEncoding.EncodeToString([]byte(script))
	const uuid = "61616161-6161-4161-8161-616161616161"
	e.cast(castSpec{file: novacast.TenantBuild, node: "n61", uuid: uuid, hostname: "web-1", image: image, userData: ud, secret: tenantCanary})
	if j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second); j.State != string(worker.StateDone) {
		t.Fatalf("spawn ended %s: %s", j.State, j.Error)
	}
	fetches := e.sim.ConfigDriveFetches("n61")
	if len(fetches) != 1 || fetches[0].Err != "" {
		t.Fatalf("n61 fetched %+v; want one delivery", fetches)
	}
	f := fetches[0]
	if string(f.Files["config-drive/openstack/latest/user_data"]) != script {
		t.Errorf("user_data delivered: %q", f.Files["config-drive/openstack/latest/user_data"])
	}
	var md map[string]any
	if err := json.Unmarshal(f.Files["config-drive/openstack/latest/meta_data.json"], &md); err != nil {
		t.Fatal(err)
	}
	if md["uuid"] != uuid || md["admin_pass"] != tenantCanary || !strings.HasPrefix(fmt.Sprint(md["hostname"]), "web-1") {
		t.Errorf("meta_data.json: uuid %v admin_pass set %v hostname %v", md["uuid"], md["admin_pass"] == tenantCanary, md["hostname"])
	}
	if keys := fmt.Sprint(md["public_keys"]); !strings.Contains(keys, tenantKey) {
		t.Errorf("public_keys %s lack the tenant's key", keys)
	}
	if !strings.Contains(string(f.Files["authorized_keys"]), tenantKey) {
		t.Errorf("authorized_keys: %q", f.Files["authorized_keys"])
	}
	if len(e.sim.ConfigDriveFetches("n62")) != 0 {
		t.Errorf("another node fetched tenant data")
	}
	st, _ := e.sim.Node("n61")
	if !strings.Contains(strings.Join(st.PostBootScripts, ","), "config_ops_bmnode --config-drive xcatbm/") {
		t.Errorf("postbootscripts %v lack the config drive argument", st.PostBootScripts)
	}
	if left := trees(t, cfg); len(left) != 0 {
		t.Errorf("tenant data left on the management node after the install: %v", left)
	}
	for _, secret := range []string{tenantCanary, ud} {
		if where := dbHolds(t, e, secret); len(where) != 0 {
			t.Errorf("a secret is in the database: %v", where)
		}
	}
	// Destroyed, the node's postscript entry goes with the instance.
	e.cast(castSpec{file: "cast-terminate_instance.json", node: "n61", uuid: uuid})
	if j := e.waitJob(uuid, worker.KindDestroy, 30*time.Second); j.State != string(worker.StateDone) {
		t.Fatalf("destroy ended %s: %s", j.State, j.Error)
	}
	st, _ = e.sim.Node("n61")
	if strings.Contains(strings.Join(st.PostBootScripts, ","), "config_ops_bmnode") {
		t.Errorf("postbootscripts after the destroy: %v", st.PostBootScripts)
	}
}

// TestBadUserDataFailsTheSpawn: user data that is not base64 refuses the spawn
// before any xCAT request, and nothing is written.
func TestBadUserDataFailsTheSpawn(t *testing.T) {
	t.Parallel()
	e, cfg := tenantEnv(t, "", ipmiNode("n63", "10.0.0.63"))
	e.startWorker(cfg)
	const uuid = "63636363-6363-4363-8363-636363636363"
	e.cast(castSpec{file: novacast.TenantBuild, node: "n63", uuid: uuid, image: image, userData: "not base64!"})
	j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second)
	if j.State != string(worker.StateFailed) || !strings.Contains(j.Error, "user data") {
		t.Fatalf("spawn ended %s: %q; want failed naming the user data", j.State, j.Error)
	}
	if calls := commands(e.sim, "n63"); len(calls) != 0 {
		t.Errorf("xCAT was asked about n63: %v", calls)
	}
	if left := trees(t, cfg); len(left) != 0 {
		t.Errorf("tenant data written for a refused spawn: %v", left)
	}
}

// TestLifecycleRebuildRescueUnrescue: a tenant's server is rebuilt on another
// image (same node, same hostname, the tenant data delivered again with the new
// password), rescued into the site's rescue osimage (key and rescue password
// delivered), and unrescued back to its disk without a reinstall.
func TestLifecycleRebuildRescueUnrescue(t *testing.T) {
	t.Parallel()
	e, cfg := tenantEnv(t, rescueImage, ipmiNode("n64", "10.0.0.64"))
	e.startWorker(cfg)
	const uuid = "64646464-6464-4464-8464-646464646464"
	e.cast(castSpec{file: novacast.TenantBuild, node: "n64", uuid: uuid, hostname: "db-1", image: image, secret: "first-pass"})
	if j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second); j.State != "done" {
		t.Fatalf("spawn: %s %s", j.State, j.Error)
	}
	e.sim.ResetRequests()

	e.cast(castSpec{file: novacast.TenantRebuild, node: "n64", uuid: uuid, hostname: "db-1", image: image, secret: "new-pass"})
	if j := e.waitJob(uuid, worker.KindRebuild, 30*time.Second); j.State != "done" {
		t.Fatalf("rebuild: %s %s", j.State, j.Error)
	}
	cmds := commands(e.sim, "n64")
	for _, want := range []string{"nodeset osimage=" + image, "rsetboot net", "rpower boot"} {
		if count(cmds, want) != 1 {
			t.Errorf("rebuild: %q %d times: %v", want, count(cmds, want), cmds)
		}
	}
	if count(cmds, "chdef node ip") != 0 {
		t.Errorf("a rebuild keeps the address: %v", cmds)
	}
	fetches := e.sim.ConfigDriveFetches("n64")
	if len(fetches) != 2 {
		t.Fatalf("fetches after the rebuild: %d, want 2", len(fetches))
	}
	var md map[string]any
	_ = json.Unmarshal(fetches[1].Files["config-drive/openstack/latest/meta_data.json"], &md)
	if md["admin_pass"] != "new-pass" || fetches[1].Location == fetches[0].Location {
		t.Errorf("the rebuild's tenant data: admin_pass %v, location %s (the build's %s)", md["admin_pass"], fetches[1].Location, fetches[0].Location)
	}
	e.notes.waitFor(t, uuid, "instance.rebuild.end")
	e.notes.waitFor(t, uuid, "compute.instance.rebuild.end")
	e.sim.ResetRequests()

	e.cast(castSpec{file: novacast.TenantRescue, node: "n64", uuid: uuid, hostname: "db-1", secret: "rescue-pass"})
	if j := e.waitJob(uuid, worker.KindRescue, 30*time.Second); j.State != "done" {
		t.Fatalf("rescue: %s %s", j.State, j.Error)
	}
	cmds = commands(e.sim, "n64")
	if count(cmds, "nodeset osimage="+rescueImage) != 1 || count(cmds, "rpower boot") != 1 {
		t.Errorf("rescue: %v", cmds)
	}
	fetches = e.sim.ConfigDriveFetches("n64")
	_ = json.Unmarshal(fetches[len(fetches)-1].Files["config-drive/openstack/latest/meta_data.json"], &md)
	if len(fetches) != 3 || md["admin_pass"] != "rescue-pass" || !strings.Contains(fmt.Sprint(md["public_keys"]), tenantKey) {
		t.Errorf("rescue environment's tenant data: %d fetches, admin_pass %v", len(fetches), md["admin_pass"])
	}
	e.notes.waitFor(t, uuid, "instance.rescue.end")
	e.sim.ResetRequests()

	e.cast(castSpec{file: novacast.TenantUnrescue, node: "n64", uuid: uuid})
	if j := e.waitJob(uuid, worker.KindUnrescue, 30*time.Second); j.State != "done" {
		t.Fatalf("unrescue: %s %s", j.State, j.Error)
	}
	cmds = commands(e.sim, "n64")
	for _, want := range []string{"nodeset boot", "rsetboot hd", "rpower boot"} {
		if count(cmds, want) != 1 {
			t.Errorf("unrescue: %q %d times: %v", want, count(cmds, want), cmds)
		}
	}
	if count(cmds, "nodeset osimage") != 0 {
		t.Errorf("unrescue reinstalled: %v", cmds)
	}
	st, _ := e.sim.Node("n64")
	if strings.Contains(strings.Join(st.PostBootScripts, ","), "config_ops_bmnode") {
		t.Errorf("the rescue's postscript entry stays after unrescue: %v", st.PostBootScripts)
	}
	e.notes.waitFor(t, uuid, "instance.unrescue.end")
	if left := trees(t, cfg); len(left) != 0 {
		t.Errorf("tenant data left: %v", left)
	}
}

// TestLifecycleRefusals: what xcatbm does not do fails the job with a clear fault
// before any xCAT request, and nova hears of it.
func TestLifecycleRefusals(t *testing.T) {
	t.Parallel()
	e, cfg := tenantEnv(t, "", ipmiNode("n65", "10.0.0.65"))
	e.startWorker(cfg)
	const uuid = "65656565-6565-4565-8565-656565656565"
	e.cast(castSpec{file: novacast.TenantBuild, node: "n65", uuid: uuid, image: image})
	if j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second); j.State != "done" {
		t.Fatalf("spawn: %s %s", j.State, j.Error)
	}
	e.sim.ResetRequests()
	cases := []struct {
		name    string
		spec    castSpec
		kind    worker.Kind
		wantErr string
		event   string
	}{
		{"rebuild keeping the ephemeral disk", castSpec{file: novacast.TenantRebuild, image: image, args: map[string]any{"preserve_ephemeral": true}},
			worker.KindRebuild, "preserve_ephemeral is not supported", "instance.rebuild.error"},
		{"evacuation", castSpec{file: novacast.TenantRebuild, image: image, args: map[string]any{"recreate": true}},
			worker.KindRebuild, "evacuation", "instance.rebuild.error"},
		{"rebuild on an image without xcat_image_name", castSpec{file: novacast.TenantRebuild},
			worker.KindRebuild, "xcat_image_name", "instance.rebuild.error"},
		{"rescue where none is configured", castSpec{file: novacast.TenantRescue}, worker.KindRescue, "rescue is not configured", ""},
	}
	for i, c := range cases {
		c.spec.node, c.spec.uuid = "n65", uuid
		e.cast(c.spec)
		j := e.waitJobs(uuid, i+2, 30*time.Second) // the spawn, and one job per case so far
		if j.State != "failed" || !strings.Contains(j.Error, c.wantErr) {
			t.Errorf("%s: %s %q; want failed with %q", c.name, j.State, j.Error, c.wantErr)
		}
		if c.event != "" {
			e.notes.waitFor(t, uuid, c.event)
		}
	}
	if calls := commands(e.sim, "n65"); count(calls, "nodeset") != 0 || count(calls, "rpower") != 0 || count(calls, "chdef") != 0 {
		t.Errorf("refused jobs changed the node: %v", calls)
	}
	if left := trees(t, cfg); len(left) != 0 {
		t.Errorf("tenant data written for refused jobs: %v", left)
	}
}

// waitJobs waits until the instance has n finished jobs and returns the newest.
func (e *env) waitJobs(uuid string, n int, within time.Duration) *store.Job {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		jobs, err := e.st.JobsByInstance(context.Background(), uuid)
		if err != nil {
			e.t.Fatal(err)
		}
		done := 0
		for _, j := range jobs {
			if j.Finished() {
				done++
			}
		}
		if done >= n && len(jobs) > 0 {
			return jobs[len(jobs)-1]
		}
		time.Sleep(25 * time.Millisecond)
	}
	e.t.Fatalf("instance %s: fewer than %d finished jobs within %v", uuid, n, within)
	return nil
}

// TestRescueIntoGenesisShell: with the genesis shell as the rescue environment the
// node boots genesis and the job ends once it reports its shell.
func TestRescueIntoGenesisShell(t *testing.T) {
	t.Parallel()
	e, cfg := tenantEnv(t, "shell", ipmiNode("n66", "10.0.0.66"))
	e.startWorker(cfg)
	const uuid = "66666666-6666-4666-8666-000000000066"
	e.cast(castSpec{file: novacast.TenantBuild, node: "n66", uuid: uuid, image: image})
	if j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second); j.State != "done" {
		t.Fatalf("spawn: %s %s", j.State, j.Error)
	}
	e.cast(castSpec{file: novacast.TenantRescue, node: "n66", uuid: uuid})
	if j := e.waitJob(uuid, worker.KindRescue, 30*time.Second); j.State != "done" {
		t.Fatalf("rescue: %s %s", j.State, j.Error)
	}
	if st, _ := e.sim.Node("n66"); st.Status != "shell" || st.CurrState != "shell" {
		t.Errorf("n66 after rescue: status %q currstate %q", st.Status, st.CurrState)
	}
	if count(commands(e.sim, "n66"), "nodeset shell") != 1 {
		t.Errorf("nodeset shell not sent once: %v", commands(e.sim, "n66"))
	}
}
