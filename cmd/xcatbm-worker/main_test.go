package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"strings"
	"testing"

	"xcatbm/internal/config"
)

func TestHelpNamesEveryFlagAndVariable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, io.Discard, func(string) (string, bool) { return "", false }); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var o options
	flags(fs, &o)
	fs.VisitAll(func(f *flag.Flag) {
		for _, want := range []string{"--" + f.Name, config.EnvName(f.Name)} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("--help lacks %s", want)
			}
		}
	})
}

func TestBadSettingsExitWithAReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{args: []string{"--nosuchflag"}, code: 2, want: "nosuchflag"},
		{env: map[string]string{"XCATBM_CONCURRENCY": "many"}, code: 2, want: "XCATBM_CONCURRENCY"},
		{args: []string{"--compute-host", "h", "--log-format", "xml"}, code: 2, want: "log format"},
		{code: 2, want: "xcatbm-worker: --compute-host (or XCATBM_COMPUTE_HOST) is required\nsee 'xcatbm-worker --help'\n"},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		code := run(context.Background(), tc.args, io.Discard, &out, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v %v: exit %d, output %q; want %d with %q", tc.args, tc.env, code, out.String(), tc.code, tc.want)
		}
	}
}
