package config

import (
	"bytes"
	"flag"
	"strings"
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

func TestAlias(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		want   string
		stderr string
	}{
		{name: "new flag", args: []string{"--xcat-host", "a:1"}, want: "a:1"},
		{name: "old flag", args: []string{"--host", "b:1"}, want: "b:1",
			stderr: "prog: --host (env XCATBM_HOST) is deprecated and goes away in the next release; use --xcat-host\n"},
		{name: "old variable", env: map[string]string{"XCATBM_HOST": "c:1"}, want: "c:1", stderr: "prog: --host (env XCATBM_HOST) is deprecated and goes away in the next release; use --xcat-host\n"},
		{name: "new variable wins over old", env: map[string]string{"XCATBM_HOST": "c:1", "XCATBM_XCAT_HOST": "d:1"}, want: "d:1"},
		{name: "old flag wins over new variable", args: []string{"--host", "b:1"}, env: map[string]string{"XCATBM_XCAT_HOST": "d:1"}, want: "b:1",
			stderr: "prog: --host (env XCATBM_HOST) is deprecated and goes away in the next release; use --xcat-host\n"},
		{name: "new flag wins over old variable", args: []string{"--xcat-host", "a:1"}, env: map[string]string{"XCATBM_HOST": "c:1"}, want: "a:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			var x XCAT
			BindXCAT(fs, &x)
			Alias(fs, "host", "xcat-host")
			var stdout, stderr bytes.Buffer
			if code, done := ParseCommandLine(fs, tc.args, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }, &stdout, &stderr); done {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if x.Host != tc.want || stderr.String() != tc.stderr {
				t.Errorf("host %q stderr %q; want %q %q", x.Host, stderr.String(), tc.want, tc.stderr)
			}
		})
	}
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	var x XCAT
	BindXCAT(fs, &x)
	Alias(fs, "host", "xcat-host")
	var help bytes.Buffer
	PrintFlags(&help, fs)
	want := "\nDeprecated names, still accepted in this release and removed in the next:\n  --host (env XCATBM_HOST): use --xcat-host\n"
	if !strings.HasSuffix(help.String(), want) || strings.Count(help.String(), "--host") != 1 {
		t.Errorf("help does not list --host only as deprecated:\n%s", help.String())
	}
}
