package xcat

import (
	"fmt"
	"io"
	"strings"
)

// PrintOptions changes how PrintResponse prints an answer.
type PrintOptions struct {
	// ShowSource prefixes info and data lines with the answering server's name
	// ("[mn1]: "), as xCAT's client does for a command run with -V or --verbose
	// (XCATSHOWSVR). Errors and warnings always carry it.
	ShowSource bool
}

// VerboseArgs reports whether args ask xCAT's client to show the answering server on
// every line, as xcatclient does for -V and --verbose.
func VerboseArgs(args []string) bool {
	for _, a := range args {
		if a == "-V" || a == "--verbose" {
			return true
		}
	}
	return false
}

// PrintResponse writes resp to stdout and stderr the way xCAT's own client prints an
// answer (xCAT::Client::handle_response, xCAT 2.19) and returns the exit code the
// client would return: the bitwise OR of every errorcode in the answer.
//
// For an answer read from xcatd (Native, ReadResponse) every <xcatresponse> element is
// printed in arrival order, each as the client does: errors ("Error: [server]: msg")
// and warnings on stderr; info, then node lines, then data on stdout. A node line is
// "name", "name: data" (only the first data of a node element counts) or, on stderr,
// "name: [server]: Error: msg"; once a node element of a response carried an error or
// a warning, the client prints the rest of that response's node lines on stderr too.
// An error without an errorcode leaves the exit code 0, as it does for the client.
//
// A Response that did not come as XML (the CLI backend) is printed from its grouped
// form: errors, warnings, data, then each node's lines; its exit code is its
// ErrorCode, or 1 when it holds errors without one.
//
// An answer cut short before serverdone is not detected here: the caller, which has
// the request's error, prints xCAT's "ended prematurely" line and exits 1 as the
// client does.
func PrintResponse(stdout, stderr io.Writer, resp *Response, opts PrintOptions) int {
	if resp == nil {
		return 0
	}
	if resp.elems == nil {
		return printGrouped(stdout, stderr, resp)
	}
	code := 0
	for i := range resp.elems {
		code |= printElement(stdout, stderr, &resp.elems[i], opts)
	}
	return code
}

// printElement prints one <xcatresponse> element as handle_response does and returns
// the OR of its errorcodes.
func printElement(stdout, stderr io.Writer, x *xmlResponse, opts PrintOptions) int {
	src := ""
	if len(x.Source) > 0 {
		src = scalar(x.Source[0])
	}
	show := len(x.Host) > 0 || (opts.ShowSource && len(x.NoSvrPrefix) == 0)
	code := 0
	for _, c := range x.ErrorCode {
		code |= perlInt(c)
	}
	tagged := func(text string) string {
		if truthy(text) && truthy(src) {
			return "[" + src + "]: " + text
		}
		return text
	}
	for _, e := range x.Error {
		line := tagged(scalar(e))
		if len(x.NoErrorPrefix) == 0 {
			line = "Error: " + line
		}
		fmt.Fprintln(stderr, line)
	}
	for _, w := range x.Warning {
		line := tagged(scalar(w))
		if len(x.NoWarnPrefix) == 0 {
			line = "Warning: " + line
		}
		fmt.Fprintln(stderr, line)
	}
	for _, in := range x.Info {
		line := scalar(in)
		if show {
			line = tagged(line)
		}
		fmt.Fprintln(stdout, line)
	}
	for _, s := range x.SInfo {
		fmt.Fprint(stdout, scalar(s)+"\r")
	}
	// The client's error flag is set by a node's error or warning and stays set for
	// the remaining node elements of the same response.
	toStderr := false
	for _, n := range x.Node {
		desc := ""
		switch {
		case len(n.Name) > 0:
			desc = scalar(n.Name[0])
		case len(n.Data) == 0 && len(n.Error) == 0 && len(n.Warning) == 0:
			// The noderange pseudo-command's bare <node>name</node>.
			desc = strings.TrimSpace(n.Text)
		}
		for _, c := range n.ErrorCode {
			code |= perlInt(c)
		}
		withSource := func() {
			if !truthy(src) {
				return
			}
			if truthy(desc) {
				desc += ": [" + src + "]"
			} else {
				desc = "[" + src + "]"
			}
		}
		if len(n.Error) > 0 {
			withSource()
			desc += ": Error: " + scalar(n.Error[0])
			toStderr = true
		}
		if len(n.Warning) > 0 {
			withSource()
			desc += ": Warning: " + scalar(n.Warning[0])
			toStderr = true
		}
		if len(n.Data) > 0 {
			if show {
				withSource()
			}
			d := n.Data[0]
			if d.structured() {
				if len(d.Desc) > 0 {
					desc += ": " + scalar(d.Desc[0])
				}
				if len(d.Contents) > 0 {
					desc += ": " + scalar(d.Contents[0])
				}
			} else {
				desc += ": " + scalar(d.Text)
			}
		}
		if truthy(desc) && desc != "["+src+"]" {
			if toStderr {
				fmt.Fprintln(stderr, desc)
			} else {
				fmt.Fprintln(stdout, desc)
			}
		}
	}
	for _, d := range x.Data {
		line := ""
		if d.structured() {
			if len(d.Desc) > 0 {
				line = scalar(d.Desc[0])
			}
			if len(d.Contents) > 0 {
				if truthy(line) {
					line += ": " + scalar(d.Contents[0])
				} else {
					line = scalar(d.Contents[0])
				}
			}
		} else {
			line = scalar(d.Text)
		}
		if truthy(line) {
			if show {
				line = tagged(line)
			}
			fmt.Fprintln(stdout, line)
		}
	}
	return code
}

// structured reports whether xCAT's client reads the data element as a structure
// (it has child elements) rather than as a string.
func (d xmlData) structured() bool {
	return len(d.Desc) > 0 || len(d.Contents) > 0 || len(d.Other) > 0
}

// scalar is the value XML::Simple gives an element's text: text made only of white
// space counts as empty.
func scalar(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	return s
}

// truthy is Perl's truth of a string: neither empty nor "0".
func truthy(s string) bool { return s != "" && s != "0" }

// perlInt is the number Perl reads from a string in numeric context: optional space
// and sign, then leading digits; 0 when there are none.
func perlInt(s string) int {
	s = strings.TrimLeft(s, " \t\n\r")
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n < 1<<30 {
			n = n*10 + int(s[i]-'0')
		}
	}
	if neg {
		return -n
	}
	return n
}

// printGrouped prints a Response without its elements (the CLI backend's): errors,
// warnings, data, then each node's errors, warnings and data lines.
func printGrouped(stdout, stderr io.Writer, resp *Response) int {
	for _, e := range resp.Errors {
		fmt.Fprintln(stderr, "Error:", e)
	}
	for _, w := range resp.Warnings {
		fmt.Fprintln(stderr, "Warning:", w)
	}
	for _, d := range resp.Data {
		fmt.Fprintln(stdout, d)
	}
	failed := len(resp.Errors) > 0
	for _, name := range resp.Order {
		n := resp.Nodes[name]
		for _, e := range n.Errors {
			fmt.Fprintf(stderr, "%s: Error: %s\n", name, e)
			failed = true
		}
		for _, w := range n.Warnings {
			fmt.Fprintf(stderr, "%s: Warning: %s\n", name, w)
		}
		if len(n.Data) == 0 && len(n.Errors) == 0 && len(n.Warnings) == 0 {
			fmt.Fprintln(stdout, name)
		}
		for _, d := range n.Data {
			fmt.Fprintf(stdout, "%s: %s\n", name, d)
		}
	}
	code := resp.ErrorCode
	if code == 0 && failed {
		code = 1
	}
	return code
}
