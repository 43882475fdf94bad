package sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"xcatbm/xcat"
)

// transcriptDir holds copies of the real xcatd's transcripts (see its README).
const transcriptDir = "../testdata/xcatd"

// transcriptOrder is the order the transcripts were captured in; state carries from
// one to the next.
var transcriptOrder = []string{
	"lsxcatd-a", "nodels-group", "nodels-range", "nodels-list-dup", "nodels-attr",
	"nodels-attrs", "nodels-bad-attr", "nodels-unknown-node", "lsdef-node",
	"lsdef-unknown-node", "lsdef-where-nomatch", "lsdef-osimage", "tabdump-site",
	"tabdump-unknown-table", "chdef-set", "chdef-plus", "chdef-minus", "chdef-restore",
	"chdef-unknown-node", "nodels-after-chdef-unknown", "nodeset-osimage",
	"nodeset-unknown-osimage", "rsetboot-net", "rpower-stat", "rpower-range-stat",
	"rpower-off", "rpower-on", "rpower-boot", "rpower-bad-subcommand",
	"rpower-unknown-node", "makehosts", "nodestat", "unknown-command",
}

// elem is an XML element reduced to what the comparison looks at: its name, its text
// (white space around it ignored) and its children in order.
type elem struct {
	Name     string
	Text     string
	Children []elem
}

func (e elem) String() string {
	var b strings.Builder
	var walk func(e elem, depth int)
	walk = func(e elem, depth int) {
		fmt.Fprintf(&b, "%s<%s>%q\n", strings.Repeat("  ", depth), e.Name, e.Text)
		for _, c := range e.Children {
			walk(c, depth+1)
		}
	}
	walk(e, 0)
	return b.String()
}

// parseElems reads the top-level elements of an answer stream.
func parseElems(t *testing.T, data []byte) []elem {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var stack []*elem
	var top []elem
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return top
		}
		if err != nil {
			t.Fatalf("parsing %q: %v", data, err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			stack = append(stack, &elem{Name: tk.Name.Local})
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(tk)
			}
		case xml.EndElement:
			e := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if len(e.Children) > 0 {
				e.Text = strings.TrimSpace(e.Text)
			}
			if len(stack) == 0 {
				top = append(top, *e)
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, *e)
			}
		}
	}
}

// goldenCluster is the cluster the transcripts were taken on (the README's cluster
// definition), without its site table, which goldenSite fills as tabdump showed it.
func goldenCluster() *Cluster {
	c := &Cluster{
		Site: map[string]string{},
		OSImages: map[string]map[string]string{"rhels7.5-x86_64-install-compute": {
			"imagetype": "linux", "provmethod": "install", "osname": "Linux", "osvers": "rhels7.5",
			"osarch": "x86_64", "profile": "compute", "osdistroname": "rhels7.5-x86_64"}},
	}
	for i := 1; i <= 5; i++ {
		power := "off"
		if i == 3 {
			power = "on"
		}
		c.Nodes = append(c.Nodes, NodeSpec{Name: fmt.Sprintf("node0%d", i), Groups: []string{"compute", "all"}, Power: power,
			Attrs: map[string]string{
				"mgt": "ipmi", "arch": "x86_64", "netboot": "xnba", "installnic": "mac", "primarynic": "mac",
				"cpucount": "32", "memory": "131072MB", "disksize": "sda:480GB",
				"ip": fmt.Sprintf("10.9.0.%d", i), "mac": fmt.Sprintf("52:54:00:00:00:0%d", i),
				"bmc": fmt.Sprintf("127.0.1.%d", i), "bmcusername": "ADMIN", "bmcpassword": "admin",
			}})
	}
	return c
}

// goldenSite sets the site table row by row, in the order tabdump-site shows.
func goldenSite(t *testing.T, srv *Server) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(transcriptDir, "tabdump-site", "response.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var kv []string
	for _, r := range parseElems(t, data) {
		for _, c := range r.Children {
			if c.Name != "data" || strings.HasPrefix(c.Text, "#") {
				continue
			}
			fields := strings.Split(c.Text, ",")
			kv = append(kv, strings.Trim(fields[0], `"`)+"="+strings.Trim(fields[1], `"`))
		}
	}
	if len(kv) == 0 {
		t.Fatal("no site rows in tabdump-site")
	}
	call(t, srv, xcat.Request{Command: "chdef", Args: append([]string{"-t", "site", "-o", "clustersite"}, kv...)})
	// The nodes were not in /etc/hosts (nodestat says so).
	call(t, srv, xcat.Request{Command: "makehosts", Noderange: "compute", Args: []string{"-d"}})
}

func call(t *testing.T, srv *Server, req xcat.Request) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Call(ctx, srv.Addr(), srv.ClientTLS(), req); err != nil {
		t.Fatalf("%s: %v", req, err)
	}
}

// sorted is e with its children, at every depth, in a canonical order: the form two
// answers share when they differ only in the order xcatd may vary.
func (e elem) sorted() string {
	kids := make([]string, len(e.Children))
	for i, c := range e.Children {
		kids[i] = c.sorted()
	}
	slices.Sort(kids)
	return fmt.Sprintf("<%s>%q[%s]", e.Name, e.Text, strings.Join(kids, ","))
}

// TestGoldenTranscripts replays, in capture order, every request xCAT's own client
// sent to the real xcatd (the exact bytes) and compares the simulator's answer with
// xcatd's: the same elements, in the same order, with the same texts, so errors,
// data and info go where xcatd put them.
//
// With Shuffle (nodes in completion order, nodels' tables in hash order) the answers
// must hold the same elements, in any order.
func TestGoldenTranscripts(t *testing.T) {
	t.Parallel()
	for _, shuffle := range []bool{false, true} {
		t.Run(fmt.Sprintf("shuffle=%v", shuffle), func(t *testing.T) {
			t.Parallel()
			replayTranscripts(t, shuffle)
		})
	}
}

func replayTranscripts(t *testing.T, shuffle bool) {
	srv := start(t, goldenCluster(), Config{BMCForgetsBootFlags: true, Shuffle: shuffle})
	goldenSite(t, srv)
	dirs, err := os.ReadDir(transcriptDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if d.IsDir() {
			n++
		}
	}
	if n != len(transcriptOrder) {
		t.Fatalf("%d transcripts in %s, %d in the capture order", n, transcriptDir, len(transcriptOrder))
	}
	conf := srv.ClientTLS()
	for _, name := range transcriptOrder {
		req, err := os.ReadFile(filepath.Join(transcriptDir, name, "request.xml"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(transcriptDir, name, "response.xml"))
		if err != nil {
			t.Fatal(err)
		}
		got := exchangeRaw(t, srv.Addr(), conf, req)
		g, w := parseElems(t, got), parseElems(t, want)
		if len(g) != len(w) {
			t.Errorf("%s: %d response elements, xcatd sent %d\nsimulator:\n%s\nxcatd:\n%s", name, len(g), len(w), got, want)
			continue
		}
		if shuffle {
			gs, ws := make([]string, len(g)), make([]string, len(w))
			for i := range w {
				gs[i], ws[i] = g[i].sorted(), w[i].sorted()
			}
			slices.Sort(gs)
			slices.Sort(ws)
			if !slices.Equal(gs, ws) {
				t.Errorf("%s: elements differ beyond their order\nsimulator:\n%s\nxcatd:\n%s", name, got, want)
			}
		} else {
			for i := range w {
				if g[i].String() != w[i].String() {
					t.Errorf("%s: element %d differs\nsimulator:\n%s\nxcatd:\n%s", name, i+1, g[i], w[i])
				}
			}
		}
		if name == "makehosts" {
			// The capture removed the entry again before nodestat.
			call(t, srv, xcat.Request{Command: "makehosts", Noderange: "node01", Args: []string{"-d"}})
		}
	}
}

// exchangeRaw sends request bytes on a new connection and returns the answer up to
// and including the element with serverdone.
func exchangeRaw(t *testing.T, addr string, conf *tls.Config, req []byte) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	br := bufio.NewReader(conn)
	for !(bytes.Contains(out.Bytes(), []byte("<serverdone")) && bytes.HasSuffix(bytes.TrimSpace(out.Bytes()), []byte("</xcatresponse>"))) {
		line, err := br.ReadBytes('\n')
		out.Write(line)
		if err != nil {
			t.Fatalf("reading the answer: %v after %q", err, out.String())
		}
	}
	return out.Bytes()
}
