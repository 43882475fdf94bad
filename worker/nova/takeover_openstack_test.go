package nova_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"xcatbm/internal/testkit/testdb"
	"xcatbm/internal/testkit/testopenstack"
	"xcatbm/worker/store"
	"xcatbm/xcat/sim"
)

// TestOpenStackServiceTakeover runs three xcatbm-worker processes with --nova for one
// compute host against the real nova. One holds the nova-compute lease and heartbeats
// the service; it is SIGKILLed, so it cannot give the lease up. Another process must
// take the role over and heartbeat on, so that nova never reports the service down:
// the longest gap between the service's updated_at values nova shows stays under
// nova's service_down_time (60 s), and the service's state stays "up" throughout.
func TestOpenStackServiceTakeover(t *testing.T) {
	p := testopenstack.Start(t)
	host := "xcatbm-" + rnd()
	e := &plane{t: t, p: p, host: host}
	t.Cleanup(e.deleteComputeService) // runs last, once the workers are gone

	dir := t.TempDir()
	bin := filepath.Join(dir, "xcatbm-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "xcatbm/cmd/xcatbm-worker").CombinedOutput(); err != nil {
		t.Fatalf("build worker: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := sim.Start(ctx, sim.Config{Cluster: sim.NewCluster()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	fsys, migrations := store.Migrations()
	db := testdb.New(t, fsys, migrations)

	type proc struct {
		id     string
		cmd    *exec.Cmd
		exited chan struct{}
	}
	logPath := filepath.Join(dir, "workers.log")
	start := func(id string) *proc {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(bin, "--compute-host", host, "--mgmt-node", "mn1", "--worker-id", id,
			"--database-url", db.URL, "--transport-url", p.AMQPURL,
			"--xcat-host", srv.Addr(), "--xcat-cred-dir", srv.CredDir(),
			"--nova", "--placement-url", p.PlacementURL, "--placement-token", testopenstack.Token,
			"--power-sync-interval", "0", "--listen", "", "--log-format", "json", "--database-max-conns", "4",
			"--console-log-dir", t.TempDir(), "--install-dir", t.TempDir())
		cmd.Stdout, cmd.Stderr = f, f
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pr := &proc{id: id, cmd: cmd, exited: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(pr.exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-pr.exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-pr.exited
			}
		})
		return pr
	}
	procs := []*proc{start("w1"), start("w2"), start("w3")}
	role := "nova-compute:" + host
	holder := func() string {
		var h string
		_ = db.QueryRow(`SELECT holder FROM leases WHERE role = $1 AND until > now()`, role).Scan(&h)
		return h
	}

	// beat is one look at the service through nova's API.
	type beat struct {
		state   string
		updated time.Time
	}
	look := func() (beat, bool) {
		lctx, lcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer lcancel()
		st, b, err := p.NovaRequest(lctx, "GET", "/os-services?binary=nova-compute&host="+host, nil)
		if err != nil || st != 200 {
			return beat{}, false
		}
		var out struct {
			Services []struct {
				State     string `json:"state"`
				UpdatedAt string `json:"updated_at"`
			} `json:"services"`
		}
		if json.Unmarshal(b, &out) != nil || len(out.Services) != 1 {
			return beat{}, false
		}
		at, err := time.Parse("2006-01-02T15:04:05.000000", out.Services[0].UpdatedAt)
		if err != nil {
			return beat{}, false
		}
		return beat{out.Services[0].State, at}, true
	}

	// Wait until the service is up in nova, heartbeated by one of the three.
	deadline := time.Now().Add(2 * time.Minute)
	var first string
	for time.Now().Before(deadline) {
		if b, ok := look(); ok && b.state == "up" {
			first = holder()
			if first != "" {
				break
			}
		}
		time.Sleep(time.Second)
	}
	if first == "" {
		t.Fatalf("the service never came up in nova with a lease holder; log:\n%s", tailFile(logPath))
	}
	var victim *proc
	for _, pr := range procs {
		if pr.id == first {
			victim = pr
		}
	}
	if victim == nil {
		t.Fatalf("lease holder %q is none of the processes", first)
	}

	_ = victim.cmd.Process.Signal(syscall.SIGKILL)
	<-victim.exited
	killed := time.Now()
	var updates []time.Time // distinct updated_at values nova showed
	var took time.Duration
	var next string
	for time.Since(killed) < 75*time.Second {
		b, ok := look()
		if ok {
			if b.state != "up" {
				t.Errorf("%v after the kill nova reports the service %s", time.Since(killed).Round(time.Second), b.state)
			}
			if len(updates) == 0 || !b.updated.Equal(updates[len(updates)-1]) {
				updates = append(updates, b.updated)
			}
		}
		if h := holder(); next == "" && h != "" && h != first {
			next, took = h, time.Since(killed)
		}
		// Done once another holder heartbeated twice.
		if next != "" && len(updates) >= 3 && updates[len(updates)-1].After(killed.UTC().Add(took)) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if next == "" {
		t.Fatalf("no process took the nova-compute lease over within 75s; log:\n%s", tailFile(logPath))
	}
	// nova must have recorded a heartbeat of the new holder, or the gap says nothing.
	if len(updates) < 2 || !updates[len(updates)-1].After(killed.UTC().Add(took)) {
		t.Fatalf("nova recorded no heartbeat after %s took the role over (%d updated_at values seen)", next, len(updates))
	}
	var gap time.Duration
	for i := 1; i < len(updates); i++ {
		gap = max(gap, updates[i].Sub(updates[i-1]))
	}
	t.Logf("holder %s SIGKILLed; %s took the role over after %v; longest gap between heartbeats nova recorded: %v (service_down_time 60s)",
		first, next, took.Round(100*time.Millisecond), gap.Round(100*time.Millisecond))
	if gap >= 60*time.Second {
		t.Errorf("nova saw no heartbeat for %v, past service_down_time", gap)
	}
	if !slices.ContainsFunc(procs, func(pr *proc) bool { return pr.id == next && pr != victim }) {
		t.Errorf("new holder %q is not one of the surviving processes", next)
	}
}

// tailFile is the end of a log file, for failure messages.
func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
