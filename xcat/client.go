package xcat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// NewClient returns the Client that builds xCAT requests, sends them through b and
// parses the answers. Inputs are validated before anything is sent (ErrInvalidInput).
// It is safe for concurrent use when b is.
func NewClient(b Backend, opts ...Option) Client {
	c := &client{b: b}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Option configures a Client made by NewClient.
type Option func(*client)

// WithMaxNodes makes every call refuse, before anything is sent, a noderange that
// names more than max nodes (CheckNoderangeSize; a *NoderangeTooLargeError), and a
// chdef -z of more than max nodes. max <= 0, the default, sets no limit beyond
// MaxExpandedNodes.
func WithMaxNodes(max int) Option {
	return func(c *client) { c.maxNodes = max }
}

type client struct {
	b        Backend
	maxNodes int
}

// checkNoderange is ValidateNoderange and the client's size limit.
func (c *client) checkNoderange(nr string) error {
	if err := validateNoderange(nr); err != nil {
		return err
	}
	return CheckNoderangeSize(nr, c.maxNodes)
}

// noAnswer is the message of a node that xCAT said nothing about.
const noAnswer = "no answer from xCAT for this node"

// parseFunc turns a node's data lines into its Value; false means the output is not
// what the command prints on success.
type parseFunc func(lines []string) (string, bool)

// lastLine parses a node's answer with parse applied to its last data line.
func lastLine(parse func(string) (string, bool)) parseFunc {
	return func(lines []string) (string, bool) {
		if len(lines) == 0 {
			return "", false
		}
		return parse(lines[len(lines)-1])
	}
}

// anyOutput accepts whatever a node printed; Value is its last line.
func anyOutput(lines []string) (string, bool) {
	if len(lines) == 0 {
		return "", true
	}
	return lines[len(lines)-1], true
}

// perNode sends req and turns the answer into Results, one per node: its parsed value,
// lines and warnings, or a *NodeError. Nodes of the noderange without an answer get a
// NodeError saying so (when the noderange can be expanded without asking xCAT: plain
// names and ranges; groups cannot be checked). A top-level error is returned as the
// call's error along with the Results, whose unanswered nodes carry that error.
func (c *client) perNode(ctx context.Context, req Request, parse parseFunc) (Results, *Response, error) {
	resp, err := c.b.Do(ctx, req)
	if resp == nil {
		resp = &Response{}
	}
	res := Results{}
	for _, name := range resp.Order {
		n := resp.Nodes[name]
		r := NodeResult{Lines: n.Data, Warnings: n.Warnings}
		switch {
		case len(n.Errors) > 0 || n.ErrorCode != 0:
			msg := strings.Join(n.Errors, "; ")
			if msg == "" {
				msg = fmt.Sprintf("errorcode %d", n.ErrorCode)
			}
			r.Err = &NodeError{Command: req.Command, Node: name, Message: msg, Code: n.ErrorCode, Transient: isTransient(msg)}
		default:
			v, ok := parse(n.Data)
			if !ok {
				r.Err = &NodeError{Command: req.Command, Node: name, Message: fmt.Sprintf("unexpected output %q", strings.Join(n.Data, "\\n"))}
			}
			r.Value = v
		}
		res[name] = r
	}
	c.fillMissing(ctx, req, res, err, noAnswer)
	return res, resp, err
}

// fillMissing gives every node of req's noderange without a result an error result.
// When err is the request's failure its message is used, otherwise missing.
func (c *client) fillMissing(ctx context.Context, req Request, res Results, err error, missing string) {
	for _, node := range c.expected(ctx, req.Noderange, res) {
		if _, ok := res[node]; ok {
			continue
		}
		msg, transient := missing, false
		if err != nil {
			msg, transient = err.Error(), errors.Is(err, ErrUnavailable)
		}
		res[node] = NodeResult{Err: &NodeError{Command: req.Command, Node: node, Message: msg, Transient: transient}}
	}
}

// expected returns the nodes a noderange names when that can be known without asking
// xCAT: names and ranges expand; if an answered node is not among them, the noderange
// held a group and nothing is expected.
func (c *client) expected(ctx context.Context, nr string, res Results) []string {
	if nr == "" {
		return nil
	}
	nodes, err := ExpandNoderange(ctx, nr, nil)
	if err != nil {
		return nil
	}
	for name := range res {
		if !slices.Contains(nodes, name) {
			return nil
		}
	}
	return nodes
}

// silent sends req for a command that prints nothing per node on success (chdef,
// makehosts): every node of the noderange gets a result, an error when the command
// failed or named the node in an error, its warnings otherwise. Top-level warnings of
// the form "node: msg" go to that node. When the noderange cannot be expanded the
// results are keyed by the noderange itself.
func (c *client) silent(ctx context.Context, req Request, nr string) (Results, error) {
	nodes, xerr := ExpandNoderange(ctx, nr, nil)
	if xerr != nil || len(nodes) == 0 {
		nodes = []string{nr}
	}
	return c.silentNodes(ctx, req, nodes)
}

// silentNodes is silent for a request that names nodes some other way than by a
// noderange (chdef -z names them in its stanza): every one of nodes gets a result.
func (c *client) silentNodes(ctx context.Context, req Request, nodes []string) (Results, error) {
	resp, err := c.b.Do(ctx, req)
	if resp == nil {
		resp = &Response{}
	}
	res := Results{}
	for _, name := range resp.Order {
		n := resp.Nodes[name]
		r := NodeResult{Lines: n.Data, Warnings: n.Warnings}
		if len(n.Errors) > 0 || n.ErrorCode != 0 {
			msg := strings.Join(n.Errors, "; ")
			if msg == "" {
				msg = fmt.Sprintf("errorcode %d", n.ErrorCode)
			}
			r.Err = &NodeError{Command: req.Command, Node: name, Message: msg, Code: n.ErrorCode, Transient: isTransient(msg)}
		}
		res[name] = r
	}
	for _, node := range nodes {
		r := res[node]
		if err != nil && r.Err == nil {
			r.Err = &NodeError{Command: req.Command, Node: node, Message: err.Error(), Transient: errors.Is(err, ErrUnavailable)}
		}
		res[node] = r
	}
	for _, w := range resp.Warnings {
		if node, msg, ok := chdefWarningNode(w); ok {
			if r, found := res[node]; found {
				r.Warnings = append(r.Warnings, msg)
				res[node] = r
			}
		}
	}
	return res, err
}

// Power runs rpower.
func (c *client) Power(ctx context.Context, noderange string, action PowerAction) (Results, error) {
	if err := c.checkNoderange(noderange); err != nil {
		return nil, err
	}
	if err := validateWord("rpower action", string(action)); err != nil {
		return nil, err
	}
	res, _, err := c.perNode(ctx, Request{Command: "rpower", Noderange: noderange, Args: []string{string(action)}}, lastLine(parsePower))
	return res, err
}

// SetBoot runs rsetboot.
func (c *client) SetBoot(ctx context.Context, noderange, device string) (Results, error) {
	if err := c.checkNoderange(noderange); err != nil {
		return nil, err
	}
	if err := validateWord("boot device", device); err != nil {
		return nil, err
	}
	res, _, err := c.perNode(ctx, Request{Command: "rsetboot", Noderange: noderange, Args: []string{device}}, lastLine(parseBootDevice))
	return res, err
}

// BootSeq runs rbootseq.
func (c *client) BootSeq(ctx context.Context, noderange, order string) (Results, error) {
	if err := c.checkNoderange(noderange); err != nil {
		return nil, err
	}
	if err := validateValue("boot order", order); err != nil {
		return nil, err
	}
	if strings.ContainsAny(order, " ") || strings.HasPrefix(order, "-") {
		return nil, fmt.Errorf("boot order %q: %w", order, ErrInvalidInput)
	}
	res, _, err := c.perNode(ctx, Request{Command: "rbootseq", Noderange: noderange, Args: []string{order}}, anyOutput)
	return res, err
}

// NetBoot runs rnetboot.
func (c *client) NetBoot(ctx context.Context, noderange string) (Results, error) {
	if err := c.checkNoderange(noderange); err != nil {
		return nil, err
	}
	res, _, err := c.perNode(ctx, Request{Command: "rnetboot", Noderange: noderange}, anyOutput)
	return res, err
}

// NodeSet runs nodeset.
func (c *client) NodeSet(ctx context.Context, noderange, state string) (Results, error) {
	if err := c.checkNoderange(noderange); err != nil {
		return nil, err
	}
	if err := validateValue("nodeset state", state); err != nil {
		return nil, err
	}
	if state == "" || strings.HasPrefix(state, "-") || strings.Contains(state, " ") {
		return nil, fmt.Errorf("nodeset state %q: %w", state, ErrInvalidInput)
	}
	if img, ok := strings.CutPrefix(state, "osimage="); ok {
		if err := ValidateOSImageName(img); err != nil {
			return nil, err
		}
	}
	res, _, err := c.perNode(ctx, Request{Command: "nodeset", Noderange: noderange, Args: []string{state}}, lastLine(parseNodeSet))
	return res, err
}

// attrArgs validates attrs and renders them as sorted "name=value" arguments.
func attrArgs(attrs Attrs) ([]string, error) {
	if len(attrs) == 0 {
		return nil, fmt.Errorf("no attributes: %w", ErrInvalidInput)
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		if err := validateAttrName(k); err != nil {
			return nil, err
		}
		if err := validateValue("value of "+k, attrs[k]); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]string, 0, len(keys))
	for _, k := range keys {
		args = append(args, k+"="+attrs[k])
	}
	return args, nil
}

// ChDef runs chdef -t node [-p|-m] <noderange> attr=value...
func (c *client) ChDef(ctx context.Context, noderange string, op ChDefOp, attrs Attrs) (Results, error) {
	if err := c.checkNoderange(noderange); err != nil {
		return nil, err
	}
	kv, err := attrArgs(attrs)
	if err != nil {
		return nil, err
	}
	args, err := chdefOpArgs([]string{"-t", "node"}, op)
	if err != nil {
		return nil, err
	}
	args = append(args, "-o", noderange)
	args = append(args, kv...)
	// chdef is one of xCAT's "no noderange" commands: its objects travel as arguments.
	return c.silent(ctx, Request{Command: "chdef", Args: args}, noderange)
}

// ChDefEach runs chdef -z [-p|-m] with a stanza of one node object per entry of
// attrs on standard input.
func (c *client) ChDefEach(ctx context.Context, op ChDefOp, attrs map[string]Attrs) (Results, error) {
	if len(attrs) == 0 {
		return nil, fmt.Errorf("chdef -z: no nodes: %w", ErrInvalidInput)
	}
	if c.maxNodes > 0 && len(attrs) > c.maxNodes {
		names := make([]string, 0, len(attrs))
		for n := range attrs {
			names = append(names, n)
		}
		return nil, &NoderangeTooLargeError{Noderange: CompressNoderange(names), Max: c.maxNodes}
	}
	names := make([]string, 0, len(attrs))
	for name, a := range attrs {
		if len(a) == 0 {
			return nil, fmt.Errorf("chdef -z: node %s: no attributes: %w", name, ErrInvalidInput)
		}
		if _, ok := a["objtype"]; ok {
			return nil, fmt.Errorf("chdef -z: node %s: objtype is always node: %w", name, ErrInvalidInput)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	objs := make([]StanzaObject, 0, len(names))
	for _, name := range names {
		a := make(Attrs, len(attrs[name])+1)
		for k, v := range attrs[name] {
			a[k] = v
		}
		a["objtype"] = "node"
		objs = append(objs, StanzaObject{Name: name, Attrs: a})
	}
	stanza, err := FormatStanza(objs)
	if err != nil {
		return nil, err
	}
	// -z takes its objects and their type from the stanza: xCAT refuses it together
	// with -t, -o or a noderange.
	args, err := chdefOpArgs([]string{"-z"}, op)
	if err != nil {
		return nil, err
	}
	return c.silentNodes(ctx, Request{Command: "chdef", Args: args, Stdin: stanza}, names)
}

// chdefOpArgs appends op's flag (-p adds to a list, -m removes from it) to args.
func chdefOpArgs(args []string, op ChDefOp) ([]string, error) {
	switch op {
	case ChDefSet:
		return args, nil
	case ChDefAdd:
		return append(args, "-p"), nil
	case ChDefRemove:
		return append(args, "-m"), nil
	}
	return nil, fmt.Errorf("chdef mode %d: %w", op, ErrInvalidInput)
}

// ChDefSite runs chdef -t site -o clustersite attr=value...
func (c *client) ChDefSite(ctx context.Context, attrs Attrs) error {
	kv, err := attrArgs(attrs)
	if err != nil {
		return err
	}
	args := append([]string{"-t", "site", "-o", "clustersite"}, kv...)
	_, err = c.b.Do(ctx, Request{Command: "chdef", Args: args})
	return err
}

// MakeHosts runs makehosts [-d].
func (c *client) MakeHosts(ctx context.Context, noderange string, remove bool) (Results, error) {
	if err := c.checkNoderange(noderange); err != nil {
		return nil, err
	}
	var args []string
	if remove {
		args = []string{"-d"}
	}
	return c.silent(ctx, Request{Command: "makehosts", Noderange: noderange, Args: args}, noderange)
}

// NodeLs runs nodels with attributes.
func (c *client) NodeLs(ctx context.Context, noderange string, attrs ...string) (map[string]Attrs, Results, error) {
	if err := c.checkNoderange(noderange); err != nil {
		return nil, nil, err
	}
	for _, a := range attrs {
		if err := validateAttrName(a); err != nil {
			return nil, nil, err
		}
	}
	req := Request{Command: "nodels", Noderange: noderange, Args: attrs}
	if len(attrs) == 0 {
		// Plain nodels answers node names, one per line at the top level (or as bare
		// node elements); Value is the name.
		resp, err := c.b.Do(ctx, req)
		if resp == nil {
			resp = &Response{}
		}
		out, res := map[string]Attrs{}, Results{}
		names := slices.Clone(resp.Order)
		for _, l := range resp.Data {
			if name := strings.TrimSpace(l); isNodeName(name) {
				names = append(names, name)
			}
		}
		for _, name := range names {
			out[name] = Attrs{}
			res[name] = NodeResult{Value: name, Lines: []string{name}}
		}
		c.fillMissing(ctx, req, res, err, noAnswer)
		return out, res, err
	}
	res, _, err := c.perNode(ctx, req, anyOutput)
	out := map[string]Attrs{}
	for name, r := range res {
		if r.Err != nil {
			continue
		}
		a := parseNodeLs(r.Lines, attrs)
		out[name] = a
		if len(attrs) == 1 {
			r.Value = a[attrs[0]]
			res[name] = r
		}
	}
	return out, res, err
}

// whereArgs validates -w selections and renders them as arguments.
func whereArgs(where []string) ([]string, error) {
	var args []string
	for _, w := range where {
		if err := validateValue("selection", w); err != nil {
			return nil, err
		}
		if w == "" || strings.HasPrefix(w, "-") || !strings.ContainsAny(w, "=!~") {
			return nil, fmt.Errorf("selection %q: %w", w, ErrInvalidInput)
		}
		args = append(args, "-w", w)
	}
	return args, nil
}

// attrList validates attribute names and renders them as one -i argument.
func attrList(attrs []string) ([]string, error) {
	if len(attrs) == 0 {
		return nil, nil
	}
	for _, a := range attrs {
		if err := validateAttrName(a); err != nil {
			return nil, err
		}
	}
	return []string{"-i", strings.Join(attrs, ",")}, nil
}

// LsDefNodes runs lsdef -t node -l.
func (c *client) LsDefNodes(ctx context.Context, noderange string, where []string, attrs ...string) (map[string]Attrs, error) {
	args := []string{"-t", "node", "-l"}
	if noderange != "" {
		if err := c.checkNoderange(noderange); err != nil {
			return nil, err
		}
		args = append(args, "-o", noderange)
	}
	w, err := whereArgs(where)
	if err != nil {
		return nil, err
	}
	args = append(args, w...)
	i, err := attrList(attrs)
	if err != nil {
		return nil, err
	}
	args = append(args, i...)
	return c.lsdef(ctx, Request{Command: "lsdef", Args: args})
}

// LsDefOSImages runs lsdef -t osimage -l.
func (c *client) LsDefOSImages(ctx context.Context, names []string, attrs ...string) (map[string]Attrs, error) {
	args := []string{"-t", "osimage", "-l"}
	if len(names) > 0 {
		for _, n := range names {
			if err := ValidateOSImageName(n); err != nil {
				return nil, err
			}
		}
		args = append(args, "-o", strings.Join(names, ","))
	}
	i, err := attrList(attrs)
	if err != nil {
		return nil, err
	}
	args = append(args, i...)
	return c.lsdef(ctx, Request{Command: "lsdef", Args: args})
}

// lsdef sends an lsdef request and reads the long form, or the -c form if that is what
// came back (node data "attr=value", or top-level "obj: attr=value").
func (c *client) lsdef(ctx context.Context, req Request) (map[string]Attrs, error) {
	resp, err := c.b.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	out := parseLsDefLong(resp.Data)
	for obj, a := range parseLsDefC(resp.Data) {
		if _, ok := out[obj]; !ok {
			out[obj] = a
		}
	}
	for _, name := range resp.Order {
		n := resp.Nodes[name]
		var lines []string
		for _, l := range n.Data {
			lines = append(lines, name+": "+l)
		}
		for obj, a := range parseLsDefC(lines) {
			if out[obj] == nil {
				out[obj] = Attrs{}
			}
			for k, v := range a {
				out[obj][k] = v
			}
		}
	}
	return out, nil
}

// TabDump runs tabdump [-w sel]... table.
func (c *client) TabDump(ctx context.Context, table string, where ...string) ([]Attrs, error) {
	if err := validateWord("table", table); err != nil {
		return nil, err
	}
	args, err := whereArgs(where)
	if err != nil {
		return nil, err
	}
	args = append(args, table)
	resp, err := c.b.Do(ctx, Request{Command: "tabdump", Args: args})
	if err != nil {
		return nil, err
	}
	// A CSV line such as "node1: x" cannot occur (values are quoted), but the CLI backend
	// may have taken an unquoted line for node data; put such lines back in order.
	lines := resp.Data
	if len(resp.Order) > 0 {
		lines = slices.Clone(resp.Data)
		for _, name := range resp.Order {
			for _, l := range resp.Nodes[name].Data {
				lines = append(lines, name+": "+l)
			}
		}
	}
	return parseTabDump(lines), nil
}

// UpdateNode runs updatenode <noderange> -P scripts.
func (c *client) UpdateNode(ctx context.Context, noderange string, scripts ...string) (Results, error) {
	if err := c.checkNoderange(noderange); err != nil {
		return nil, err
	}
	args := []string{"-P"}
	if len(scripts) > 0 {
		for _, s := range scripts {
			// An entry is a script name with optional arguments ("deconfig_ops_bmnode
			// 10.1.2.3"); the entries are joined with commas.
			if err := validateValue("postscript", s); err != nil {
				return nil, err
			}
			if name, _, _ := strings.Cut(s, " "); validateWord("postscript", name) != nil || strings.Contains(s, ",") {
				return nil, fmt.Errorf("postscript %q: %w", s, ErrInvalidInput)
			}
		}
		args = append(args, strings.Join(scripts, ","))
	}
	res, _, err := c.perNode(ctx, Request{Command: "updatenode", Noderange: noderange, Args: args}, anyOutput)
	return res, err
}

// RInv runs rinv.
func (c *client) RInv(ctx context.Context, noderange string, args ...string) (Results, error) {
	return c.query(ctx, "rinv", noderange, args)
}

// RVitals runs rvitals.
func (c *client) RVitals(ctx context.Context, noderange string, args ...string) (Results, error) {
	return c.query(ctx, "rvitals", noderange, args)
}

func (c *client) query(ctx context.Context, command, noderange string, args []string) (Results, error) {
	if err := c.checkNoderange(noderange); err != nil {
		return nil, err
	}
	for _, a := range args {
		if err := validateWord(command+" argument", a); err != nil {
			return nil, err
		}
	}
	res, _, err := c.perNode(ctx, Request{Command: command, Noderange: noderange, Args: args}, func([]string) (string, bool) { return "", true })
	return res, err
}

// Raw sends req as is, after the checks every backend makes and the ones the typed
// calls make on the same values: the noderange as ValidateNoderange and the size
// limit check it; an object command's (lsdef, chdef, mkdef, rmdef) object names
// likewise, its attribute values and -w selections as values.
func (c *client) Raw(ctx context.Context, req Request) (*Response, error) {
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	if req.Noderange != "" {
		if err := c.checkNoderange(req.Noderange); err != nil {
			return nil, err
		}
	}
	if err := checkObjectArgs(req, c.checkNoderange); err != nil {
		return nil, err
	}
	return c.b.Do(ctx, req)
}
