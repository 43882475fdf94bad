package xcat

import (
	"reflect"
	"testing"
)

func TestParsePower(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"on": "on", "off": "off", "suspend": "suspend", "Running": "on", "Not Activated": "off",
		"on reset": "reset", "off on": "on", "reset": "reset", "softoff": "softoff", " On ": "on",
	} {
		if got, ok := parsePower(in); !ok || got != want {
			t.Errorf("parsePower(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "Error: timeout", "maybe"} {
		if _, ok := parsePower(in); ok {
			t.Errorf("parsePower(%q) accepted", in)
		}
	}
}

func TestParseBootDevice(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"Network": "net", "Hard Drive": "hd", "CD/DVD": "cd", "boot override inactive": "default", "Default": "default"} {
		if got, ok := parseBootDevice(in); !ok || got != want {
			t.Errorf("parseBootDevice(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := parseBootDevice("Unknown thing"); ok {
		t.Error("unknown device accepted")
	}
}

func TestParseNodeLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lines []string
		attrs []string
		want  Attrs
	}{
		{[]string{"booted"}, []string{"nodelist.status"}, Attrs{"nodelist.status": "booted"}},
		{[]string{""}, []string{"nodelist.status"}, Attrs{"nodelist.status": ""}},
		{[]string{"nodelist.status: booted", "nodelist.statustime: 01-02-2024 10:00:00", "hosts.ip"}, []string{"nodelist.status", "nodelist.statustime", "hosts.ip"},
			Attrs{"nodelist.status": "booted", "nodelist.statustime": "01-02-2024 10:00:00", "hosts.ip": ""}},
		{[]string{"nodelist.groups: compute (inherited from group rack1)"}, []string{"nodelist.groups", "x.y"}, Attrs{"nodelist.groups": "compute"}},
	}
	for _, tt := range tests {
		if got := parseNodeLs(tt.lines, tt.attrs); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseNodeLs(%q, %q) = %v, want %v", tt.lines, tt.attrs, got, tt.want)
		}
	}
}

func TestParseLsDef(t *testing.T) {
	t.Parallel()
	long := []string{
		"Object name: node1", "    arch=x86_64", "    groups=compute,all", "    postscripts=a=b",
		"Object name: node2", "    bmc=10.0.0.2", "    usercomment=",
		"Could not find any object definitions to display.",
	}
	want := map[string]Attrs{
		"node1": {"arch": "x86_64", "groups": "compute,all", "postscripts": "a=b"},
		"node2": {"bmc": "10.0.0.2", "usercomment": ""},
	}
	if got := parseLsDefLong(long); !reflect.DeepEqual(got, want) {
		t.Errorf("parseLsDefLong = %v, want %v", got, want)
	}
	if got := parseLsDefLong([]string{"Could not find any object definitions to display."}); len(got) != 0 {
		t.Errorf("no-match output gave objects %v", got)
	}
	if got := parseLsDefLong([]string{"node1  (node)", "img1  (osimage)"}); len(got) != 2 || got["img1"] == nil {
		t.Errorf("listing = %v", got)
	}
	c := []string{"node1: arch=x86_64", "node1: groups=all", "node2: arch=ppc64le"}
	wantC := map[string]Attrs{"node1": {"arch": "x86_64", "groups": "all"}, "node2": {"arch": "ppc64le"}}
	if got := parseLsDefC(c); !reflect.DeepEqual(got, wantC) {
		t.Errorf("parseLsDefC = %v, want %v", got, wantC)
	}
}

func TestParseTabDump(t *testing.T) {
	t.Parallel()
	lines := []string{
		"#key,value,comments,disable",
		`"xcatiport","3002",,`,
		`"domain","say ""hi"", there",,"1"`,
		`"master","",,`,
		`"broken`,
	}
	want := []Attrs{
		{"key": "xcatiport", "value": "3002"},
		{"key": "domain", "value": `say "hi", there`, "disable": "1"},
		{"key": "master", "value": ""},
	}
	if got := parseTabDump(lines); !reflect.DeepEqual(got, want) {
		t.Errorf("parseTabDump = %v, want %v", got, want)
	}
}

func TestParseChDefSummary(t *testing.T) {
	t.Parallel()
	if n, ok := parseChDefSummary([]string{"3 object definitions have been created or modified."}); !ok || n != 3 {
		t.Errorf("got %d %v", n, ok)
	}
	// xcatd tags a plugin's warning with its server's name ("[mn1]: ").
	for _, w := range []string{"node1: postbootscripts 'x' is already included", "[mn1]: node1: postbootscripts 'x' is already included"} {
		if node, msg, ok := chdefWarningNode(w); !ok || node != "node1" || msg != "postbootscripts 'x' is already included" {
			t.Errorf("%q: got %q %q %v", w, node, msg, ok)
		}
	}
}

func TestIsTransient(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]bool{
		"timeout":                               true,
		"ERROR: timeout":                        true,
		"BMC did not respond within 10 seconds": true,
		"ERROR: Insufficient resources to create new session (wait for existing sessions to timeout)": true,
		"BMC busy":                           true,
		"ERROR: Incorrect password provided": false,
		"Cannot find the OS image X in the osimage table.": false,
		"No MAC address available for this node":           false,
	} {
		if got := isTransient(msg); got != want {
			t.Errorf("isTransient(%q) = %v, want %v", msg, got, want)
		}
	}
}
