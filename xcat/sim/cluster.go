package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"xcatbm/xcat"
)

// column maps one xCAT table column to its lsdef attribute name.
type column struct{ table, col, attr string }

// nodeSchema lists the node tables the simulator keeps, in tabdump column order.
var nodeSchema = []column{
	{"nodelist", "groups", "groups"}, {"nodelist", "status", "status"},
	{"nodelist", "statustime", "statustime"}, {"nodelist", "appstatus", "appstatus"},
	{"nodehm", "mgt", "mgt"}, {"nodehm", "power", "power"}, {"nodehm", "cons", "cons"},
	{"ipmi", "bmc", "bmc"}, {"ipmi", "username", "bmcusername"}, {"ipmi", "password", "bmcpassword"},
	{"mac", "interface", "installnic"}, {"mac", "mac", "mac"},
	{"hwinv", "cputype", "cputype"}, {"hwinv", "cpucount", "cpucount"},
	{"hwinv", "memory", "memory"}, {"hwinv", "disksize", "disksize"},
	{"noderes", "servicenode", "servicenode"}, {"noderes", "xcatmaster", "xcatmaster"},
	{"noderes", "netboot", "netboot"}, {"noderes", "primarynic", "primarynic"},
	{"hosts", "ip", "ip"}, {"hosts", "hostnames", "hostnames"},
	{"postscripts", "postscripts", "postscripts"}, {"postscripts", "postbootscripts", "postbootscripts"},
	{"chain", "currstate", "currstate"}, {"chain", "chain", "chain"},
	{"nodetype", "os", "os"}, {"nodetype", "arch", "arch"}, {"nodetype", "provmethod", "provmethod"},
	{"nodetype", "profile", "profile"},
}

var (
	attrByTableCol = map[string]string{}
	nodeAttrs      = map[string]bool{}
	nodeTables     = map[string][]string{}
	// tableOrder lists the node tables in nodeSchema's order.
	tableOrder []string
)

func init() {
	for _, c := range nodeSchema {
		attrByTableCol[c.table+"."+c.col] = c.attr
		nodeAttrs[c.attr] = true
		if _, ok := nodeTables[c.table]; !ok {
			tableOrder = append(tableOrder, c.table)
		}
		nodeTables[c.table] = append(nodeTables[c.table], c.col)
	}
}

// listAttrs are comma-separated list attributes that chdef -p and -m edit.
var listAttrs = map[string]bool{"groups": true, "postscripts": true, "postbootscripts": true}

// osimageAttrs are the osimage definition attributes (table osimage), in order.
var osimageAttrs = []string{"profile", "imagetype", "provmethod", "osname", "osvers", "osdistroname", "osarch"}

// NodeSpec describes one node in a cluster file or to NewCluster.
type NodeSpec struct {
	// Name is the node name.
	Name string `json:"name" yaml:"name"`
	// Groups are the node's static groups (nodelist.groups).
	Groups []string `json:"groups,omitempty" yaml:"groups,omitempty"`
	// Power is the initial power state, "on" or "off" (default off).
	Power string `json:"power,omitempty" yaml:"power,omitempty"`
	// Attrs holds lsdef attributes: mgt, bmc, bmcusername, bmcpassword, mac, ip,
	// cpucount, memory, disksize, servicenode, xcatmaster, postscripts,
	// postbootscripts, status, currstate, os, arch, provmethod, ...
	Attrs map[string]string `json:"attrs,omitempty" yaml:"attrs,omitempty"`
	// Fault injects a fault for this node at start (see FaultKind).
	Fault *NodeFaultSpec `json:"fault,omitempty" yaml:"fault,omitempty"`
}

// NodeFaultSpec is a node fault in a cluster file.
type NodeFaultSpec struct {
	// Install is "fail" (the install ends failed) or "hang" (stays installing).
	Install string `json:"install,omitempty" yaml:"install,omitempty"`
	// BMCTimeout makes rpower, rsetboot and rbootseq fail with an IPMI timeout;
	// BMCTimeoutCount limits it to that many calls (0: every call).
	BMCTimeout      bool `json:"bmcTimeout,omitempty" yaml:"bmcTimeout,omitempty"`
	BMCTimeoutCount int  `json:"bmcTimeoutCount,omitempty" yaml:"bmcTimeoutCount,omitempty"`
}

// Cluster is a cluster description: nodes, site keys, passwd entries and osimages.
// It is plain data; a Server copies it at Start.
type Cluster struct {
	// Site holds site table keys (master, domain, ...).
	Site map[string]string `json:"site,omitempty" yaml:"site,omitempty"`
	// Passwd maps a passwd key (e.g. "ipmi", "system") to its username and password.
	Passwd map[string]PasswdEntry `json:"passwd,omitempty" yaml:"passwd,omitempty"`
	// OSImages maps an image name to its attributes (profile, imagetype, provmethod,
	// osname, osvers, osarch).
	OSImages map[string]map[string]string `json:"osimages,omitempty" yaml:"osimages,omitempty"`
	// Nodes are the node definitions.
	Nodes []NodeSpec `json:"nodes" yaml:"nodes"`
	// Timeline overrides Config.Timeline when set.
	Timeline *Timeline `json:"timeline,omitempty" yaml:"timeline,omitempty"`
	// Latency overrides Config.Latency when set.
	Latency *Latency `json:"latency,omitempty" yaml:"latency,omitempty"`
}

// PasswdEntry is one passwd table row.
type PasswdEntry struct {
	Username string `json:"username" yaml:"username"`
	Password string `json:"password" yaml:"password"`
}

// NewCluster returns a cluster with the given nodes, site master 10.0.0.1, an ipmi passwd
// default and one osimage "rhels7.5-x86_64-install-compute".
func NewCluster(nodes ...NodeSpec) *Cluster {
	return &Cluster{
		Site:   map[string]string{"master": "10.0.0.1", "domain": "cluster", "xcatdport": "3001", "xcatiport": "3002"},
		Passwd: map[string]PasswdEntry{"ipmi": {Username: "ADMIN", Password: "admin"}, "system": {Username: "root", Password: "cluster"}},
		OSImages: map[string]map[string]string{
			"rhels7.5-x86_64-install-compute": {
				"profile": "compute", "imagetype": "linux", "provmethod": "install",
				"osname": "Linux", "osvers": "rhels7.5", "osarch": "x86_64",
			},
		},
		Nodes: nodes,
	}
}

// GenerateCluster returns NewCluster with n IPMI nodes named prefix plus a number padded
// to the width of n (prefix01..prefix20 for n=20), in groups "all" and "compute", each with a BMC, MAC, IP and
// hardware inventory, managed by mgmtNode (noderes.servicenode and xcatmaster).
func GenerateCluster(prefix string, n int, mgmtNode string) *Cluster {
	width := len(fmt.Sprint(n))
	nodes := make([]NodeSpec, 0, n)
	for i := 1; i <= n; i++ {
		nodes = append(nodes, NodeSpec{
			Name:   fmt.Sprintf("%s%0*d", prefix, width, i),
			Groups: []string{"all", "compute"},
			Power:  "off",
			Attrs: map[string]string{
				"mgt": "ipmi", "bmc": fmt.Sprintf("10.1.%d.%d", i/250, i%250+1),
				"mac":      fmt.Sprintf("52:54:00:%02x:%02x:%02x", (i>>16)&0xff, (i>>8)&0xff, i&0xff),
				"ip":       fmt.Sprintf("10.0.%d.%d", i/250, i%250+1),
				"cpucount": "32", "memory": "131072MB", "disksize": "sda:480GB",
				"servicenode": mgmtNode, "xcatmaster": mgmtNode, "arch": "x86_64",
				"postscripts": "syslog,remoteshell,syncfiles", "postbootscripts": "otherpkgs",
				"status": "defined",
			},
		})
	}
	return NewCluster(nodes...)
}

// LoadCluster reads a cluster description from a YAML or JSON file (by extension;
// .json is JSON, anything else YAML).
func LoadCluster(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	var c Cluster
	if strings.EqualFold(filepath.Ext(path), ".json") {
		err = json.Unmarshal(data, &c)
	} else {
		err = yaml.Unmarshal(data, &c)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster file %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("cluster file %s: %w", path, err)
	}
	return &c, nil
}

func (c *Cluster) validate() error {
	seen := map[string]bool{}
	for _, n := range c.Nodes {
		if err := xcat.ValidateNodeName(n.Name); err != nil {
			return err
		}
		if seen[n.Name] {
			return fmt.Errorf("node %s defined twice", n.Name)
		}
		seen[n.Name] = true
		for a := range n.Attrs {
			if !nodeAttrs[a] {
				return fmt.Errorf("node %s: unknown attribute %q", n.Name, a)
			}
		}
		if n.Power != "" && n.Power != "on" && n.Power != "off" {
			return fmt.Errorf("node %s: power must be on or off", n.Name)
		}
		if n.Fault != nil && n.Fault.Install != "" && n.Fault.Install != "fail" && n.Fault.Install != "hang" {
			return fmt.Errorf("node %s: fault.install must be fail or hang", n.Name)
		}
	}
	return nil
}

// node is the simulator's live state of one node.
type node struct {
	name       string
	attrs      map[string]string
	power      string
	bootTarget string
	hostsIP    string // the /etc/hosts entry, "" when none
	install    *installRun
	ran        []string // postscripts and postbootscripts run, in order
}

// installRun is an install in progress: the timeline starts at start.
type installRun struct {
	start time.Time
	// shell: the node boots xCAT's genesis into its shell (nodeset shell): once
	// powered on, it reports status shell and installs nothing.
	shell bool
	// runImage is the runimage genesis runs (nodeset runimage=<url>).
	runImage string
}

// state is the whole simulated cluster; guarded by Server.mu.
type state struct {
	order []string
	nodes map[string]*node
	site  map[string]string
	// siteOrder lists the site keys in the order rows were added (the cluster's keys
	// sorted, then the ones chdef added), which is tabdump's order.
	siteOrder []string
	passwd    map[string]PasswdEntry
	osimages  map[string]map[string]string
	// groupIndex maps a group to its members in node order; nil when a node was
	// added or its groups changed since it was built (groupsChanged).
	groupIndex map[string][]string
}

// groupsChanged drops the group index; the next group lookup rebuilds it.
func (st *state) groupsChanged() { st.groupIndex = nil }

// group returns the members of a group in node order, from the index, built once per
// change of the nodes' groups rather than scanning every node on each lookup (a
// noderange of ranges asks for each of its elements whether it is a group).
func (st *state) group(name string) []string {
	if st.groupIndex == nil {
		st.groupIndex = map[string][]string{}
		for _, nn := range st.order {
			for _, g := range st.nodes[nn].groups() {
				if m := st.groupIndex[g]; len(m) == 0 || m[len(m)-1] != nn {
					st.groupIndex[g] = append(m, nn)
				}
			}
		}
	}
	return st.groupIndex[name]
}

// setSite sets a site key, adding its row after the others when it is new.
func (s *Server) setSite(key, value string) {
	if _, ok := s.st.site[key]; !ok {
		s.st.siteOrder = append(s.st.siteOrder, key)
	}
	s.st.site[key] = value
}

// mapKeys returns m's keys in no particular order.
func mapKeys[V any](m map[string]V) iter.Seq[string] {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func newState(c *Cluster) *state {
	st := &state{
		nodes:    make(map[string]*node, len(c.Nodes)),
		site:     map[string]string{},
		passwd:   map[string]PasswdEntry{},
		osimages: map[string]map[string]string{},
	}
	for k, v := range c.Site {
		st.site[k] = v
	}
	st.siteOrder = slices.Sorted(mapKeys(st.site))
	for k, v := range c.Passwd {
		st.passwd[k] = v
	}
	for k, v := range c.OSImages {
		m := map[string]string{}
		for a, x := range v {
			m[a] = x
		}
		st.osimages[k] = m
	}
	for _, spec := range c.Nodes {
		n := &node{name: spec.Name, attrs: map[string]string{}, power: "off"}
		for k, v := range spec.Attrs {
			n.attrs[k] = v
		}
		if len(spec.Groups) > 0 {
			n.attrs["groups"] = strings.Join(spec.Groups, ",")
		}
		if spec.Power != "" {
			n.power = spec.Power
		}
		if ip := n.attrs["ip"]; ip != "" {
			n.hostsIP = ip
		}
		st.order = append(st.order, spec.Name)
		st.nodes[spec.Name] = n
	}
	return st
}

func (n *node) groups() []string {
	if n.attrs["groups"] == "" {
		return nil
	}
	return strings.Split(n.attrs["groups"], ",")
}

// resolver is the xcat.Resolver over state; the caller holds the server's lock.
type resolver struct{ st *state }

func (r resolver) AllNodes(context.Context) ([]string, error) { return slices.Clone(r.st.order), nil }

func (r resolver) IsNode(_ context.Context, name string) (bool, error) {
	_, ok := r.st.nodes[name]
	return ok, nil
}

func (r resolver) Group(_ context.Context, name string) ([]string, bool, error) {
	members := slices.Clone(r.st.group(name))
	return members, len(members) > 0, nil
}

func (r resolver) Select(_ context.Context, table, col, op, value string) ([]string, error) {
	attr, ok := attrByTableCol[table+"."+col]
	if !ok {
		return nil, fmt.Errorf("no column %s.%s", table, col)
	}
	match, err := xcat.Matcher(op, value)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, nn := range r.st.order {
		if match(r.st.nodes[nn].attrs[attr]) {
			out = append(out, nn)
		}
	}
	return out, nil
}

// lenientResolver also takes the names in extra as node names; the object commands
// (chdef, lsdef) read names that are neither nodes nor groups so.
type lenientResolver struct {
	resolver
	extra map[string]bool
}

func (r lenientResolver) IsNode(ctx context.Context, name string) (bool, error) {
	if r.extra[name] {
		return true, nil
	}
	return r.resolver.IsNode(ctx, name)
}

// whereClause is one lsdef/tabdump -w filter.
type whereClause struct {
	attr  string
	match func(string) bool
}

func parseWhere(expr string, like bool) (whereClause, error) {
	for _, op := range []string{"==", "!=", "=~", "!~", "="} {
		if a, v, ok := strings.Cut(expr, op); ok && a != "" && !strings.ContainsAny(a, "=!~") {
			if like && (op == "=~" || op == "!~") {
				v = "^" + strings.ReplaceAll(regexp.QuoteMeta(v), "%", ".*") + "$"
			}
			m, err := xcat.Matcher(op, v)
			if err != nil {
				return whereClause{}, err
			}
			return whereClause{attr: a, match: m}, nil
		}
	}
	return whereClause{}, fmt.Errorf("invalid -w expression %q", expr)
}
