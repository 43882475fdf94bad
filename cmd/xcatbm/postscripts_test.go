package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xcatbm/postscripts"
)

func TestInstallPostscripts(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "postscripts")
	fromEnv := filepath.Join(t.TempDir(), "fromenv")
	runCmd := func(env map[string]string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		e := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
		code := run(context.Background(), e, append([]string{"xcatbm", "install-postscripts"}, args...))
		return code, out.String(), errOut.String()
	}
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"first", nil, []string{"--dir", dir}, 0, []string{"created   " + filepath.Join(dir, "config_ops_bmnode"), "created   " + filepath.Join(dir, "deconfig_ops_bmnode")}, ""},
		{"again", nil, []string{"--dir", dir}, 0, []string{"unchanged " + filepath.Join(dir, "config_ops_bmnode"), "unchanged " + filepath.Join(dir, "deconfig_ops_bmnode")}, ""},
		{"dir from the environment", map[string]string{"XCATBM_DIR": fromEnv}, nil, 0, []string{"created   " + filepath.Join(fromEnv, "config_ops_bmnode")}, ""},
		{"extra argument", nil, []string{"--dir", dir, "x"}, 2, nil, `unexpected argument "x"`},
		{"bad flag", nil, []string{"--nosuch"}, 2, nil, "xcatbm install-postscripts: unknown flag --nosuch\nsee 'xcatbm install-postscripts --help'\n"},
		{"help", nil, []string{"--help"}, 0, []string{`      env XCATBM_DIR, default "/install/postscripts"`}, ""},
	}
	for _, tc := range tests { // in order: "again" depends on "first"
		code, out, errOut := runCmd(tc.env, tc.args...)
		if code != tc.wantCode {
			t.Errorf("%s: exit %d, want %d; stderr %s", tc.name, code, tc.wantCode, errOut)
		}
		for _, w := range tc.wantOut {
			if !strings.Contains(out, w+"\n") {
				t.Errorf("%s: stdout %q lacks %q", tc.name, out, w)
			}
		}
		if !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("%s: stderr %q lacks %q", tc.name, errOut, tc.wantErr)
		}
	}
	for _, n := range postscripts.Names() {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, %v", n, fi, err)
		}
	}
	// A directory that cannot be made fails with exit 1.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(nil, "--dir", file); code != 1 || errOut == "" {
		t.Errorf("--dir on a file: exit %d, stderr %q", code, errOut)
	}
}
