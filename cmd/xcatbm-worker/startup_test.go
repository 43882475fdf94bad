package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"xcatbm/internal/testkit/testamqp"
	"xcatbm/internal/testkit/testdb"
	"xcatbm/xcat/sim"
)

// buildWorker builds the worker binary once per test.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xcatbm-worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// rabbitURL is the test broker's URL for vhost as an oslo transport URL.
func rabbitURL(amqpURL string) string { return "rabbit://" + strings.TrimPrefix(amqpURL, "amqp://") }

// TestStartupPermanentErrors starts the worker binary with each setting a retry
// cannot cure: it stops at once with exit code 78 and a last log line saying what to
// fix, having tried nothing after the step at fault.
func TestStartupPermanentErrors(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	db := testdb.New(t, nil, "")
	vh := testamqp.New(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	closed := "xcatbm-test-closed-" + hex.EncodeToString(b[:])
	testamqp.Ctl(t, "add_vhost", closed) // no permissions granted on it
	t.Cleanup(func() { testamqp.Ctl(t, "delete_vhost", closed) })
	base := strings.TrimSuffix(testdb.ServerURL(), "/test?sslmode=disable")
	good := rabbitURL(vh.URL)
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"missing role", []string{"XCATBM_DATABASE_URL=" + strings.Replace(base, "postgres@", "xcatbm_nosuchrole@", 1) + "/test?sslmode=disable"},
			[]string{`PostgreSQL refused the login of role \"xcatbm_nosuchrole\"`, "createuser xcatbm_nosuchrole", "28000"}},
		{"missing database", []string{"XCATBM_DATABASE_URL=" + base + "/xcatbm_nosuchdb?sslmode=disable"},
			[]string{`PostgreSQL has no database \"xcatbm_nosuchdb\"`, "createdb -O postgres xcatbm_nosuchdb", "3D000"}},
		{"broker password refused", []string{"XCATBM_DATABASE_URL=" + db.URL, "XCATBM_TRANSPORT_URL=rabbit://guest:wrong@127.0.0.1:5672/" + vh.Name},
			[]string{`RabbitMQ refused user \"guest\"`, "XCATBM_TRANSPORT_URL"}},
		{"vhost access refused", []string{"XCATBM_DATABASE_URL=" + db.URL, "XCATBM_TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/" + closed},
			[]string{`RabbitMQ refuses vhost \"` + closed + `\" to user \"guest\"`, "rabbitmqctl set_permissions -p " + closed + " guest"}},
		{"missing vhost", []string{"XCATBM_DATABASE_URL=" + db.URL, "XCATBM_TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/xcatbm-nosuchvhost"},
			[]string{`RabbitMQ refuses vhost \"xcatbm-nosuchvhost\" to user \"guest\"`, "rabbitmqctl add_vhost xcatbm-nosuchvhost"}},
		{"xcat credentials missing", []string{"XCATBM_DATABASE_URL=" + db.URL, "XCATBM_TRANSPORT_URL=" + good, "XCATBM_XCAT_CRED_DIR=/nonexistent-xcatbm"},
			[]string{"copy ca.pem and client-cred.pem", "/nonexistent-xcatbm/client-cred.pem"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--compute-host", "h1", "--listen", "", "--log-format", "json")
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, tc.env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			last := lines[len(lines)-1]
			if code != exitConfig {
				t.Fatalf("exit %d (%v), want %d; output:\n%s", code, err, exitConfig, out.String())
			}
			if !strings.Contains(last, `"level":"error"`) || !strings.Contains(last, "worker stopped: ") {
				t.Errorf("last line %s is not the stop's reason", last)
			}
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("last line %s lacks %s", last, w)
				}
			}
		})
	}
}

// TestStopReasonLogged: a worker stopped by SIGTERM exits 0 and says so in its last
// line.
func TestStopReasonLogged(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	db := testdb.New(t, nil, "")
	vh := testamqp.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := sim.Start(ctx, sim.Config{Cluster: sim.NewCluster()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cmd := exec.CommandContext(ctx, bin, "--compute-host", "h1", "--listen", "", "--log-format", "json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XCATBM_DATABASE_URL=" + db.URL,
		"XCATBM_TRANSPORT_URL=" + rabbitURL(vh.URL), "XCATBM_XCAT_HOST=" + srv.Addr(), "XCATBM_XCAT_CRED_DIR=" + srv.CredDir(),
		"XCATBM_POWER_SYNC_INTERVAL=0", "XCATBM_INSTALL_DIR=", "XCATBM_CLEAN_MODE=off", "XCATBM_CONSOLE_LOG_DIR=" + t.TempDir()}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(stderr)
	signaled := false
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if !signaled && strings.Contains(sc.Text(), "consuming") {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			signaled = true
		}
	}
	err = cmd.Wait()
	if !signaled {
		t.Fatalf("the worker never said it was consuming (%v):\n%s", err, strings.Join(lines, "\n"))
	}
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, strings.Join(lines, "\n"))
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, `"reason":"received signal SIGTERM"`) || !strings.Contains(last, `"message":"worker stopped"`) {
		t.Errorf("last line %s does not give SIGTERM as the reason", last)
	}
}
