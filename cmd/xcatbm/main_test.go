package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"xcatbm"}, 2, "xcatbm: no command given\nsee 'xcatbm --help'\n"},
		{[]string{"xcatbm", "--help"}, 0, "version"},
		{[]string{"xcatbm", "nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"/usr/bin/xcatbm", "version"}, 0, "xcatbm "},
		{[]string{"/usr/sbin/version"}, 0, "xcatbm "}, // argv[0] names the subcommand
	}
	for _, tc := range tests {
		var out bytes.Buffer
		env := &environment{stdout: &out, stderr: &out, getenv: func(string) (string, bool) { return "", false }}
		if code := run(context.Background(), env, tc.argv); code != tc.wantCode {
			t.Errorf("%v: exit %d, want %d; output %s", tc.argv, code, tc.wantCode, out.String())
		}
		if !strings.Contains(out.String(), tc.wantOut) {
			t.Errorf("%v: output %q lacks %q", tc.argv, out.String(), tc.wantOut)
		}
	}
}
