package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
		json    bool
		logged  bool
	}{
		{name: "json default", opts: Options{}, json: true, logged: true},
		{name: "console", opts: Options{Format: "console"}, logged: true},
		{name: "level filters", opts: Options{Format: "json", Level: "warn"}, json: true},
		{name: "bad format", opts: Options{Format: "xml"}, wantErr: true},
		{name: "bad level", opts: Options{Level: "loud"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := New(&buf, "xcatbm-test", tc.opts)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Info().Str(FieldNode, "n01").Msg("hello")
			if !tc.logged {
				if buf.Len() != 0 {
					t.Fatalf("logged below level: %s", buf.String())
				}
				return
			}
			if tc.json {
				var m map[string]any
				if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
					t.Fatalf("not JSON: %q", buf.String())
				}
				if m["node"] != "n01" || m["program"] != "xcatbm-test" || m["message"] != "hello" {
					t.Fatalf("fields: %v", m)
				}
				return
			}
			if !strings.Contains(buf.String(), "node=n01") {
				t.Fatalf("console line: %q", buf.String())
			}
		})
	}
}
