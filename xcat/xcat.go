// Package xcat talks to xCAT in xCAT's own terms: every call takes a noderange and
// answers per node.
//
// The layers, bottom up:
//
//   - A Backend sends one Request (command, noderange, arguments) and returns the whole
//     Response, grouped by node. Two backends exist: Native speaks xcatd's XML-over-TLS
//     protocol (no xCAT-client needed) and CLI runs the xCAT-client commands with argv,
//     never a shell. Both render node data the way xCAT's CLI prints it ("desc: contents"
//     or "contents"), so one set of parsers serves both.
//   - Client is the typed API the worker and the admin tools use: rpower, nodeset,
//     chdef, nodels, lsdef, tabdump and the rest, each returning per-node results.
//   - Noderange parsing and expansion (ExpandNoderange) and the reverse
//     (CompressNoderange) turn node sets into short requests.
//
// Errors: a node's own failure is a *NodeError inside its NodeResult and never fails the
// other nodes. A failure of the whole request is returned as the call's error: a
// *CommandError when xcatd answered with a top-level error, an error wrapping
// ErrUnavailable when xcatd could not be reached or the answer ended early (transient:
// retry), ErrInvalidInput when a node name or value was refused before any request.
package xcat

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Request is one xCAT command as xcatd receives it.
type Request struct {
	// Command is the xCAT command, e.g. "rpower".
	Command string
	// Noderange is the noderange argument; empty for commands that take none.
	Noderange string
	// Args are the remaining arguments, in order, e.g. ["stat"].
	Args []string
	// Env holds XCAT_* environment entries sent with the request.
	Env map[string]string
	// Stdin is the text xCAT's CLI would have read from a pipe on its standard input,
	// such as a stanza for chdef -z; it is sent as the <stdin> element. Empty means
	// none.
	Stdin string
}

// String renders the request as the command line an admin would type; piped input
// shows as its size.
func (r Request) String() string {
	parts := []string{r.Command}
	if r.Noderange != "" {
		parts = append(parts, r.Noderange)
	}
	parts = append(parts, r.Args...)
	if r.Stdin != "" {
		parts = append(parts, fmt.Sprintf("<stdin: %d bytes>", len(r.Stdin)))
	}
	return strings.Join(parts, " ")
}

// NodeOutput is everything xcatd said about one node in one response.
type NodeOutput struct {
	// Name is the node's name.
	Name string
	// Data holds the node's data lines without the "node: " prefix, in order, as xCAT's
	// CLI prints them: "contents" or "desc: contents".
	Data []string
	// Errors and Warnings hold the node's error and warning messages.
	Errors   []string
	Warnings []string
	// ErrorCode is the node's errorcode (0 when none was sent).
	ErrorCode int
}

// Response is a whole answer to one Request.
type Response struct {
	// Nodes maps node name to its output; Order lists the names in arrival order.
	Nodes map[string]*NodeOutput
	Order []string
	// Data holds top-level data and info lines.
	Data []string
	// Warnings and Errors hold top-level warnings and errors. A warning is not a failure.
	Warnings []string
	Errors   []string
	// ErrorCode is the bitwise OR of every errorcode in the answer, as xCAT's CLI exits.
	ErrorCode int

	// elems are the answer's <xcatresponse> elements in the order xcatd sent them,
	// for PrintResponse; nil when the answer did not come as XML (the CLI backend).
	elems []xmlResponse
}

// UnsupportedRequest is the whole answer xcatd gives to a command no plugin of it
// handles; it carries no errorcode, so xCAT's client exits 0 after printing it.
const UnsupportedRequest = "Unsupported request"

// Unsupported reports whether r is xcatd's answer to a command it does not know: one
// error, UnsupportedRequest, and nothing else.
func (r *Response) Unsupported() bool {
	return r != nil && len(r.Errors) == 1 && r.Errors[0] == UnsupportedRequest &&
		len(r.Nodes) == 0 && len(r.Data) == 0 && len(r.Warnings) == 0
}

// Node returns the output for name, creating it (and recording its order) if needed.
func (r *Response) Node(name string) *NodeOutput {
	if r.Nodes == nil {
		r.Nodes = map[string]*NodeOutput{}
	}
	n, ok := r.Nodes[name]
	if !ok {
		n = &NodeOutput{Name: name}
		r.Nodes[name] = n
		r.Order = append(r.Order, name)
	}
	return n
}

// Backend sends requests to xCAT. Do returns the whole response, or an error when the
// request could not be completed (see the package doc for the error kinds); a response
// with top-level errors is returned as a *CommandError together with the response.
// Implementations are safe for concurrent use.
type Backend interface {
	Do(ctx context.Context, req Request) (*Response, error)
}

// ErrUnavailable marks a transient failure to talk to xcatd: it could not be reached,
// the connection broke, or the answer ended before serverdone. Retrying may succeed.
var ErrUnavailable = errors.New("xcatd unavailable")

// ErrInvalidInput marks a node name, noderange or attribute value refused before any
// request was sent (shell metacharacters, newlines, XML-breaking input).
var ErrInvalidInput = errors.New("invalid input")

// CommandError is a top-level error xcatd answered for a whole request, such as
// "Invalid nodes and/or groups in noderange: foo" or "Permission denied for request".
type CommandError struct {
	Request  Request
	Messages []string
	Code     int
}

// Error is xcatd's message for the command, with the command named.
func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: %s", e.Request.Command, strings.Join(e.Messages, "; "))
}

// NodeError is one node's failure in a command.
type NodeError struct {
	Command string
	Node    string
	Message string
	Code    int
	// Transient is true when retrying may succeed (a BMC timeout or busy BMC).
	Transient bool
}

// Error names the node and what xcatd said about it.
func (e *NodeError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.Command, e.Node, e.Message)
}

// NodeResult is one node's answer to a typed call.
type NodeResult struct {
	// Value is the node's parsed answer, e.g. "on" for rpower stat, "booted" for
	// nodels nodelist.status, the boot state for nodeset.
	Value string
	// Lines are the node's data lines as xCAT printed them.
	Lines []string
	// Warnings xCAT sent for the node; they do not make the call fail.
	Warnings []string
	// Err is the node's error, a *NodeError, or nil.
	Err error
}

// Results maps node name to its result. Every node of the request's noderange that
// xCAT did not answer for gets a NodeResult whose Err says so.
type Results map[string]NodeResult

// PowerAction is an rpower action.
type PowerAction string

// The rpower actions xcatbm uses.
const (
	PowerOn      PowerAction = "on"
	PowerOff     PowerAction = "off"
	PowerBoot    PowerAction = "boot"
	PowerReset   PowerAction = "reset"
	PowerSoftOff PowerAction = "softoff"
	PowerStat    PowerAction = "stat"
)

// ChDefOp says how chdef changes a list attribute.
type ChDefOp int

// The chdef modes: plain set, -p (add to a list), -m (remove from a list).
const (
	ChDefSet ChDefOp = iota
	ChDefAdd
	ChDefRemove
)

// Attrs maps an object's attribute names to values.
type Attrs map[string]string

// Client is xcatbm's typed view of xCAT. Every method takes a noderange (already
// validated by the caller or refused with ErrInvalidInput) and returns per-node results;
// the error is for the request as a whole (see the package doc). Implementations are
// safe for concurrent use.
type Client interface {
	// Power runs rpower; Value is the power state or action xCAT printed, normalized
	// ("on", "off", "reset", ...). rpower boot's old and new outputs are both accepted.
	Power(ctx context.Context, noderange string, action PowerAction) (Results, error)
	// SetBoot runs rsetboot (device: net, hd, cd, default, stat).
	SetBoot(ctx context.Context, noderange, device string) (Results, error)
	// BootSeq runs rbootseq with a boot order such as "net".
	BootSeq(ctx context.Context, noderange, order string) (Results, error)
	// NetBoot runs rnetboot.
	NetBoot(ctx context.Context, noderange string) (Results, error)
	// NodeSet runs nodeset with a state: "osimage=<image>", "stat", "offline", ...
	NodeSet(ctx context.Context, noderange, state string) (Results, error)
	// ChDef changes node attributes (chdef -t node).
	ChDef(ctx context.Context, noderange string, op ChDefOp, attrs Attrs) (Results, error)
	// ChDefEach changes each node's own attributes in one request: chdef -z with a
	// stanza on standard input, one object per node (objtype=node). op applies to
	// every node, as chdef's -p and -m do; attrs must not set objtype. Results have an
	// entry for every node of attrs, as ChDef's have for its noderange.
	ChDefEach(ctx context.Context, op ChDefOp, attrs map[string]Attrs) (Results, error)
	// ChDefSite changes site table attributes (chdef -t site).
	ChDefSite(ctx context.Context, attrs Attrs) error
	// MakeHosts runs makehosts, or makehosts -d when remove is true.
	MakeHosts(ctx context.Context, noderange string, remove bool) (Results, error)
	// NodeLs runs nodels with table.column attributes; per node, the attribute values.
	NodeLs(ctx context.Context, noderange string, attrs ...string) (map[string]Attrs, Results, error)
	// LsDefNodes runs lsdef -t node on a noderange (or, when noderange is empty, with
	// the -w selections); per node, its attributes (limited to attrs when given).
	LsDefNodes(ctx context.Context, noderange string, where []string, attrs ...string) (map[string]Attrs, error)
	// LsDefOSImages runs lsdef -t osimage; per image, its attributes.
	LsDefOSImages(ctx context.Context, names []string, attrs ...string) (map[string]Attrs, error)
	// TabDump dumps a table (with optional -w filters); one map per row, by column.
	TabDump(ctx context.Context, table string, where ...string) ([]Attrs, error)
	// UpdateNode runs updatenode -P with the given postscripts.
	UpdateNode(ctx context.Context, noderange string, scripts ...string) (Results, error)
	// RInv and RVitals run rinv and rvitals with their arguments.
	RInv(ctx context.Context, noderange string, args ...string) (Results, error)
	RVitals(ctx context.Context, noderange string, args ...string) (Results, error)
	// Raw sends any other request as is.
	Raw(ctx context.Context, req Request) (*Response, error)
}
