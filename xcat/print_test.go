package xcat

import (
	"bytes"
	"strings"
	"testing"
)

// TestPrintResponse covers the rules of xCAT's client printing that the xcatd
// transcripts (the golden tests in cmd/xcatbm) do not all show.
func TestPrintResponse(t *testing.T) {
	t.Parallel()
	const done = `<xcatresponse><serverdone></serverdone></xcatresponse>`
	tests := []struct {
		name           string
		xml            string
		opts           PrintOptions
		stdout, stderr string
		code           int
	}{
		{"node error tagged with the server, data plain",
			`<xcatresponse><node><name>n2</name><error>timeout</error><errorcode>1</errorcode></node><xcatdsource>mn1</xcatdsource></xcatresponse>` +
				`<xcatresponse><node><name>n1</name><data><contents>on</contents></data></node><xcatdsource>mn1</xcatdsource></xcatresponse>` + done,
			PrintOptions{}, "n1: on\n", "n2: [mn1]: Error: timeout\n", 1},
		{"after a node error the element's other nodes go to stderr",
			`<xcatresponse><node><name>n1</name><error>x</error></node><node><name>n2</name><data><contents>on</contents></data></node></xcatresponse>` +
				`<xcatresponse><node><name>n3</name><data><contents>off</contents></data></node></xcatresponse>` + done,
			PrintOptions{}, "n3: off\n", "n1: Error: x\nn2: on\n", 0},
		{"warning and error of one node on one line",
			`<xcatresponse><node><name>n1</name><error>e</error><warning>w</warning></node><xcatdsource>sn1</xcatdsource></xcatresponse>` + done,
			PrintOptions{}, "", "n1: [sn1]: Error: e: [sn1]: Warning: w\n", 0},
		{"only the first data of a node element",
			`<xcatresponse><node><name>n1</name><data>first</data><data>second</data></node></xcatresponse>` + done,
			PrintOptions{}, "n1: first\n", "", 0},
		{"an empty desc still prints its separator",
			`<xcatresponse><node><name>n1</name><data><contents>v</contents><desc></desc></data></node></xcatresponse>` + done,
			PrintOptions{}, "n1: : v\n", "", 0},
		{"bare node names",
			`<xcatresponse><node><name>n1</name></node><node>n2</node></xcatresponse>` + done,
			PrintOptions{}, "n1\nn2\n", "", 0},
		{"top-level error without errorcode exits 0",
			`<xcatresponse><error>Unsupported request</error><serverdone></serverdone></xcatresponse>`,
			PrintOptions{}, "", "Error: Unsupported request\n", 0},
		{"data, info and their source only when asked",
			`<xcatresponse><info>i</info><data>d</data><data><desc>k</desc><contents>v</contents></data><warning>w</warning><xcatdsource>mn1</xcatdsource></xcatresponse>` + done,
			PrintOptions{ShowSource: true}, "[mn1]: i\n[mn1]: d\n[mn1]: k: v\n", "Warning: [mn1]: w\n", 0},
		{"data \"0\" and empty data are not printed, empty info is",
			`<xcatresponse><data>0</data><data></data><info></info></xcatresponse>` + done,
			PrintOptions{}, "\n", "", 0},
		{"plugin flags drop prefixes",
			`<xcatresponse><error>e</error><warning>w</warning><NoErrorPrefix>1</NoErrorPrefix><NoWarnPrefix>1</NoWarnPrefix><xcatdsource>mn1</xcatdsource></xcatresponse>` + done,
			PrintOptions{}, "", "[mn1]: e\n[mn1]: w\n", 0},
		{"errorcodes are ORed, top level and per node, numbers as Perl reads them",
			`<xcatresponse><errorcode>2</errorcode><node><name>n1</name><errorcode>1abc</errorcode></node><node><name>n2</name><errorcode>x</errorcode></node></xcatresponse>` + done,
			PrintOptions{}, "n1\nn2\n", "", 3},
		{"sinfo ends with a carriage return",
			`<xcatresponse><sinfo>50%</sinfo></xcatresponse>` + done,
			PrintOptions{}, "50%\r", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ReadResponse(strings.NewReader(tt.xml))
			if err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			var stdout, stderr bytes.Buffer
			code := PrintResponse(&stdout, &stderr, resp, tt.opts)
			if stdout.String() != tt.stdout || stderr.String() != tt.stderr || code != tt.code {
				t.Errorf("stdout %q stderr %q code %d; want %q %q %d", stdout.String(), stderr.String(), code, tt.stdout, tt.stderr, tt.code)
			}
		})
	}
}

// TestPrintResponseGrouped: a Response without XML elements (the CLI backend's) is
// printed from its grouped form, nodes without data by name.
func TestPrintResponseGrouped(t *testing.T) {
	t.Parallel()
	resp, _ := parseCLIOutput([]byte("n1\nn2: on\n"), []byte("n3: Error: timeout\nWarning: w\n"), 1)
	resp.Node("n4")
	var stdout, stderr bytes.Buffer
	code := PrintResponse(&stdout, &stderr, resp, PrintOptions{})
	if want := "n1\nn2: on\nn4\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	if want := "Warning: w\nn3: Error: timeout\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	if code != 1 {
		t.Errorf("code %d, want 1", code)
	}
	if PrintResponse(&stdout, &stderr, nil, PrintOptions{}) != 0 {
		t.Error("nil response: non-zero code")
	}
}

func TestVerboseArgs(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]bool{"stat": false, "-V stat": true, "stat --verbose": true, "-Vx": false} {
		if got := VerboseArgs(strings.Fields(args)); got != want {
			t.Errorf("VerboseArgs(%q) = %v, want %v", args, got, want)
		}
	}
}
