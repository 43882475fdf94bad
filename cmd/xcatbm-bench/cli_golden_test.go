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
		"help":         {"--help"},
		"unknown-flag": {"--nosuch"},
		"bad-scale":    {"--scale", "2"},
		"bad-runs":     {"--runs", "0"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), argv, &stdout, &stderr)
			golden.Check(t, "cli/"+name, golden.Run{Code: code, Stdout: stdout.String(), Stderr: stderr.String()})
		})
	}
}
