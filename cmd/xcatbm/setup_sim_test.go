package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"xcatbm/xcat/sim"
)

// runCmd runs one xcatbm subcommand in-process with an empty environment.
func runCmd(t *testing.T, argv ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	env := &environment{stdout: &out, stderr: &out, getenv: func(string) (string, bool) { return "", false }}
	code := run(context.Background(), env, append([]string{"xcatbm"}, argv...))
	return code, out.String()
}

// setupLine returns the report line of item from setup's output.
func setupLine(out, item string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == item {
			return l
		}
	}
	return ""
}

func TestSetupAgainstSimulator(t *testing.T) {
	t.Parallel()
	srv, err := sim.Start(t.Context(), sim.Config{Cluster: sim.GenerateCluster("node", 3, "mn1")})
	if err != nil {
		t.Fatalf("sim.Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	dir := t.TempDir()
	if code, out := runCmd(t, "install-postscripts", "--dir", dir); code != 0 {
		t.Fatalf("install-postscripts: exit %d: %s", code, out)
	}
	flags := []string{"setup", "--xcat-host", srv.Addr(), "--xcat-cred-dir", srv.CredDir(),
		"--dir", dir, "--mgmt-node", "mn1"}

	// --check reports and changes nothing.
	code, out := runCmd(t, append(flags, "--check")...)
	if code != 1 {
		t.Errorf("setup --check: exit %d, want 1 (not ready); output:\n%s", code, out)
	}
	if l := setupLine(out, "site.sshbetweennodes"); !strings.Contains(l, "NOT READY") {
		t.Errorf("setup --check: sshbetweennodes line %q, want NOT READY", l)
	}
	if v := srv.Site("sshbetweennodes"); v != "" {
		t.Errorf("setup --check changed site.sshbetweennodes to %q", v)
	}
	if n := srv.CountRequests("chdef"); n != 0 {
		t.Errorf("setup --check sent %d chdef requests", n)
	}
	for _, item := range []string{"postscripts", "osimages", "nodes"} {
		if l := setupLine(out, item); !strings.Contains(l, "ready") || strings.Contains(l, "NOT READY") {
			t.Errorf("setup --check: %s line %q, want ready", item, l)
		}
	}

	// Without --check, setup sets the site key and everything is ready.
	code, out = runCmd(t, flags...)
	if code != 0 {
		t.Errorf("setup: exit %d, want 0; output:\n%s", code, out)
	}
	if v := srv.Site("sshbetweennodes"); v != "NOGROUPS" {
		t.Errorf("after setup: site.sshbetweennodes %q, want NOGROUPS", v)
	}
	if l := setupLine(out, "nodes"); !strings.Contains(l, "3 owned: node1,node2,node3") {
		t.Errorf("setup: nodes line %q", l)
	}
	if strings.Contains(out, "NOT READY") {
		t.Errorf("setup: something not ready:\n%s", out)
	}

	// Postscripts missing from another directory make setup not ready.
	empty := t.TempDir()
	code, out = runCmd(t, append(flags, "--dir", empty)...)
	if l := setupLine(out, "postscripts"); code != 1 || !strings.Contains(l, "NOT READY") || !strings.Contains(l, "missing") {
		t.Errorf("setup with an empty postscripts dir: exit %d, line %q", code, l)
	}
}
