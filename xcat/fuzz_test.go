package xcat

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzReadResponse feeds arbitrary bytes to the xcatd answer reader: it must not panic,
// and an answer without serverdone must fail.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("<xcatresponse><node><name>n1</name><data><contents>on</contents></data></node></xcatresponse><xcatresponse><serverdone></serverdone></xcatresponse>"))
	f.Add([]byte("<xcatresponse><error>Invalid nodes and/or groups in noderange: foo</error><errorcode>1</errorcode><serverdone/></xcatresponse>"))
	f.Add([]byte("<xcatresponse><node><name>n1</name><data><desc>BMC</desc><contents>1.2</contents></data><errorcode>x</errorcode></node>"))
	f.Add([]byte("<xcatresponse><node>n1</node><node>n2</node><serverdone/></xcatresponse>"))
	f.Add([]byte("<xcatresponse><data>\x00\xff&amp;&nbsp;</data><serverdone/>"))
	f.Add([]byte("<xcatresponse><node><name>n1</name><error>e</error><warning>w</warning></node><node><data><desc></desc><x/></data></node><xcatdsource>mn1</xcatdsource><host/><NoErrorPrefix/></xcatresponse><xcatresponse><sinfo>1</sinfo><errorcode>-2x</errorcode><serverdone/></xcatresponse>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		resp, err := readResponse(bytes.NewReader(in))
		if resp == nil {
			t.Fatal("nil response")
		}
		if err == nil && !bytes.Contains(in, []byte("serverdone")) {
			t.Fatalf("answer without serverdone accepted: %q", in)
		}
		for _, name := range resp.Order {
			if resp.Nodes[name] == nil {
				t.Fatalf("ordered node %q missing", name)
			}
		}
		// Whatever was read prints, as xCAT's client would print it.
		var stdout, stderr bytes.Buffer
		PrintResponse(&stdout, &stderr, resp, PrintOptions{ShowSource: len(in)%2 == 0})
	})
}

// FuzzParseCLIOutput feeds arbitrary stdout/stderr to the CLI output parser.
func FuzzParseCLIOutput(f *testing.F) {
	f.Add("node1: on\nnode2: off\n", "node3: Error: timeout\n", 1)
	f.Add("Could not find any object definitions to display.\n", "", 0)
	f.Add("Object name: node1\n    arch=x86_64\n", "Warning: node1: x\nError: y\n", 1)
	f.Add("node1:\n", "ERROR/WARNING: communication with the xCAT server seems to have been ended prematurely\n", 1)
	f.Fuzz(func(t *testing.T, stdout, stderr string, rc int) {
		resp, _ := parseCLIOutput([]byte(stdout), []byte(stderr), rc)
		if len(resp.Order) != len(resp.Nodes) {
			t.Fatalf("Order %v and Nodes disagree", resp.Order)
		}
		for _, name := range resp.Order {
			if !isNodeName(name) {
				t.Fatalf("node name %q", name)
			}
		}
		if rc != 0 && len(resp.Errors) == 0 && !anyNodeError(resp) && !strings.Contains(stderr, errPremature) {
			t.Fatalf("exit %d without any error", rc)
		}
	})
}

// FuzzParseTabDump feeds arbitrary lines to the tabdump CSV parser.
func FuzzParseTabDump(f *testing.F) {
	f.Add("#key,value,comments,disable\n\"xcatiport\",\"3002\",,\n\"a\",\"b\"\"c\",,\"1\"")
	f.Add("#node,mac\n\"n1\",\"aa\nbroken\"")
	f.Add("#a\n,,,,\n\"")
	f.Fuzz(func(t *testing.T, in string) {
		lines := strings.Split(in, "\n")
		rows := parseTabDump(lines)
		if len(rows) > len(lines) {
			t.Fatalf("%d rows from %d lines", len(rows), len(lines))
		}
	})
}

// FuzzParseLsDef feeds arbitrary lines to the lsdef long and -c form parsers.
func FuzzParseLsDef(f *testing.F) {
	f.Add("Object name: node1\n    arch=x86_64\n    groups=all\nObject name: node2\n")
	f.Add("node1: arch=x86_64\nnode1  (node)\nCould not find any object definitions to display.")
	f.Add("Object name: \n    =x\n\t a=b=c")
	f.Fuzz(func(t *testing.T, in string) {
		lines := strings.Split(in, "\n")
		for obj, a := range parseLsDefLong(lines) {
			if obj == "" || a == nil {
				t.Fatalf("object %q attrs %v", obj, a)
			}
		}
		for obj, a := range parseLsDefC(lines) {
			if obj == "" || len(a) == 0 {
				t.Fatalf("object %q attrs %v", obj, a)
			}
		}
		_ = parseNodeLs(lines, []string{"a.b", "c.d"})
		for _, l := range lines {
			_, _ = parsePower(l)
			_, _ = parseBootDevice(l)
			_, _ = parseChDefSummary([]string{l})
		}
	})
}

// FuzzParseStanza feeds arbitrary text to the stanza reader: what it accepts must
// format again and read back the same.
func FuzzParseStanza(f *testing.F) {
	f.Add("# <xCAT data object stanza file>\n\nn1:\n    objtype=node\n    postbootscripts=config_ops_bmnode 10.0.0.5/24\n\nn2:\n    objtype=node\n    ip=\n")
	f.Add("  n1  : \r\n\tip = \" 10.0.0.5 \"\n# c\nn1:\nmac=a=b\n")
	f.Add("default-node:\n    groups=all\nfd59::/64:\n    net=x\n")
	f.Add("ip=1\nn1:\n    a:\n")
	f.Fuzz(func(t *testing.T, in string) {
		objs, err := ParseStanza(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error %v does not wrap ErrInvalidInput", err)
			}
			return
		}
		text, err := FormatStanza(objs)
		if err != nil {
			t.Fatalf("FormatStanza of parsed %+v: %v", objs, err)
		}
		again, err := ParseStanza(text)
		if err != nil {
			t.Fatalf("ParseStanza of formatted %q: %v", text, err)
		}
		if !equalObjects(objs, again) {
			t.Fatalf("round trip %+v -> %q -> %+v", objs, text, again)
		}
	})
}
