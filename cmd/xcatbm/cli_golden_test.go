package main

import (
	"bytes"
	"context"
	"sort"
	"testing"

	"xcatbm/internal/testkit/golden"
)

// TestCLIGolden: the help of xcatbm and of every subcommand goes to stdout with exit
// 0, and each usage error is one line saying what is wrong and a pointer to --help,
// exit 2, exactly as testdata/cli/*.golden hold them (go test -update rewrites them).
func TestCLIGolden(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"help":                      {"xcatbm", "--help"},
		"no-command":                {"xcatbm"},
		"unknown-command":           {"xcatbm", "frobnicate"},
		"xcat-unknown-flag":         {"xcatbm", "xcat", "--nosuch", "nodels"},
		"xcat-no-command":           {"xcatbm", "xcat"},
		"xcat-descending-range":     {"xcatbm", "xcat", "rpower", "node[10-01]", "stat"},
		"xcat-flag-without-value":   {"xcatbm", "xcat", "--xcat-host"},
		"opsaddbmnode-no-host":      {"opsaddbmnode", "node01"},
		"opsaddbmnode-two-ranges":   {"opsaddbmnode", "node01", "node02", "-s", "h"},
		"opsaddbmnode-descending":   {"opsaddbmnode", "node[10-01]", "-s", "h"},
		"opsaddbmnode-unbalanced":   {"opsaddbmnode", "node[01-", "-s", "h"},
		"opsaddbmnode-bad-output":   {"opsaddbmnode", "node01", "-s", "h", "--output", "xml"},
		"rmbmnode-no-noderange":     {"rmbmnode", "-s", "h"},
		"opsaddimage-unknown-flag":  {"opsaddimage", "--nosuch"},
		"nodes-two-ranges":          {"xcatbm", "nodes", "a", "b"},
		"cleaning-retry-no-range":   {"xcatbm", "cleaning", "retry"},
		"setup-extra-argument":      {"xcatbm", "setup", "now"},
		"install-postscripts-extra": {"xcatbm", "install-postscripts", "x"},
		// The names of earlier releases still work, and say they are going.
		"xcat-deprecated-names":  {"xcatbm", "xcat", "--host", "127.0.0.1:1", "--cred-dir", "/nonexistent-xcatbm", "nodels", "all"},
		"setup-deprecated-names": {"xcatbm", "setup", "--xcatd", "127.0.0.1:1", "--xcat-cred", "/nonexistent-xcatbm/c.pem", "--check"},
	}
	for _, name := range subcommandNames() {
		tests["help-"+name] = []string{"xcatbm", name, "--help"}
	}
	for name, argv := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			env := &environment{stdout: &stdout, stderr: &stderr, getenv: func(string) (string, bool) { return "", false }}
			code := run(context.Background(), env, argv)
			golden.Check(t, "cli/"+name, golden.Run{Code: code, Stdout: stdout.String(), Stderr: stderr.String()})
		})
	}
}

func subcommandNames() []string {
	var names []string
	for n := range subcommands {
		if n != "version" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}
