package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"xcatbm/xcat"
)

// answer accumulates the response elements of one request.
type answer struct{ rs []WireResponse }

func (a *answer) nodeData(node, desc, contents string) {
	a.rs = append(a.rs, WireResponse{Nodes: []WireNode{{Name: node, Data: []WireData{{Desc: desc, Contents: contents}}}}})
}

func (a *answer) nodeError(node, msg string) {
	a.rs = append(a.rs, WireResponse{Nodes: []WireNode{{Name: node, Errors: []string{msg}, ErrorCode: []int{1}}}})
}

func (a *answer) data(lines ...string) {
	if len(lines) > 0 {
		a.rs = append(a.rs, WireResponse{Data: lines})
	}
}

func (a *answer) warning(msg string) { a.rs = append(a.rs, WireResponse{Warnings: []string{msg}}) }

func (a *answer) fail(msg string) {
	a.rs = append(a.rs, WireResponse{Errors: []string{msg}, ErrorCode: []int{1}})
}

// done appends serverdone (to the last element when it is top-level only, as xcatd
// sends a bad-noderange error and serverdone together).
func (a *answer) done() []WireResponse {
	if n := len(a.rs); n > 0 && len(a.rs[n-1].Errors) > 0 && len(a.rs[n-1].Nodes) == 0 {
		a.rs[n-1].ServerDone = &struct{}{}
		return a.rs
	}
	return append(a.rs, WireResponse{ServerDone: &struct{}{}})
}

// noderangeCommands take a noderange that xcatd verifies before a plugin runs.
var noderangeCommands = map[string]bool{
	"rpower": true, "rsetboot": true, "rbootseq": true, "rnetboot": true, "nodeset": true,
	"makehosts": true, "nodels": true, "updatenode": true, "rinv": true, "rvitals": true,
}

// execute runs req against the state; s.mu is held.
func (s *Server) execute(req xcat.Request, now time.Time) ([]string, []WireResponse) {
	var a answer
	args := slices.Clone(req.Args)
	nr := req.Noderange
	if req.Command == "chdef" && slices.Contains(args, "-z") {
		nodes := s.chdefStanza(&a, nr, args, req.Stdin, now)
		return nodes, a.done()
	}
	// chdef and lsdef are sent without a noderange by xCAT's CLI: the first
	// positional argument that is not an attribute is the object list.
	objCmd := (req.Command == "chdef" || req.Command == "lsdef") && !isOsimage(args)
	if nr == "" && objCmd {
		nr, args = takeObjectArg(args)
	}
	// Osimage and site objects are named with -o as well (chdef -t site -o clustersite,
	// lsdef -t osimage -o img1,img2).
	if i := slices.Index(args, "-o"); nr == "" && !objCmd && i >= 0 && i+1 < len(args) {
		nr = args[i+1]
		args = slices.Delete(args, i, i+2)
	}
	var nodes []string
	if nr != "" && (noderangeCommands[req.Command] || objCmd) {
		var err error
		nodes, err = xcat.ExpandNoderange(context.Background(), nr, resolver{s.st})
		if err != nil {
			var unk *xcat.UnknownNodesError
			if errors.As(err, &unk) {
				a.fail(unk.Error())
			} else {
				a.fail("Invalid nodes and/or groups in noderange: " + nr)
			}
			return nil, a.done()
		}
		for _, n := range nodes {
			s.advance(s.st.nodes[n], now)
		}
	}
	switch req.Command {
	case "rpower":
		s.rpower(&a, nodes, args, now)
	case "rsetboot", "rbootseq":
		s.rsetboot(&a, req.Command, nodes, args)
	case "rnetboot":
		for _, n := range nodes {
			if s.faults.takeNode(FaultBMCTimeout, n) {
				a.nodeError(n, IPMITimeoutMessage)
				continue
			}
			nd := s.st.nodes[n]
			nd.bootTarget = "net"
			s.powerOn(nd, now)
			a.nodeData(n, "", "Success")
		}
	case "nodeset":
		s.nodeset(&a, nodes, args, now)
	case "chdef":
		s.chdef(&a, nr, nodes, args)
	case "makehosts":
		remove := slices.Contains(args, "-d")
		for _, n := range nodes {
			nd := s.st.nodes[n]
			if remove {
				nd.hostsIP = ""
			} else if nd.attrs["ip"] != "" {
				nd.hostsIP = nd.attrs["ip"]
			}
		}
	case "nodels":
		s.nodels(&a, nr, nodes, args, now)
	case "lsdef":
		s.lsdef(&a, nr, nodes, args, now)
	case "tabdump":
		s.tabdump(&a, args, now)
	case "updatenode":
		s.updatenode(&a, nodes, args)
	case "rinv":
		for _, n := range nodes {
			at := s.st.nodes[n].attrs
			a.nodeData(n, "CPU Count", orDefault(at["cpucount"], "2"))
			a.nodeData(n, "Memory", orDefault(at["memory"], "16384MB"))
			a.nodeData(n, "Disk", orDefault(at["disksize"], "sda:240GB"))
			a.nodeData(n, "BMC Firmware", "1.2")
			a.nodeData(n, "MAC Address 1", at["mac"])
		}
	case "rvitals":
		for _, n := range nodes {
			a.nodeData(n, "CPU 1 Temperature", "+ 29.00 C (+ 84.2 F)")
			a.nodeData(n, "Power Status", s.st.nodes[n].power)
		}
	default:
		a.fail("Unsupported request")
	}
	return nodes, a.done()
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func isOsimage(args []string) bool {
	for i, x := range args {
		if x == "-t" && i+1 < len(args) {
			return args[i+1] == "osimage" || args[i+1] == "site"
		}
	}
	return false
}

// takeObjectArg removes and returns the object list from chdef/lsdef arguments.
func takeObjectArg(args []string) (string, []string) {
	valued := map[string]bool{"-t": true, "-i": true, "-w": true, "-o": true, "-n": true}
	for i := 0; i < len(args); i++ {
		x := args[i]
		if x == "-o" && i+1 < len(args) {
			return args[i+1], slices.Delete(slices.Clone(args), i, i+2)
		}
		if valued[x] {
			i++
			continue
		}
		if strings.HasPrefix(x, "-") || strings.Contains(x, "=") {
			continue
		}
		return x, slices.Delete(slices.Clone(args), i, i+1)
	}
	return "", args
}

func (s *Server) powerOn(n *node, now time.Time) {
	n.power = "on"
	s.setStatus(n, "powering-on", now)
	if strings.HasPrefix(n.attrs["currstate"], "install") || strings.HasPrefix(n.attrs["currstate"], "netboot") {
		if n.bootTarget == "net" || n.bootTarget == "" {
			n.install = &installRun{start: now, image: strings.TrimSpace(strings.TrimPrefix(n.attrs["currstate"], "install"))}
		}
	}
}

func (s *Server) rpower(a *answer, nodes, args []string, now time.Time) {
	if len(args) == 0 {
		a.fail("Please enter an action (eg. boot,off,on)")
		return
	}
	action := args[0]
	switch action {
	case "on", "off", "boot", "reset", "softoff", "stat", "state", "status":
	default:
		a.fail("Unsupported command: rpower " + action)
		return
	}
	for _, name := range nodes {
		if s.faults.takeNode(FaultBMCTimeout, name) {
			a.nodeError(name, IPMITimeoutMessage)
			continue
		}
		n := s.st.nodes[name]
		out := action
		switch action {
		case "stat", "state", "status":
			out = n.power
		case "on":
			if n.power != "on" {
				s.powerOn(n, now)
			}
		case "off", "softoff":
			if n.power == "off" {
				out = "off"
			} else {
				n.power = "off"
				n.install = nil
				s.setStatus(n, "powering-off", now)
			}
		case "reset":
			if n.power == "off" {
				out = "off"
			} else {
				s.powerOn(n, now)
			}
		case "boot":
			if n.power == "on" {
				out = "reset"
			} else {
				out = "on"
			}
			s.powerOn(n, now)
		}
		a.nodeData(name, "", out)
	}
}

var bootNames = map[string]string{"net": "Network", "hd": "Hard Drive", "cd": "CD/DVD", "floppy": "Floppy", "setup": "BIOS Setup"}

func (s *Server) rsetboot(a *answer, cmd string, nodes, args []string) {
	if len(args) == 0 {
		a.fail("Usage: " + cmd + " <noderange> [net|hd|cd|default|stat]")
		return
	}
	dev := args[0]
	if cmd == "rbootseq" {
		dev, _, _ = strings.Cut(args[0], ",")
	}
	if _, ok := bootNames[dev]; !ok && dev != "default" && dev != "stat" {
		a.fail("Unsupported command: " + cmd + " " + args[0])
		return
	}
	for _, name := range nodes {
		if s.faults.takeNode(FaultBMCTimeout, name) {
			a.nodeError(name, IPMITimeoutMessage)
			continue
		}
		n := s.st.nodes[name]
		switch {
		case cmd == "rbootseq":
			n.bootTarget = dev
			a.nodeData(name, "", args[0])
		case dev == "stat":
			if v, ok := bootNames[n.bootTarget]; ok {
				a.nodeData(name, "", v)
			} else {
				a.nodeData(name, "", "boot override inactive")
			}
		case dev == "default":
			n.bootTarget = ""
			a.nodeData(name, "", "boot override inactive")
		default:
			n.bootTarget = dev
			a.nodeData(name, "", bootNames[dev])
		}
	}
}

// bootStatus maps a nodeset boot state to the status xCAT sets.
func bootStatus(state string) string {
	switch {
	case strings.HasPrefix(state, "install"):
		return "installing"
	case strings.HasPrefix(state, "netboot"), strings.HasPrefix(state, "statelite"):
		return "netbooting"
	case state == "shell":
		return "shell"
	case state == "standby":
		return "standingby"
	}
	return "booting"
}

func (s *Server) nodeset(a *answer, nodes, args []string, now time.Time) {
	if len(args) == 0 {
		a.fail("Usage: nodeset <noderange> [boot|stat|offline|osimage=<imagename>]")
		return
	}
	arg := args[0]
	if arg == "osimage" && len(args) > 1 {
		arg = "osimage=" + args[1]
	}
	for _, name := range nodes {
		n := s.st.nodes[name]
		switch {
		case arg == "stat":
			a.nodeData(name, "", orDefault(n.attrs["currstate"], "offline"))
			continue
		case arg == "offline":
			n.attrs["currstate"] = "offline"
			a.nodeData(name, "", "offline")
			continue
		case strings.HasPrefix(arg, "osimage="):
			img := strings.TrimPrefix(arg, "osimage=")
			def, ok := s.st.osimages[img]
			if !ok {
				a.nodeError(name, fmt.Sprintf("Cannot find the OS image %s in the osimage table.", img))
				continue
			}
			if n.attrs["mac"] == "" {
				a.nodeError(name, "No MAC address available for this node")
				continue
			}
			method := orDefault(def["provmethod"], "install")
			n.attrs["provmethod"] = img
			n.attrs["os"], n.attrs["arch"], n.attrs["profile"] = def["osvers"], def["osarch"], def["profile"]
			n.attrs["currstate"] = method + " " + img
		case arg == "boot" || arg == "next" || arg == "shell" || arg == "standby":
			n.attrs["currstate"] = map[string]string{"next": "boot"}[arg]
			if n.attrs["currstate"] == "" {
				n.attrs["currstate"] = arg
			}
		default:
			a.fail("Unsupported nodeset state: " + arg)
			return
		}
		s.setStatus(n, bootStatus(n.attrs["currstate"]), now)
		a.nodeData(name, "", n.attrs["currstate"])
	}
}

func (s *Server) chdef(a *answer, nr string, nodes, args []string) {
	objType, op := "node", xcat.ChDefSet
	var pairs [][2]string
	for i := 0; i < len(args); i++ {
		switch x := args[i]; {
		case x == "-t" && i+1 < len(args):
			objType = args[i+1]
			i++
		case x == "-p":
			op = xcat.ChDefAdd
		case x == "-m":
			op = xcat.ChDefRemove
		case strings.Contains(x, "="):
			k, v, _ := strings.Cut(x, "=")
			pairs = append(pairs, [2]string{k, v})
		default:
			if objType == "site" && (x == "clustersite" || x == "site") {
				continue
			}
			a.fail("Invalid argument: " + x)
			return
		}
	}
	if len(pairs) == 0 {
		a.fail("No attributes were specified.")
		return
	}
	switch objType {
	case "site":
		for _, p := range pairs {
			s.st.site[p[0]] = p[1]
		}
		a.data("1 object definitions have been created or modified.")
		return
	case "node":
	default:
		a.fail(fmt.Sprintf("chdef: object type %q is not supported by the simulator", objType))
		return
	}
	if nr == "" {
		a.fail("No object names were provided.")
		return
	}
	if !checkChDefAttrs(a, op, pairs) {
		return
	}
	changed := 0
	for _, name := range nodes {
		if s.applyChDef(a, name, op, pairs) {
			changed++
		}
	}
	a.data(fmt.Sprintf("%d object definitions have been created or modified.", changed))
}

// checkChDefAttrs refuses, for the whole request, an attribute nodes do not have and
// -p or -m on an attribute that is not a list.
func checkChDefAttrs(a *answer, op xcat.ChDefOp, pairs [][2]string) bool {
	for _, p := range pairs {
		if !nodeAttrs[p[0]] {
			a.fail(fmt.Sprintf("'%s' is not a valid attribute name for an object type of 'node'.", p[0]))
			return false
		}
		if (op != xcat.ChDefSet) && !listAttrs[p[0]] {
			a.fail(fmt.Sprintf("'%s' is not a list attribute; -p and -m work on list attributes.", p[0]))
			return false
		}
	}
	return true
}

// applyChDef sets, adds (-p) or removes (-m) the attribute values of one node, and
// reports whether it did (a FaultChDefNode refuses it).
func (s *Server) applyChDef(a *answer, name string, op xcat.ChDefOp, pairs [][2]string) bool {
	if s.faults.takeNode(FaultChDefNode, name) {
		a.nodeError(name, ChDefFaultMessage)
		return false
	}
	n := s.st.nodes[name]
	for _, p := range pairs {
		attr, val := p[0], p[1]
		switch op {
		case xcat.ChDefSet:
			n.attrs[attr] = val
		case xcat.ChDefAdd:
			cur := splitList(n.attrs[attr])
			for _, v := range splitList(val) {
				if slices.Contains(cur, v) {
					a.warning(fmt.Sprintf("%s: %s '%s' is already included", name, attr, v))
					continue
				}
				cur = append(cur, v)
			}
			n.attrs[attr] = strings.Join(cur, ",")
		case xcat.ChDefRemove:
			cur := splitList(n.attrs[attr])
			for _, v := range splitList(val) {
				cur = slices.DeleteFunc(cur, func(c string) bool { return c == v })
			}
			n.attrs[attr] = strings.Join(cur, ",")
		}
	}
	return true
}

// chdefStanza runs chdef -z [-p|-m]: the objects, their types and attributes come
// from the stanza on standard input, and -p or -m applies to every object. It
// returns the nodes the stanza named that exist.
//
// Refusals of the whole request use xcatd's messages for -z with -t, -o or a
// noderange; an unknown attribute or -p/-m on a non-list attribute refuse the whole
// request before anything changes, as on the noderange path. An unknown node is the
// simulator's choice: a node error for that node, with the same message an unknown
// node in a noderange gets, while the other objects are applied. (Real chdef would
// try to create the object and refuse it at the top level for lacking groups, or for
// -m on an object that does not exist, and go on with the next object.)
func (s *Server) chdefStanza(a *answer, nr string, args []string, stdin string, now time.Time) []string {
	if slices.Contains(args, "-t") {
		a.fail("Cannot combine '-t' and '-a', '-z', or '-x' options.")
		return nil
	}
	if obj, _ := takeObjectArg(args); nr != "" || obj != "" {
		a.fail("Cannot use '-z' with '-o' or a noderange.")
		return nil
	}
	op := xcat.ChDefSet
	for _, x := range args {
		switch {
		case x == "-z":
		case x == "-p":
			op = xcat.ChDefAdd
		case x == "-m":
			op = xcat.ChDefRemove
		case strings.Contains(x, "="):
			a.fail("chdef -z: attr=value pairs on the command line are not supported by the simulator")
			return nil
		default:
			a.fail("Invalid argument: " + x)
			return nil
		}
	}
	objs, err := xcat.ParseStanza(stdin)
	if err != nil {
		a.fail("Could not process file input data: " + err.Error())
		return nil
	}
	if len(objs) == 0 {
		a.fail("No object names were provided.")
		return nil
	}
	perObj := make([][][2]string, len(objs))
	for i, o := range objs {
		switch t := o.Attrs["objtype"]; t {
		case "node":
		case "":
			a.fail(fmt.Sprintf("chdef -z: object %s has no objtype", o.Name))
			return nil
		default:
			a.fail(fmt.Sprintf("chdef: object type %q is not supported by the simulator", t))
			return nil
		}
		keys := make([]string, 0, len(o.Attrs))
		for k := range o.Attrs {
			if k != "objtype" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			perObj[i] = append(perObj[i], [2]string{k, o.Attrs[k]})
		}
		if len(perObj[i]) == 0 {
			a.fail("No attributes were specified.")
			return nil
		}
		if !checkChDefAttrs(a, op, perObj[i]) {
			return nil
		}
	}
	var known []string
	changed := 0
	for i, o := range objs {
		n, ok := s.st.nodes[o.Name]
		if !ok {
			a.nodeError(o.Name, (&xcat.UnknownNodesError{Names: []string{o.Name}}).Error())
			continue
		}
		known = append(known, o.Name)
		s.advance(n, now)
		if s.applyChDef(a, o.Name, op, perObj[i]) {
			changed++
		}
	}
	if changed == 0 {
		a.data("No object definitions have been created or modified.")
	} else {
		a.data(fmt.Sprintf("%d object definitions have been created or modified.", changed))
	}
	return known
}

func (s *Server) nodels(a *answer, nr string, nodes, args []string, now time.Time) {
	if nr == "" {
		nodes = slices.Clone(s.st.order)
		for _, n := range nodes {
			s.advance(s.st.nodes[n], now)
		}
	}
	if len(args) == 0 {
		a.data(nodes...)
		return
	}
	attrs := make([]string, len(args))
	for i, tc := range args {
		attr, ok := attrByTableCol[tc]
		if !ok {
			a.fail(fmt.Sprintf("nodels: unknown attribute %s", tc))
			return
		}
		attrs[i] = attr
	}
	var batch []WireNode
	for _, name := range nodes {
		n := s.st.nodes[name]
		for i, attr := range attrs {
			d := WireData{Contents: n.attrs[attr]}
			if len(attrs) > 1 {
				d.Desc = args[i]
			}
			batch = append(batch, WireNode{Name: name, Data: []WireData{d}})
		}
	}
	if len(batch) > 0 {
		a.rs = append(a.rs, WireResponse{Nodes: batch})
	}
}

// lsdefOptions are the parsed lsdef arguments.
type lsdefOptions struct {
	objType string
	long    bool
	compact bool
	attrs   []string
	where   []whereClause
}

func (s *Server) lsdef(a *answer, nr string, nodes, args []string, now time.Time) {
	o := lsdefOptions{objType: "node"}
	for i := 0; i < len(args); i++ {
		x := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch x {
		case "-t":
			o.objType = next()
		case "-l", "--long":
			o.long = true
		case "-c":
			o.compact = true
		case "-i":
			o.attrs = splitList(next())
		case "-w":
			w, err := parseWhere(next(), false)
			if err != nil {
				a.fail(err.Error())
				return
			}
			o.where = append(o.where, w)
		default:
			if o.objType == "osimage" && !strings.HasPrefix(x, "-") && nr == "" {
				nr = x
				continue
			}
			a.fail("Invalid argument: " + x)
			return
		}
	}
	type object struct {
		name  string
		attrs map[string]string
	}
	var objs []object
	switch o.objType {
	case "node":
		if nr == "" {
			nodes = slices.Clone(s.st.order)
		}
		for _, name := range nodes {
			n := s.st.nodes[name]
			s.advance(n, now)
			objs = append(objs, object{name, n.attrs})
		}
	case "osimage":
		names := splitList(nr)
		if nr == "" {
			for k := range s.st.osimages {
				names = append(names, k)
			}
			slices.Sort(names)
		}
		for _, name := range names {
			img, ok := s.st.osimages[name]
			if !ok {
				a.fail(fmt.Sprintf("Could not find an object named '%s' of type 'osimage'.", name))
				return
			}
			m := map[string]string{"imagename": name}
			for k, v := range img {
				m[k] = v
			}
			objs = append(objs, object{name, m})
		}
	default:
		a.fail(fmt.Sprintf("lsdef: object type %q is not supported by the simulator", o.objType))
		return
	}
	objs = slices.DeleteFunc(objs, func(ob object) bool {
		for _, w := range o.where {
			if !w.match(ob.attrs[w.attr]) {
				return true
			}
		}
		return false
	})
	if len(objs) == 0 {
		a.data("Could not find any object definitions to display.")
		return
	}
	long := o.long || nr != "" || len(o.attrs) > 0
	var lines []string
	for _, ob := range objs {
		if !long && !o.compact {
			lines = append(lines, fmt.Sprintf("%s  (%s)", ob.name, o.objType))
			continue
		}
		keys := o.attrs
		if len(keys) == 0 {
			for k, v := range ob.attrs {
				if v != "" && k != "imagename" {
					keys = append(keys, k)
				}
			}
		}
		keys = slices.Clone(keys)
		slices.Sort(keys)
		if !o.compact {
			lines = append(lines, "Object name: "+ob.name)
		}
		for _, k := range keys {
			if o.compact {
				lines = append(lines, fmt.Sprintf("%s: %s=%s", ob.name, k, ob.attrs[k]))
			} else {
				lines = append(lines, fmt.Sprintf("    %s=%s", k, ob.attrs[k]))
			}
		}
	}
	a.data(lines...)
}

func quoteCSV(v string, set bool) string {
	if !set {
		return ""
	}
	return `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
}

func (s *Server) tabdump(a *answer, args []string, now time.Time) {
	var table string
	var where []whereClause
	for i := 0; i < len(args); i++ {
		if args[i] == "-w" && i+1 < len(args) {
			w, err := parseWhere(args[i+1], true)
			if err != nil {
				a.fail(err.Error())
				return
			}
			where = append(where, w)
			i++
			continue
		}
		table = args[i]
	}
	if table == "" {
		a.fail("Usage: tabdump <table> [-w attr==val]...")
		return
	}
	var cols []string
	var rows []map[string]*string
	str := func(v string) *string { return &v }
	switch table {
	case "site":
		cols = []string{"key", "value", "comments", "disable"}
		keys := make([]string, 0, len(s.st.site))
		for k := range s.st.site {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			rows = append(rows, map[string]*string{"key": str(k), "value": str(s.st.site[k])})
		}
	case "passwd":
		cols = []string{"key", "username", "password", "cryptmethod", "authdomain", "comments", "disable"}
		keys := make([]string, 0, len(s.st.passwd))
		for k := range s.st.passwd {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := s.st.passwd[k]
			rows = append(rows, map[string]*string{"key": str(k), "username": str(p.Username), "password": str(p.Password)})
		}
	case "osimage":
		cols = append([]string{"imagename"}, osimageAttrs...)
		cols = append(cols, "comments", "disable")
		keys := make([]string, 0, len(s.st.osimages))
		for k := range s.st.osimages {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			row := map[string]*string{"imagename": str(k)}
			for a, v := range s.st.osimages[k] {
				row[a] = str(v)
			}
			rows = append(rows, row)
		}
	default:
		tcols, ok := nodeTables[table]
		if !ok {
			a.fail(fmt.Sprintf("Table %s does not exist.", table))
			return
		}
		cols = append([]string{"node"}, tcols...)
		cols = append(cols, "comments", "disable")
		for _, name := range s.st.order {
			n := s.st.nodes[name]
			s.advance(n, now)
			row := map[string]*string{"node": str(name)}
			any := false
			for _, c := range tcols {
				if v := n.attrs[attrByTableCol[table+"."+c]]; v != "" {
					row[c] = str(v)
					any = true
				}
			}
			if any {
				rows = append(rows, row)
			}
		}
	}
	lines := []string{"#" + strings.Join(cols, ",")}
	for _, row := range rows {
		keep := true
		for _, w := range where {
			v := ""
			if p := row[w.attr]; p != nil {
				v = *p
			}
			if !w.match(v) {
				keep = false
			}
		}
		if !keep {
			continue
		}
		fields := make([]string, len(cols))
		for i, c := range cols {
			if p := row[c]; p != nil {
				fields[i] = quoteCSV(*p, true)
			}
		}
		lines = append(lines, strings.Join(fields, ","))
	}
	a.data(lines...)
}

func (s *Server) updatenode(a *answer, nodes, args []string) {
	var scripts []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-P" && i+1 < len(args) {
			for _, part := range strings.Split(args[i+1], ",") {
				if part = strings.TrimSpace(part); part != "" {
					scripts = append(scripts, part)
				}
			}
			i++
		}
	}
	if len(scripts) == 0 {
		a.fail("Usage: updatenode <noderange> -P <scripts>")
		return
	}
	for _, name := range nodes {
		n := s.st.nodes[name]
		if n.power != "on" {
			a.nodeError(name, "Could not connect to the node: the node is powered off")
			continue
		}
		for _, sc := range scripts {
			n.ran = append(n.ran, sc)
			a.nodeData(name, "", "Running postscript: "+sc)
		}
		a.nodeData(name, "", "Running of postscripts has completed.")
	}
}
