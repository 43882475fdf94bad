package xcat

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Literal output of xCAT-client commands (XCAT.md §4), parsed as the CLI backend does.
func TestParseCLIOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		stdout, stderr string
		rc             int
		check          func(t *testing.T, r *Response)
	}{
		{"rpower stat", "node1: on\nnode2: off\n", "node3: Error: timeout\n", 1, func(t *testing.T, r *Response) {
			if r.Nodes["node1"].Data[0] != "on" || r.Nodes["node2"].Data[0] != "off" {
				t.Errorf("data: %+v %+v", r.Nodes["node1"], r.Nodes["node2"])
			}
			if n := r.Nodes["node3"]; n.Errors[0] != "timeout" || n.ErrorCode != 1 {
				t.Errorf("node3 = %+v", n)
			}
			if len(r.Errors) != 0 || r.ErrorCode != 1 {
				t.Errorf("top = %+v", r)
			}
		}},
		{"rpower boot old", "node1: on reset\nnode2: off on\n", "", 0, func(t *testing.T, r *Response) {
			if r.Nodes["node1"].Data[0] != "on reset" || r.Nodes["node2"].Data[0] != "off on" {
				t.Errorf("%+v", r.Nodes)
			}
		}},
		{"unknown node", "", "Error: Invalid nodes and/or groups in noderange: foo\n", 1, func(t *testing.T, r *Response) {
			if len(r.Errors) != 1 || r.Errors[0] != "Invalid nodes and/or groups in noderange: foo" || len(r.Nodes) != 0 {
				t.Errorf("%+v", r)
			}
		}},
		{"lsdef no match", "Could not find any object definitions to display.\n", "", 0, func(t *testing.T, r *Response) {
			if len(r.Nodes) != 0 || len(r.Data) != 1 || len(r.Errors) != 0 {
				t.Errorf("%+v", r)
			}
		}},
		{"lsdef long", "Object name: node1\n    arch=x86_64\n    groups=compute,all\n    postscripts=a: b\n", "", 0, func(t *testing.T, r *Response) {
			if len(r.Nodes) != 0 || len(r.Data) != 4 {
				t.Errorf("%+v %+v", r, r.Nodes)
			}
		}},
		{"nodels empty value", "node1: \nnode2: booted\n", "", 0, func(t *testing.T, r *Response) {
			if r.Nodes["node1"].Data[0] != "" || r.Nodes["node2"].Data[0] != "booted" {
				t.Errorf("%+v", r.Nodes)
			}
		}},
		{"chdef warning", "1 object definitions have been created or modified.\n", "Warning: node1: postbootscripts 'x' is already included\n", 0, func(t *testing.T, r *Response) {
			if len(r.Warnings) != 1 || len(r.Errors) != 0 || len(r.Nodes) != 0 {
				t.Errorf("%+v", r)
			}
		}},
		{"node warning", "node1: install img\n", "node1: Warning: slow\nnode2: [sn1]: Error: No MAC address available for this node\n", 1, func(t *testing.T, r *Response) {
			if r.Nodes["node1"].Warnings[0] != "slow" || len(r.Nodes["node1"].Errors) != 0 {
				t.Errorf("node1 %+v", r.Nodes["node1"])
			}
			if r.Nodes["node2"].Errors[0] != "No MAC address available for this node" {
				t.Errorf("node2 %+v", r.Nodes["node2"])
			}
		}},
		{"stray stderr, failing", "", "Usage: rpower <noderange> [on|off]\n", 1, func(t *testing.T, r *Response) {
			if len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0], "Usage") {
				t.Errorf("%+v", r)
			}
		}},
		{"silent failure", "", "", 3, func(t *testing.T, r *Response) {
			if len(r.Errors) != 1 || r.ErrorCode != 3 {
				t.Errorf("%+v", r)
			}
		}},
		{"tabdump", "#key,value,comments,disable\n\"xcatiport\",\"3002\",,\n\"domain\",\"a: \"\"b\"\"\",,\n", "", 0, func(t *testing.T, r *Response) {
			if len(r.Data) != 3 || len(r.Nodes) != 0 {
				t.Errorf("%+v", r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, premature := parseCLIOutput([]byte(tt.stdout), []byte(tt.stderr), tt.rc)
			if premature {
				t.Fatal("premature")
			}
			tt.check(t, r)
		})
	}
	if _, premature := parseCLIOutput([]byte("node1: on\n"), []byte("ERROR/WARNING: communication with the xCAT server seems to have been ended prematurely\n"), 1); !premature {
		t.Error("premature end not seen")
	}
}

// writeCommand places a fake xCAT-client command in dir that prints fixed output and
// records its arguments, one per line, in dir/args.
func writeCommand(t *testing.T, dir, name, stdout, stderr string, rc int) {
	t.Helper()
	script := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > " + filepath.Join(dir, "args") + "\n" +
		"printf '%s' '" + stdout + "'\nprintf '%s' '" + stderr + "' >&2\nexit " + string(rune('0'+rc)) + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestCLIBackend(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the fake command")
	}
	dir := t.TempDir()
	b := NewCLI(CLIConfig{Dir: dir, Env: []string{"PATH=/usr/bin:/bin"}})

	writeCommand(t, dir, "rpower", "node1: on\n", "node2: Error: BMC did not respond\n", 1)
	resp, err := b.Do(context.Background(), Request{Command: "rpower", Noderange: "node1,node2", Args: []string{"stat", "a b;$(x)"}})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if string(args) != "node1,node2\nstat\na b;$(x)\n" {
		t.Errorf("argv = %q", args)
	}
	if resp.Nodes["node1"].Data[0] != "on" || resp.Nodes["node2"].Errors[0] != "BMC did not respond" || resp.ErrorCode != 1 {
		t.Errorf("resp = %+v", resp.Nodes)
	}

	writeCommand(t, dir, "nodels", "", "Error: Invalid nodes and/or groups in noderange: foo\n", 1)
	_, err = b.Do(context.Background(), Request{Command: "nodels", Noderange: "foo"})
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Messages[0] != "Invalid nodes and/or groups in noderange: foo" {
		t.Errorf("err = %v, want CommandError", err)
	}

	writeCommand(t, dir, "rinv", "node1: x\n", "ERROR/WARNING: communication with the xCAT server seems to have been ended prematurely\n", 1)
	if _, err := b.Do(context.Background(), Request{Command: "rinv", Noderange: "node1"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}

	if _, err := b.Do(context.Background(), Request{Command: "missing", Noderange: "node1"}); err == nil {
		t.Error("a missing command did not fail")
	}
	if _, err := b.Do(context.Background(), Request{Command: "rpower", Noderange: "node1\nnode2"}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("err = %v, want ErrInvalidInput", err)
	}
}
