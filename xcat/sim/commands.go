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

// answer accumulates the response elements of one request. Elements a plugin sends
// carry the server's name (xcatdsource); the ones xcatd itself sends before any
// plugin runs (a bad noderange, an unsupported command) do not, and carry serverdone.
type answer struct {
	src   string
	rs    []WireResponse
	final bool // the last element already carries serverdone
}

// add appends a plugin's response element.
func (a *answer) add(r WireResponse) {
	r.Source = a.src
	a.rs = append(a.rs, r)
}

// nodeData answers one node's data line in an element of its own, as xCAT's ipmi
// plugin answers each node when it is done with it.
func (a *answer) nodeData(node, desc, contents string) {
	a.add(WireResponse{Nodes: []WireNode{{Name: node, Data: []WireData{descContents(desc, contents)}}}})
}

// nodeError answers one node's error (errorcode 1) in an element of its own.
func (a *answer) nodeError(node, msg string) {
	a.add(WireResponse{Nodes: []WireNode{{Name: node, Errors: []string{msg}, ErrorCode: []int{1}}}})
}

// info answers lines as info (xCAT's object commands answer so), with numofnodes
// when n >= 0.
func (a *answer) info(n int, lines ...string) {
	r := WireResponse{Info: lines}
	if n >= 0 {
		r.NumOfNodes = []int{n}
	}
	a.add(r)
}

func (a *answer) data(lines ...string) {
	if len(lines) > 0 {
		a.add(WireResponse{Data: lines})
	}
}

func (a *answer) warning(msg string) { a.add(WireResponse{Warnings: []string{msg}}) }

// fail answers a plugin's top-level error with errorcode 1.
func (a *answer) fail(msg string) {
	a.add(WireResponse{Errors: []string{msg}, ErrorCode: []int{1}})
}

// numOfNodes answers the element xCAT's object commands and nodels end with.
func (a *answer) numOfNodes(n int) { a.add(WireResponse{NumOfNodes: []int{n}}) }

// refuse is xcatd's own answer before any plugin runs: the error and serverdone in one
// element, without xcatdsource; code 0 sends no errorcode (xcatd's "Unsupported
// request" has none).
func (a *answer) refuse(msg string, code int) {
	r := WireResponse{Errors: []string{msg}, ServerDone: &struct{}{}}
	if code != 0 {
		r.ErrorCode = []int{code}
	}
	a.rs = append(a.rs, r)
	a.final = true
}

// done returns the answer with serverdone, in an element of its own after a plugin's
// answer as xcatd sends it.
func (a *answer) done() []WireResponse {
	if a.final {
		return a.rs
	}
	return append(a.rs, WireResponse{ServerDone: &struct{}{}})
}

// noderangeCommands take a noderange that xcatd expands (and verifies) before the
// plugin runs.
var noderangeCommands = map[string]bool{
	"rpower": true, "rsetboot": true, "rbootseq": true, "rnetboot": true, "nodeset": true,
	"makehosts": true, "nodels": true, "updatenode": true, "rinv": true, "rvitals": true,
	"nodestat": true,
}

// objectCommands are xCAT's object commands, whose objects travel as arguments.
var objectCommands = map[string]bool{"chdef": true, "lsdef": true}

// otherCommands take no noderange.
var otherCommands = map[string]bool{"tabdump": true, "lsxcatd": true}

// execute runs req against the state and returns the nodes it concerned and the
// answer; s.mu is held.
func (s *Server) execute(req xcat.Request, now time.Time) ([]string, []WireResponse) {
	a := answer{src: s.cfg.Hostname}
	if !noderangeCommands[req.Command] && !objectCommands[req.Command] && !otherCommands[req.Command] {
		// No plugin handles it: xcatd answers so without looking at the noderange.
		a.refuse(xcat.UnsupportedRequest, 0)
		return nil, a.done()
	}
	args := slices.Clone(req.Args)
	nr := req.Noderange
	if req.Command == "chdef" && slices.Contains(args, "-z") {
		nodes := s.chdefStanza(&a, nr, args, req.Stdin, now)
		return nodes, a.done()
	}
	switch req.Command {
	case "chdef":
		nodes := s.chdef(&a, nr, args, now)
		return nodes, a.done()
	case "lsdef":
		nodes := s.lsdef(&a, nr, args, now)
		return nodes, a.done()
	case "tabdump":
		s.tabdump(&a, args, now)
		return nil, a.done()
	case "lsxcatd":
		s.lsxcatd(&a, args)
		return nil, a.done()
	}
	var nodes []string
	if nr != "" {
		var err error
		nodes, err = s.expand(nr, true)
		if err != nil {
			var unk *xcat.UnknownNodesError
			if errors.As(err, &unk) {
				a.refuse(unk.Error(), 1)
			} else {
				a.refuse("Invalid nodes and/or groups in noderange: "+nr, 1)
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
		for _, n := range s.completionOrder(nodes) {
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
	case "nodestat":
		s.nodestat(&a, nodes)
	case "updatenode":
		s.updatenode(&a, nodes, args)
	case "rinv":
		for _, n := range s.completionOrder(nodes) {
			at := s.st.nodes[n].attrs
			a.nodeData(n, "CPU Count", orDefault(at["cpucount"], "2"))
			a.nodeData(n, "Memory", orDefault(at["memory"], "16384MB"))
			a.nodeData(n, "Disk", orDefault(at["disksize"], "sda:240GB"))
			a.nodeData(n, "BMC Firmware", "1.2")
			a.nodeData(n, "MAC Address 1", at["mac"])
		}
	case "rvitals":
		for _, n := range s.completionOrder(nodes) {
			a.nodeData(n, "CPU 1 Temperature", "+ 29.00 C (+ 84.2 F)")
			a.nodeData(n, "Power Status", s.st.nodes[n].power)
		}
	}
	return nodes, a.done()
}

// expand expands a noderange as xcatd does: sorted as strings, without duplicates.
// With verify, every name must be a node or a group (xcatd's check of the noderange
// element); without, names that are neither are taken as node names, as the object
// commands take them.
func (s *Server) expand(nr string, verify bool) ([]string, error) {
	nodes, err := xcat.ExpandNoderange(context.Background(), nr, resolver{s.st})
	var unk *xcat.UnknownNodesError
	if !verify && errors.As(err, &unk) {
		extra := map[string]bool{}
		for _, n := range unk.Names {
			extra[n] = true
		}
		nodes, err = xcat.ExpandNoderange(context.Background(), nr, lenientResolver{resolver{s.st}, extra})
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(nodes)
	return slices.Compact(nodes), nil
}

// completionOrder is the order a plugin that works on the nodes in parallel answers
// them: the noderange's own (sorted) order, or with Shuffle, a random one, as BMCs
// answer when they answer.
func (s *Server) completionOrder(nodes []string) []string {
	if !s.cfg.Shuffle || len(nodes) < 2 {
		return nodes
	}
	out := slices.Clone(nodes)
	s.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
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

// objType returns the -t argument, "node" when there is none.
func objType(args []string) string {
	for i, x := range args {
		if x == "-t" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return "node"
}

func (s *Server) powerOn(n *node, now time.Time) {
	n.power = "on"
	s.setStatus(n, "powering-on", now)
	netBoot := n.bootTarget == "net" || n.bootTarget == ""
	switch cs := n.attrs["currstate"]; {
	case strings.HasPrefix(cs, "install") || strings.HasPrefix(cs, "netboot"):
		if netBoot {
			n.install = &installRun{start: now}
		}
	case cs == "shell":
		if netBoot {
			n.install = &installRun{start: now, shell: true}
		}
	case strings.HasPrefix(cs, "runimage="):
		if netBoot {
			n.install = &installRun{start: now, runImage: strings.TrimPrefix(cs, "runimage=")}
		}
	}
}

// rpowerActions are the actions xCAT's ipmi plugin accepts; the simulator carries out
// the ones in rpowerSimulated.
var rpowerActions = []string{"reseat", "stat", "state", "status", "on", "off", "softoff", "nmi", "cycle", "reset", "boot", "wake", "suspend"}

var rpowerSimulated = []string{"stat", "state", "status", "on", "off", "softoff", "reset", "boot"}

// perNodeLines joins one line per node, as xCAT's ipmi plugin reports a refusal that
// concerns every node.
func perNodeLines(nodes []string, format string) string {
	lines := make([]string, len(nodes))
	for i, n := range nodes {
		lines[i] = fmt.Sprintf(format, n)
	}
	return strings.Join(lines, "\n")
}

func (s *Server) rpower(a *answer, nodes, args []string, now time.Time) {
	if len(args) == 0 {
		a.add(WireResponse{Data: []string{perNodeLines(nodes, "%s: Please enter an action (eg: boot,off,on, etc) when using mgt=ipmi.")}, ErrorCode: []int{1}})
		return
	}
	action := args[0]
	if !slices.Contains(rpowerActions, action) {
		// xCAT's ipmi plugin answers a data line (not an error) and errorcode 1.
		a.add(WireResponse{Data: []string{perNodeLines(nodes, "%s: Error: Unsupported command: rpower "+action+" when using mgt=ipmi.")}, ErrorCode: []int{1}})
		return
	}
	if !slices.Contains(rpowerSimulated, action) {
		a.fail("rpower " + action + " is not simulated")
		return
	}
	for _, name := range s.completionOrder(nodes) {
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

// bootOverrideInactive is what rsetboot answers when the BMC reports no boot override.
const bootOverrideInactive = "boot override inactive"

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
	for _, name := range s.completionOrder(nodes) {
		if s.faults.takeNode(FaultBMCTimeout, name) {
			a.nodeError(name, IPMITimeoutMessage)
			continue
		}
		n := s.st.nodes[name]
		// What the BMC reports back: the device set, unless it forgets boot flags.
		report := func() string {
			if v, ok := bootNames[n.bootTarget]; ok && !s.cfg.BMCForgetsBootFlags {
				return v
			}
			return bootOverrideInactive
		}
		switch {
		case cmd == "rbootseq":
			n.bootTarget = dev
			a.nodeData(name, "", args[0])
		case dev == "stat":
			a.nodeData(name, "", report())
		case dev == "default":
			n.bootTarget = ""
			a.nodeData(name, "", bootOverrideInactive)
		default:
			n.bootTarget = dev
			a.nodeData(name, "", report())
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
	case strings.HasPrefix(state, "runimage="), strings.HasPrefix(state, "runcmd="):
		return "configuring"
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
	var def map[string]string
	if img, ok := strings.CutPrefix(arg, "osimage="); ok {
		if def, ok = s.st.osimages[img]; !ok {
			// xCAT checks the image once, for the whole request.
			a.fail(fmt.Sprintf("Cannot find the OS image %s in the osimage table.", img))
			return
		}
	} else if !slices.Contains([]string{"stat", "offline", "boot", "next", "shell", "standby"}, arg) &&
		!strings.HasPrefix(arg, "runimage=") && !strings.HasPrefix(arg, "runcmd=") {
		a.fail("Unsupported nodeset state: " + arg)
		return
	}
	var done []WireNode
	for _, name := range nodes {
		n := s.st.nodes[name]
		switch {
		case arg == "stat":
			done = append(done, WireNode{Name: name, Data: []WireData{plain(orDefault(n.attrs["currstate"], "offline"))}})
			continue
		case arg == "offline":
			n.attrs["currstate"] = "offline"
		case def != nil:
			if n.attrs["mac"] == "" {
				a.nodeError(name, "No MAC address available for this node")
				continue
			}
			img := strings.TrimPrefix(arg, "osimage=")
			n.attrs["provmethod"] = img
			n.attrs["os"], n.attrs["arch"], n.attrs["profile"] = def["osvers"], def["osarch"], def["profile"]
			// The boot state names the OS, architecture and profile, not the image.
			n.attrs["currstate"] = orDefault(def["provmethod"], "install") + " " + def["osvers"] + "-" + def["osarch"] + "-" + def["profile"]
		case arg == "next":
			n.attrs["currstate"] = "boot"
		default:
			n.attrs["currstate"] = arg
		}
		s.setStatus(n, bootStatus(n.attrs["currstate"]), now)
		state := n.attrs["currstate"]
		done = append(done, WireNode{Name: name, Data: []WireData{plain(state)}, Destiny: []string{state},
			ImgServer: []string{orDefault(n.attrs["xcatmaster"], s.st.site["master"])}})
	}
	if len(done) > 0 {
		a.add(WireResponse{Nodes: done})
	}
}

// chdefErrors is the error xCAT's chdef ends with when an object could not be changed.
const chdefErrors = "One or more errors occured when attempting to create or modify xCAT object definitions."

// chdef runs chdef -t node|site with objects from -o or the first plain argument and
// attr=value pairs, and returns the nodes it concerned. An object that is not a node
// is created when the pairs give it groups, as xCAT's chdef does, and refused
// otherwise; the other objects are changed all the same.
func (s *Server) chdef(a *answer, nr string, args []string, now time.Time) []string {
	typ := objType(args)
	if nr == "" {
		nr, args = takeObjectArg(args)
	}
	op := xcat.ChDefSet
	var pairs [][2]string
	for i := 0; i < len(args); i++ {
		switch x := args[i]; {
		case x == "-t" && i+1 < len(args):
			i++
		case x == "-p":
			op = xcat.ChDefAdd
		case x == "-m":
			op = xcat.ChDefRemove
		case strings.Contains(x, "="):
			k, v, _ := strings.Cut(x, "=")
			pairs = append(pairs, [2]string{k, v})
		default:
			a.fail("Invalid argument: " + x)
			return nil
		}
	}
	if len(pairs) == 0 {
		a.fail("No attributes were specified.")
		return nil
	}
	switch typ {
	case "site":
		for _, p := range pairs {
			s.setSite(p[0], p[1])
		}
		a.info(1, "1 object definitions have been created or modified.")
		return nil
	case "node":
	default:
		a.fail(fmt.Sprintf("chdef: object type %q is not supported by the simulator", typ))
		return nil
	}
	if nr == "" {
		a.fail("No object names were provided.")
		return nil
	}
	if !checkChDefAttrs(a, op, pairs) {
		return nil
	}
	names, err := s.expand(nr, false)
	if err != nil {
		a.fail(fmt.Sprintf("Could not expand %s: %v", nr, err))
		return nil
	}
	changed, failed := 0, false
	var known []string
	for _, name := range names {
		n, ok := s.st.nodes[name]
		if !ok {
			if !s.createNode(a, name, op, pairs) {
				failed = true
				continue
			}
			known = append(known, name)
			changed++
			continue
		}
		known = append(known, name)
		s.advance(n, now)
		if s.applyChDef(a, name, op, pairs) {
			changed++
		}
	}
	s.chdefSummary(a, changed, len(names), failed)
	return known
}

// chdefSummary answers the end of a chdef: the count of changed objects, or, when an
// object was refused, chdef's error and a last element with errorcode 1.
func (s *Server) chdefSummary(a *answer, changed, total int, failed bool) {
	switch {
	case failed:
		a.add(WireResponse{Errors: []string{chdefErrors}, ErrorCode: []int{1}, NumOfNodes: []int{total}})
		a.add(WireResponse{ErrorCode: []int{1}})
	case changed == 0:
		a.info(total, "No object definitions have been created or modified.")
	default:
		a.info(total, fmt.Sprintf("%d object definitions have been created or modified.", changed))
	}
}

// createNode creates node name from chdef's pairs, as chdef does for an object that
// does not exist: it needs groups, and -m cannot apply. It reports whether it did.
func (s *Server) createNode(a *answer, name string, op xcat.ChDefOp, pairs [][2]string) bool {
	groups := ""
	for _, p := range pairs {
		if p[0] == "groups" {
			groups = p[1]
		}
	}
	if groups == "" || xcat.ValidateNodeName(name) != nil {
		a.fail(fmt.Sprintf("Attribute 'groups' is not specified for node '%s', skipping to the next node.", name))
		return false
	}
	if op == xcat.ChDefRemove {
		a.fail(fmt.Sprintf("The '-m' option is not valid since the '%s' definition does not exist.", name))
		return false
	}
	n := &node{name: name, attrs: map[string]string{}, power: "off"}
	for _, p := range pairs {
		n.attrs[p[0]] = p[1]
	}
	s.st.nodes[name] = n
	s.st.order = append(s.st.order, name)
	s.st.groupsChanged()
	return true
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
		if attr == "groups" {
			s.st.groupsChanged()
		}
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
// returns the nodes the stanza named that exist (or that it created).
//
// Refusals of the whole request use xcatd's messages for -z with -t, -o or a
// noderange; an unknown attribute or -p/-m on a non-list attribute refuse the whole
// request before anything changes, as on the noderange path. An object that is not a
// node is created or refused as chdef does it on the noderange path; the other objects
// are changed all the same.
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
	changed, failed := 0, false
	for i, o := range objs {
		n, ok := s.st.nodes[o.Name]
		if !ok {
			if !s.createNode(a, o.Name, op, perObj[i]) {
				failed = true
				continue
			}
			known = append(known, o.Name)
			changed++
			continue
		}
		known = append(known, o.Name)
		s.advance(n, now)
		if s.applyChDef(a, o.Name, op, perObj[i]) {
			changed++
		}
	}
	s.chdefSummary(a, changed, len(objs), failed)
	return known
}

// nodelsShortNames are the attribute short names nodels accepts.
var nodelsShortNames = map[string]string{"groups": "nodelist.groups", "tags": "nodelist.groups", "mgt": "nodehm.mgt"}

// nodels answers as xCAT's nodels: without attributes, the sorted nodes as bare node
// elements; with attributes, per node its values grouped by table (the simulator's
// schema order, or with Shuffle a random one: xcatd walks a Perl hash), columns
// sorted within a table, labelled when more than one attribute was asked for; then an
// element with numofnodes.
func (s *Server) nodels(a *answer, nr string, nodes, args []string, now time.Time) {
	if nr == "" {
		nodes = slices.Sorted(slices.Values(s.st.order))
		for _, n := range nodes {
			s.advance(s.st.nodes[n], now)
		}
		if len(args) == 0 {
			// Without a noderange xCAT's nodels answers each node on its own.
			for _, n := range nodes {
				a.add(WireResponse{Nodes: []WireNode{{Name: n}}})
			}
			a.numOfNodes(len(nodes))
			return
		}
	}
	if len(args) == 0 {
		batch := make([]WireNode, len(nodes))
		for i, n := range nodes {
			batch[i] = WireNode{Name: n}
		}
		if len(batch) > 0 {
			a.add(WireResponse{Nodes: batch})
		}
		a.numOfNodes(len(nodes))
		return
	}
	terse := 2
	type label struct{ col, label string }
	byTable := map[string][]label{}
	for _, arg := range args {
		tc := arg
		if full, ok := nodelsShortNames[arg]; ok {
			tc = full
			terse--
		} else if strings.Contains(arg, ".") {
			terse--
		}
		table, col, _ := strings.Cut(tc, ".")
		if _, ok := attrByTableCol[tc]; !ok {
			a.fail(arg + " not a valid table.column description")
			continue
		}
		if !slices.ContainsFunc(byTable[table], func(l label) bool { return l.col == col }) {
			byTable[table] = append(byTable[table], label{col, arg})
		}
	}
	tables := make([]string, 0, len(byTable))
	for _, t := range tableOrder {
		if _, ok := byTable[t]; ok {
			tables = append(tables, t)
		}
	}
	if s.cfg.Shuffle {
		s.rng.Shuffle(len(tables), func(i, j int) { tables[i], tables[j] = tables[j], tables[i] })
	}
	var batch []WireNode
	for _, name := range nodes {
		n := s.st.nodes[name]
		for _, t := range tables {
			cols := slices.Clone(byTable[t])
			slices.SortFunc(cols, func(x, y label) int { return strings.Compare(x.col, y.col) })
			for _, c := range cols {
				d := WireData{Contents: ptr(n.attrs[attrByTableCol[t+"."+c.col]])}
				if terse <= 0 {
					d.Desc = ptr(c.label)
				}
				batch = append(batch, WireNode{Name: name, Data: []WireData{d}})
			}
		}
	}
	if len(batch) > 0 {
		a.add(WireResponse{Nodes: batch})
	}
	a.numOfNodes(len(nodes))
}

// nodestat answers as xCAT's nodestat does on a management node without fping (as the
// one the xcatd transcripts were taken on): nodes that /etc/hosts does not name are
// reported, then the missing fping.
func (s *Server) nodestat(a *answer, nodes []string) {
	for _, n := range nodes {
		if s.st.nodes[n].hostsIP == "" {
			a.add(WireResponse{Info: []string{fmt.Sprintf("%s: Please make sure %s exists in /etc/hosts", n, n)}})
		}
	}
	a.add(WireResponse{Info: []string{"Unable to find fping on system, must install fping package to use nodestat -f"}})
}

// lsxcatd answers -v (version), -d (database) and -a (both).
func (s *Server) lsxcatd(a *answer, args []string) {
	version := "Version " + s.cfg.Version
	switch {
	case slices.Contains(args, "-a") || slices.Contains(args, "--all"):
		a.data(version)
		a.data("dbengine=SQLite")
	case slices.Contains(args, "-v") || slices.Contains(args, "--version"):
		a.data(version)
	case slices.Contains(args, "-d") || slices.Contains(args, "--database"):
		a.data("dbengine=SQLite")
	default:
		a.add(WireResponse{Data: []string{"lsxcatd [-v|--version]", "lsxcatd [-h|--help]", "lsxcatd [-d|--database]", "lsxcatd [-a|--all]"}})
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

// lsdef answers as xCAT's lsdef: objects named but not defined are each an error,
// the listing is info lines in one element with numofnodes, and "No object
// definitions have been found" when nothing is left to list. It returns the nodes it
// listed.
func (s *Server) lsdef(a *answer, nr string, args []string, now time.Time) []string {
	if nr == "" {
		nr, args = takeObjectArg(args)
	}
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
				return nil
			}
			o.where = append(o.where, w)
		default:
			a.fail("Invalid argument: " + x)
			return nil
		}
	}
	type object struct {
		name  string
		attrs map[string]string
	}
	var objs []object
	total := 0
	notFound := func(name string) {
		a.fail(fmt.Sprintf("Could not find an object named '%s' of type '%s'.", name, o.objType))
	}
	switch o.objType {
	case "node":
		names := slices.Sorted(slices.Values(s.st.order))
		if nr != "" {
			var err error
			if names, err = s.expand(nr, false); err != nil {
				a.fail(fmt.Sprintf("Could not expand %s: %v", nr, err))
				return nil
			}
		}
		total = len(names)
		for _, name := range names {
			n, ok := s.st.nodes[name]
			if !ok {
				notFound(name)
				continue
			}
			s.advance(n, now)
			objs = append(objs, object{name, n.attrs})
		}
	case "osimage":
		names := splitList(nr)
		if nr == "" {
			for k := range s.st.osimages {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		total = len(names)
		for _, name := range names {
			img, ok := s.st.osimages[name]
			if !ok {
				notFound(name)
				continue
			}
			m := map[string]string{"imagename": name}
			for k, v := range img {
				m[k] = v
			}
			objs = append(objs, object{name, m})
		}
	default:
		a.fail(fmt.Sprintf("lsdef: object type %q is not supported by the simulator", o.objType))
		return nil
	}
	objs = slices.DeleteFunc(objs, func(ob object) bool {
		for _, w := range o.where {
			if !w.match(ob.attrs[w.attr]) {
				return true
			}
		}
		return false
	})
	var listed []string
	long := o.long || nr != "" || len(o.attrs) > 0
	var lines []string
	for _, ob := range objs {
		if o.objType == "node" {
			listed = append(listed, ob.name)
		}
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
	switch {
	case len(lines) > 0:
		a.info(total, lines...)
	case total > 0:
		a.info(total, "No object definitions have been found")
	}
	return listed
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
		for _, k := range s.st.siteOrder {
			rows = append(rows, map[string]*string{"key": str(k), "value": str(s.st.site[k])})
		}
	case "passwd":
		cols = []string{"key", "username", "password", "cryptmethod", "authdomain", "comments", "disable"}
		for _, k := range slices.Sorted(mapKeys(s.st.passwd)) {
			p := s.st.passwd[k]
			rows = append(rows, map[string]*string{"key": str(k), "username": str(p.Username), "password": str(p.Password)})
		}
	case "osimage":
		cols = append([]string{"imagename"}, osimageAttrs...)
		cols = append(cols, "comments", "disable")
		for _, k := range slices.Sorted(mapKeys(s.st.osimages)) {
			row := map[string]*string{"imagename": str(k)}
			for a, v := range s.st.osimages[k] {
				row[a] = str(v)
			}
			rows = append(rows, row)
		}
	default:
		tcols, ok := nodeTables[table]
		if !ok {
			a.fail("No such table: " + table)
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
	for _, name := range s.completionOrder(nodes) {
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
