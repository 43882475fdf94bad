package config

import (
	"bytes"
	"flag"
	"testing"
	"time"
)

func TestParseCommandLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		args           []string
		env            map[string]string
		code           int
		done           bool
		stdout, stderr string
	}{
		{name: "ok", args: []string{"--lease", "5s"}},
		{name: "help", args: []string{"--help"}, done: true, stdout: "usage: prog\n"},
		{name: "short help", args: []string{"-h"}, done: true, stdout: "usage: prog\n"},
		{name: "unknown flag", args: []string{"--nosuch"}, code: 2, done: true, stderr: "prog: unknown flag --nosuch\nsee 'prog --help'\n"},
		{name: "unknown short flag", args: []string{"-x"}, code: 2, done: true, stderr: "prog: unknown flag -x\nsee 'prog --help'\n"},
		{name: "missing value", args: []string{"--lease"}, code: 2, done: true, stderr: "prog: flag --lease needs a value\nsee 'prog --help'\n"},
		{name: "bad value", args: []string{"--lease", "ten"}, code: 2, done: true, stderr: "prog: --lease \"ten\": parse error\nsee 'prog --help'\n"},
		{name: "bad environment", env: map[string]string{"XCATBM_LEASE": "ten"}, code: 2, done: true,
			stderr: "prog: environment variable XCATBM_LEASE: parse error\nsee 'prog --help'\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			fs.Duration("lease", time.Second, "lease")
			fs.Usage = func() { _, _ = fs.Output().Write([]byte("usage: prog\n")) }
			var stdout, stderr bytes.Buffer
			code, done := ParseCommandLine(fs, tc.args, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }, &stdout, &stderr)
			if code != tc.code || done != tc.done || stdout.String() != tc.stdout || stderr.String() != tc.stderr {
				t.Errorf("code %d done %v stdout %q stderr %q; want %d %v %q %q", code, done, stdout.String(), stderr.String(), tc.code, tc.done, tc.stdout, tc.stderr)
			}
		})
	}
}
