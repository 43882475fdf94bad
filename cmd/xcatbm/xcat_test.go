package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestXCATSubcommandCLI(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the fake command")
	}
	dir := t.TempDir()
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + filepath.Join(dir, "args") + "\n" +
		"echo 'node1: on'\necho 'node2: Error: timeout' >&2\necho 'Warning: slow' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "rpower"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	env := &environment{stdout: &stdout, stderr: &stderr, getenv: func(string) (string, bool) { return "", false }}
	code := run(context.Background(), env, []string{"xcatbm", "xcat", "--xcat-backend", "cli", "--xcat-cli-dir", dir, "rpower", "node[1-2]", "stat"})
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr %s", code, stderr.String())
	}
	if stdout.String() != "node1: on\n" {
		t.Errorf("stdout %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "node2: Error: timeout\n") || !strings.Contains(stderr.String(), "Warning: slow\n") {
		t.Errorf("stderr %q", stderr.String())
	}
	if args, _ := os.ReadFile(filepath.Join(dir, "args")); string(args) != "node[1-2]\nstat\n" {
		t.Errorf("argv %q", args)
	}
}

func TestXCATSubcommandUsage(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	env := &environment{stdout: &out, stderr: &out, getenv: func(string) (string, bool) { return "", false }}
	if code := run(context.Background(), env, []string{"xcatbm", "xcat", "--help"}); code != 0 {
		t.Errorf("--help exit %d", code)
	}
	for _, want := range []string{"usage: xcatbm xcat", "XCATBM_XCAT_BACKEND", "--xcat-cred-dir", "XCATHOST"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run(context.Background(), env, []string{"xcatbm", "xcat", "--xcat-backend", "native", "--xcat-host", "127.0.0.1:1", "--xcat-cred-dir", t.TempDir(), "nodels", "all"}); code != 1 {
		t.Errorf("missing credentials: exit %d, want 1 (%s)", code, out.String())
	}
}
