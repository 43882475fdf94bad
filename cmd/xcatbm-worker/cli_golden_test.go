package main

import (
	"bytes"
	"context"
	"testing"

	"xcatbm/internal/testkit/golden"
)

// TestCLIGolden: --help goes to stdout with exit 0, and each usage error is one line
// saying what is wrong and a pointer to --help, exit 2, exactly as
// testdata/cli/*.golden hold them (go test -update rewrites them).
func TestCLIGolden(t *testing.T) {
	for name, argv := range map[string][]string{
		"help":                    {"--help"},
		"no-compute-host":         nil,
		"unknown-flag":            {"--nosuch"},
		"unexpected-argument":     {"--compute-host", "h", "extra"},
		"bad-log-format":          {"--compute-host", "h", "--log-format", "xml"},
		"bad-transport-url":       {"--compute-host", "h", "--transport-url", "rabbit//guest:secret@host"},
		"bad-duration":            {"--compute-host", "h", "--lease", "ten"},
		"bad-max-in-flight":       {"--compute-host", "h", "--max-in-flight", "0"},
		"bad-job-events":          {"--compute-host", "h", "--job-events", "some"},
		"bad-notification-format": {"--compute-host", "h", "--notification-format", "xml"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), argv, &stdout, &stderr, func(string) (string, bool) { return "", false })
			golden.Check(t, "cli/"+name, golden.Run{Code: code, Stdout: stdout.String(), Stderr: stderr.String()})
		})
	}
}
