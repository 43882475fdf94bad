package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartPlaneFails starts the plane with a plane command that fails: startPlane
// returns the command's own error, runs its purge and leaves no directory behind.
func TestStartPlaneFails(t *testing.T) {
	for _, tc := range []struct {
		name      string
		purgeExit int
		want      []string
	}{
		{"start fails", 0, []string{"plane.sh start", "nova-api: address already in use"}},
		{"start and purge fail", 3, []string{"plane.sh start", "nova-api: address already in use", "plane.sh purge", "cannot reach rabbitmqctl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			record := filepath.Join(t.TempDir(), "calls")
			script := filepath.Join(t.TempDir(), "plane.sh")
			body := "#!/bin/bash\necho \"$1 $2\" >> " + record + "\n" +
				"case $1 in\n" +
				"start) mkdir -p \"$2/nova\"; echo 'nova-api: address already in use' >&2; exit 1;;\n" +
				"purge) echo 'cannot reach rabbitmqctl' >&2; exit " + string(rune('0'+tc.purgeExit)) + ";;\n" +
				"esac\n"
			if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			p, err := startPlane(context.Background(), script, "t", false)
			if err == nil || p != nil {
				t.Fatalf("startPlane = %v, %v; want an error", p, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.purgeExit == 0 && strings.Contains(err.Error(), "purge") {
				t.Errorf("error %q mentions a purge that succeeded", err)
			}
			calls, err := os.ReadFile(record)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(calls)), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "start ") || !strings.HasPrefix(lines[1], "purge ") {
				t.Fatalf("plane.sh calls %q, want start then purge", lines)
			}
			left, err := os.ReadDir(tmp)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range left {
				t.Errorf("left behind in TMPDIR: %s", e.Name())
			}
		})
	}
}
