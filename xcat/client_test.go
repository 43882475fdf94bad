package xcat

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

// recordingBackend answers each request with the response the test chose and records
// what was sent.
type recordingBackend struct {
	mu     sync.Mutex
	sent   []Request
	answer func(Request) (*Response, error)
}

func (b *recordingBackend) Do(_ context.Context, req Request) (*Response, error) {
	b.mu.Lock()
	b.sent = append(b.sent, req)
	b.mu.Unlock()
	return b.answer(req)
}

func cliResponse(stdout, stderr string, rc int) func(Request) (*Response, error) {
	return func(req Request) (*Response, error) {
		r, _ := parseCLIOutput([]byte(stdout), []byte(stderr), rc)
		return r, commandError(req, r)
	}
}

func TestClientPower(t *testing.T) {
	t.Parallel()
	b := &recordingBackend{answer: cliResponse("node1: on reset\nnode2: Running\n", "node3: Error: timeout\n", 1)}
	c := NewClient(b)
	res, err := c.Power(context.Background(), "node[1-4]", PowerBoot)
	if err != nil {
		t.Fatalf("Power: %v", err)
	}
	if got := b.sent[0]; got.Command != "rpower" || got.Noderange != "node[1-4]" || !slices.Equal(got.Args, []string{"boot"}) {
		t.Errorf("sent %+v", got)
	}
	if res["node1"].Value != "reset" || res["node1"].Err != nil || res["node2"].Value != "on" {
		t.Errorf("results %+v", res)
	}
	var ne *NodeError
	if !errors.As(res["node3"].Err, &ne) || !ne.Transient || ne.Node != "node3" {
		t.Errorf("node3 = %+v", res["node3"])
	}
	if !errors.As(res["node4"].Err, &ne) || ne.Message != noAnswer {
		t.Errorf("node4 (no answer) = %+v", res["node4"])
	}
}

func TestClientUnknownNode(t *testing.T) {
	t.Parallel()
	b := &recordingBackend{answer: cliResponse("", "Error: Invalid nodes and/or groups in noderange: foo\n", 1)}
	res, err := NewClient(b).Power(context.Background(), "node1,foo", PowerStat)
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want CommandError", err)
	}
	if res["node1"].Err == nil || res["foo"].Err == nil {
		t.Errorf("results %+v: every node needs an error", res)
	}
}

func TestClientRefusesInput(t *testing.T) {
	t.Parallel()
	b := &recordingBackend{answer: func(Request) (*Response, error) { t.Error("request sent"); return &Response{}, nil }}
	c := NewClient(b)
	ctx := context.Background()
	checks := map[string]error{}
	_, checks["noderange ;"] = c.Power(ctx, "node1;reboot", PowerOn)
	_, checks["noderange space"] = c.Power(ctx, "node1 node2", PowerOn)
	_, checks["noderange -"] = c.NodeSet(ctx, "-node1", "boot")
	_, checks["value newline"] = c.ChDef(ctx, "node1", ChDefSet, Attrs{"ip": "1.2.3.4\nx"})
	_, checks["value $"] = c.ChDef(ctx, "node1", ChDefSet, Attrs{"ip": "$(reboot)"})
	_, checks["value NUL"] = c.ChDef(ctx, "node1", ChDefSet, Attrs{"ip": "a\x00"})
	_, checks["attr name"] = c.ChDef(ctx, "node1", ChDefSet, Attrs{"ip;x": "1"})
	_, checks["state"] = c.NodeSet(ctx, "node1", "osimage=a`b`")
	_, checks["table"] = c.TabDump(ctx, "site;")
	_, checks["where"] = c.TabDump(ctx, "site", "key==a|b")
	_, checks["device"] = c.SetBoot(ctx, "node1", "net hd")
	_, checks["nodels attr"] = func() (Results, error) { _, r, err := c.NodeLs(ctx, "node1", "a<b"); return r, err }()
	checks["site"] = c.ChDefSite(ctx, Attrs{"domain": "a'b"})
	_, checks["stanza no nodes"] = c.ChDefEach(ctx, ChDefSet, nil)
	_, checks["stanza no attributes"] = c.ChDefEach(ctx, ChDefSet, map[string]Attrs{"node1": {}})
	_, checks["stanza node name"] = c.ChDefEach(ctx, ChDefSet, map[string]Attrs{"node1:": {"ip": "1"}})
	_, checks["stanza objtype"] = c.ChDefEach(ctx, ChDefSet, map[string]Attrs{"node1": {"objtype": "osimage"}})
	_, checks["stanza value newline"] = c.ChDefEach(ctx, ChDefSet, map[string]Attrs{"node1": {"ip": "1\nnode2:"}})
	_, checks["stanza value trailing space"] = c.ChDefEach(ctx, ChDefAdd, map[string]Attrs{"node1": {"postbootscripts": "x "}})
	_, checks["stanza mode"] = c.ChDefEach(ctx, ChDefOp(9), map[string]Attrs{"node1": {"ip": "1"}})
	for name, err := range checks {
		if !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: err = %v, want ErrInvalidInput", name, err)
		}
	}
}

func TestClientRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		answer func(Request) (*Response, error)
		call   func(Client) error
		want   Request
	}{
		{"nodeset", cliResponse("node1: install img\n", "", 0), func(c Client) error {
			res, err := c.NodeSet(ctx, "node1", "osimage=img")
			if err == nil && res["node1"].Value != "install img" {
				t.Errorf("nodeset value %q", res["node1"].Value)
			}
			return err
		}, Request{Command: "nodeset", Noderange: "node1", Args: []string{"osimage=img"}}},
		{"chdef -p", cliResponse("1 object definitions have been created or modified.\n", "Warning: node1: postbootscripts 'x' is already included\n", 0), func(c Client) error {
			res, err := c.ChDef(ctx, "node1", ChDefAdd, Attrs{"postbootscripts": "x"})
			if err == nil && (res["node1"].Err != nil || len(res["node1"].Warnings) != 1) {
				t.Errorf("chdef result %+v", res)
			}
			return err
		}, Request{Command: "chdef", Args: []string{"-t", "node", "-p", "-o", "node1", "postbootscripts=x"}}},
		{"chdef -z -p", cliResponse("2 object definitions have been created or modified.\n", "Warning: node2: postbootscripts 'b' is already included\n", 0), func(c Client) error {
			res, err := c.ChDefEach(ctx, ChDefAdd, map[string]Attrs{"node2": {"postbootscripts": "b"}, "node1": {"postbootscripts": "a 10.0.0.1"}})
			if err == nil && (len(res) != 2 || res["node1"].Err != nil || len(res["node1"].Warnings) != 0 || res["node2"].Err != nil || len(res["node2"].Warnings) != 1) {
				t.Errorf("chdef -z result %+v", res)
			}
			return err
		}, Request{Command: "chdef", Args: []string{"-z", "-p"}, Stdin: "# <xCAT data object stanza file>\n\n" +
			"node1:\n    objtype=node\n    postbootscripts=a 10.0.0.1\n\n" +
			"node2:\n    objtype=node\n    postbootscripts=b\n\n"}},
		{"chdef site", cliResponse("1 object definitions have been created or modified.\n", "", 0), func(c Client) error {
			return c.ChDefSite(ctx, Attrs{"domain": "example.com"})
		}, Request{Command: "chdef", Args: []string{"-t", "site", "-o", "clustersite", "domain=example.com"}}},
		{"makehosts -d", cliResponse("", "", 0), func(c Client) error {
			res, err := c.MakeHosts(ctx, "node1", true)
			if err == nil && (len(res) != 1 || res["node1"].Err != nil) {
				t.Errorf("makehosts %+v", res)
			}
			return err
		}, Request{Command: "makehosts", Noderange: "node1", Args: []string{"-d"}}},
		{"nodels", cliResponse("node1: nodelist.status: booted\nnode1: hosts.ip: 10.0.0.1\n", "", 0), func(c Client) error {
			a, _, err := c.NodeLs(ctx, "node1", "nodelist.status", "hosts.ip")
			if err == nil && (a["node1"]["nodelist.status"] != "booted" || a["node1"]["hosts.ip"] != "10.0.0.1") {
				t.Errorf("nodels %v", a)
			}
			return err
		}, Request{Command: "nodels", Noderange: "node1", Args: []string{"nodelist.status", "hosts.ip"}}},
		{"lsdef nodes", cliResponse("Object name: node1\n    arch=x86_64\n", "", 0), func(c Client) error {
			a, err := c.LsDefNodes(ctx, "", []string{"groups=~compute"}, "arch")
			if err == nil && a["node1"]["arch"] != "x86_64" {
				t.Errorf("lsdef %v", a)
			}
			return err
		}, Request{Command: "lsdef", Args: []string{"-t", "node", "-l", "-w", "groups=~compute", "-i", "arch"}}},
		{"lsdef osimage", cliResponse("Object name: img\n    osvers=rhels8\n", "", 0), func(c Client) error {
			a, err := c.LsDefOSImages(ctx, []string{"img"})
			if err == nil && a["img"]["osvers"] != "rhels8" {
				t.Errorf("lsdef %v", a)
			}
			return err
		}, Request{Command: "lsdef", Args: []string{"-t", "osimage", "-l", "-o", "img"}}},
		{"tabdump", cliResponse("#node,mac,comments,disable\n\"node1\",\"aa:bb\",,\n", "", 0), func(c Client) error {
			rows, err := c.TabDump(ctx, "mac", "node==node1")
			if err == nil && (len(rows) != 1 || rows[0]["mac"] != "aa:bb") {
				t.Errorf("tabdump %v", rows)
			}
			return err
		}, Request{Command: "tabdump", Args: []string{"-w", "node==node1", "mac"}}},
		{"updatenode", cliResponse("node1: Running postscript: x\n", "", 0), func(c Client) error {
			_, err := c.UpdateNode(ctx, "node1", "x", "y")
			return err
		}, Request{Command: "updatenode", Noderange: "node1", Args: []string{"-P", "x,y"}}},
		{"rsetboot", cliResponse("node1: Network\n", "", 0), func(c Client) error {
			res, err := c.SetBoot(ctx, "node1", "net")
			if err == nil && res["node1"].Value != "net" {
				t.Errorf("rsetboot %+v", res)
			}
			return err
		}, Request{Command: "rsetboot", Noderange: "node1", Args: []string{"net"}}},
		{"rvitals", cliResponse("node1: CPU 1 Temperature: + 29.00 C (+ 84.2 F)\n", "", 0), func(c Client) error {
			res, err := c.RVitals(ctx, "node1", "temp")
			if err == nil && res["node1"].Lines[0] != "CPU 1 Temperature: + 29.00 C (+ 84.2 F)" {
				t.Errorf("rvitals %+v", res)
			}
			return err
		}, Request{Command: "rvitals", Noderange: "node1", Args: []string{"temp"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &recordingBackend{answer: tt.answer}
			if err := tt.call(NewClient(b)); err != nil {
				t.Fatalf("call: %v", err)
			}
			got := b.sent[0]
			if got.Command != tt.want.Command || got.Noderange != tt.want.Noderange || !slices.Equal(got.Args, tt.want.Args) || got.Stdin != tt.want.Stdin {
				t.Errorf("sent %+v, want %+v", got, tt.want)
			}
		})
	}
}
