package xcat

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CLIConfig says where the xCAT-client commands are and what environment they run in.
type CLIConfig struct {
	// Dir is the directory holding the xCAT-client commands, e.g. /opt/xcat/bin.
	// Commands in /opt/xcat/sbin (tabdump, nodeset, makehosts) are looked up in a sibling
	// "sbin" directory when they are not in Dir.
	Dir string
	// Env is the commands' whole environment (XCATHOST, HOME for ~/.xcat, ...); the
	// process's environment when nil. A request's XCAT_* entries are added to it.
	Env []string
}

// CLI is the Backend that runs xCAT-client commands (rpower, nodeset, lsdef, ...) with
// argv, never through a shell, and parses what they print back into a Response the way
// xCAT's CLI printed it. Safe for concurrent use.
type CLI struct {
	dir string
	env []string
}

// NewCLI returns a CLI backend. It does not check that the commands exist; a missing
// command shows at Do.
func NewCLI(cfg CLIConfig) *CLI {
	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	return &CLI{dir: cfg.Dir, env: append([]string(nil), env...)}
}

// Do runs the request's command as `<Dir>/<command> [noderange] args...`, with the
// request's Stdin piped to it when there is one, and parses its output. The error
// kinds are those of Backend: ErrUnavailable when the command reports that its
// connection to xcatd ended early or could not be made, a *CommandError with the
// Response for top-level errors or a non-zero exit without any node error, ctx's
// error when ctx ends first.
func (c *CLI) Do(ctx context.Context, req Request) (*Response, error) {
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	path := c.lookup(req.Command)
	var argv []string
	if req.Noderange != "" {
		argv = append(argv, req.Noderange)
	}
	argv = append(argv, req.Args...)
	cmd := exec.CommandContext(ctx, path, argv...)
	cmd.Env = append([]string(nil), c.env...)
	for k, v := range req.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = "/"
	if req.Stdin != "" {
		// A pipe, as the CLI's own callers give it: xcatclient reads a piped stdin.
		cmd.Stdin = strings.NewReader(req.Stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: %w", req.Command, ctx.Err())
	}
	rc := 0
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() < 0 {
			return nil, fmt.Errorf("%s: run %s: %w", req.Command, path, err)
		}
		rc = exit.ExitCode()
	}
	resp, premature := parseCLIOutput(stdout.Bytes(), stderr.Bytes(), rc)
	if premature {
		return resp, fmt.Errorf("%s: %s: %w", req.Command, errPremature, ErrUnavailable)
	}
	if unreachable(resp.Errors) {
		return resp, fmt.Errorf("%s: %s: %w", req.Command, strings.Join(resp.Errors, "; "), ErrUnavailable)
	}
	return resp, commandError(req, resp)
}

func (c *CLI) lookup(command string) string {
	p := filepath.Join(c.dir, command)
	if _, err := os.Stat(p); err == nil || c.dir == "" {
		return p
	}
	sbin := filepath.Join(filepath.Dir(c.dir), "sbin", command)
	if _, err := os.Stat(sbin); err == nil {
		return sbin
	}
	return p
}

// unreachable reports whether the CLI's top-level errors say it could not reach xcatd
// at all (xCAT::Client: "Connection failure: ..." / "Unable to open socket connection
// to xcatd").
func unreachable(errs []string) bool {
	for _, e := range errs {
		if strings.Contains(e, "Connection failure") || strings.Contains(e, "Unable to open socket connection to xcatd") {
			return true
		}
	}
	return false
}

// parseCLIOutput turns what an xCAT-client command printed into a Response:
//
//   - stdout "node: text" (split at the first ": ", node a valid node name) is node
//     data; any other stdout line is top-level data.
//   - stderr "node: Error: msg" / "node: Warning: msg" are node errors and warnings,
//     "Error: msg" / "Warning: msg" top-level ones; xcatd's "[source]: " prefixes are
//     kept in the message.
//   - stderr "ERROR/WARNING: communication ... ended prematurely" sets premature.
//   - other stderr lines are top-level errors when the exit code is not zero, warnings
//     otherwise.
//
// Nodes that got an error are given errorcode 1, since the CLI does not print a node's
// own code; the Response's ErrorCode is the exit code.
func parseCLIOutput(stdout, stderr []byte, rc int) (resp *Response, premature bool) {
	resp = &Response{Nodes: map[string]*NodeOutput{}, ErrorCode: rc}
	for _, line := range splitLines(stdout) {
		if node, text, ok := nodePrefix(line); ok {
			out := resp.Node(node)
			out.Data = append(out.Data, text)
			continue
		}
		resp.Data = append(resp.Data, line)
	}
	for _, line := range splitLines(stderr) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.Contains(line, errPremature) {
			premature = true
			continue
		}
		if msg, ok := strings.CutPrefix(line, "Error: "); ok {
			resp.Errors = append(resp.Errors, msg)
			continue
		}
		if msg, ok := strings.CutPrefix(line, "Warning: "); ok {
			resp.Warnings = append(resp.Warnings, msg)
			continue
		}
		if node, text, ok := nodePrefix(line); ok {
			text = skipSource(text)
			if msg, ok := strings.CutPrefix(text, "Error: "); ok {
				out := resp.Node(node)
				out.Errors = append(out.Errors, msg)
				out.ErrorCode |= 1
				continue
			}
			if msg, ok := strings.CutPrefix(text, "Warning: "); ok {
				out := resp.Node(node)
				out.Warnings = append(out.Warnings, msg)
				continue
			}
		}
		if rc != 0 {
			resp.Errors = append(resp.Errors, line)
		} else {
			resp.Warnings = append(resp.Warnings, line)
		}
	}
	if rc != 0 && len(resp.Errors) == 0 && !premature && !anyNodeError(resp) {
		resp.Errors = append(resp.Errors, fmt.Sprintf("exited with status %d", rc))
	}
	return resp, premature
}

func anyNodeError(resp *Response) bool {
	for _, n := range resp.Nodes {
		if len(n.Errors) > 0 {
			return true
		}
	}
	return false
}

// skipSource drops a "[server]: " prefix that xCAT adds for hierarchical answers.
func skipSource(text string) string {
	if strings.HasPrefix(text, "[") {
		if i := strings.Index(text, "]: "); i > 0 {
			return text[i+3:]
		}
	}
	return text
}

// nodePrefix splits "node: text" at the first ": " when the part before is a plausible
// node name (letters, digits, '-', '_', '.'; not starting with '-'). "Object name: x"
// and "    attr=value: x" are not node lines.
func nodePrefix(line string) (node, text string, ok bool) {
	i := strings.Index(line, ": ")
	if i <= 0 {
		// "node1:" with an empty value, as nodels prints it.
		if n, found := strings.CutSuffix(line, ":"); found && isNodeName(n) {
			return n, "", true
		}
		return "", "", false
	}
	node, text = line[:i], line[i+2:]
	if !isNodeName(node) {
		return "", "", false
	}
	return node, text, true
}

func isNodeName(s string) bool {
	if s == "" || s[0] == '-' || s[0] == '.' || len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !isNameChar(c) {
			return false
		}
	}
	return true
}

// splitLines splits output into lines without their line ends, dropping one final
// empty line.
func splitLines(b []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		lines = append(lines, strings.TrimSuffix(sc.Text(), "\r"))
	}
	return lines
}
