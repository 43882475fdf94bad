package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"xcatbm/internal/config"
	"xcatbm/xcat"
)

func init() {
	register(subcommand{name: "xcat", summary: "send one xCAT command to xcatd and print its answer as xCAT's CLI does", run: runXCAT})
}

// noNoderange lists the xCAT commands whose client sends every argument as an argument
// and no noderange (xcatclientnnr and xcatDBcmds in xCAT-client).
var noNoderange = map[string]bool{
	"lsdef": true, "chdef": true, "mkdef": true, "rmdef": true,
	"tabdump": true, "tabch": true, "tabprune": true, "tabrestore": true, "gettab": true,
	"lsxcatd": true,
}

const xcatSynopsis = `usage: xcatbm xcat [flags] <command> [noderange] [arguments...]

Sends one request to xcatd and prints the answer the way xCAT's own CLI does: node data
as "node: text" on stdout, errors and warnings on stderr ("Error: ...",
"node: Error: ..."), and exits with the OR of every errorcode. No xCAT-client is needed
with the native backend.

The first argument after the command that does not start with '-' is the noderange,
except for commands that take none (lsdef, chdef, mkdef, rmdef, tabdump, ...), whose
arguments are all sent as arguments, as xCAT's clients do.

Examples:
  xcatbm xcat rpower node[01-04] stat
  xcatbm xcat nodels compute nodelist.status
  xcatbm xcat lsdef -t osimage -l
  xcatbm xcat --backend cli --cli-dir /opt/xcat/bin nodeset node01 stat`

const xcatFooter = `With --backend native the address is --host, else $XCATHOST, else localhost:3001; the
credentials are <cred-dir>/client-cred.pem (key and certificate) and <cred-dir>/ca.pem.
With --backend cli the command <cli-dir>/<command> runs with the process's environment.`

func runXCAT(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("xcatbm xcat", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	backend := fs.String("backend", "native", "how to reach xCAT: native (xcatd's XML over TLS) or cli (run xCAT-client commands)")
	host := fs.String("host", "", "xcatd host:port for the native backend (default $XCATHOST, else localhost:3001)")
	credDir := fs.String("cred-dir", "", "directory holding client-cred.pem and ca.pem (default ~/.xcat)")
	cliDir := fs.String("cli-dir", "/opt/xcat/bin", "directory holding the xCAT-client commands for the cli backend")
	fs.Usage = config.Usage(fs, xcatSynopsis, xcatFooter)
	if err := config.Parse(fs, args, env.getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(env.stderr, "xcatbm xcat:", err)
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(env.stderr, "xcatbm xcat: no command given (see --help)")
		return 2
	}
	req := xcat.Request{Command: rest[0]}
	for i, a := range rest[1:] {
		if req.Noderange == "" && !noNoderange[req.Command] && !strings.HasPrefix(a, "-") {
			req.Noderange = a
			req.Args = append(req.Args, rest[2+i:]...)
			break
		}
		req.Args = append(req.Args, a)
	}

	var b xcat.Backend
	switch *backend {
	case "native":
		addr := *host
		if addr == "" {
			addr, _ = env.getenv("XCATHOST")
		}
		n, err := xcat.NewNative(xcat.NativeConfig{Addr: addr, CredDir: *credDir})
		if err != nil {
			fmt.Fprintln(env.stderr, "xcatbm xcat:", err)
			return 1
		}
		b = n
	case "cli":
		b = xcat.NewCLI(xcat.CLIConfig{Dir: *cliDir})
	default:
		fmt.Fprintf(env.stderr, "xcatbm xcat: unknown backend %q (native or cli)\n", *backend)
		return 2
	}

	resp, err := xcat.NewClient(b).Raw(ctx, req)
	code := 0
	if resp != nil {
		code = printResponse(env.stdout, env.stderr, resp)
	}
	var ce *xcat.CommandError
	if err != nil && !errors.As(err, &ce) {
		// The command error's messages were printed with the response; anything else
		// (unreachable xcatd, an answer cut short, refused input) is printed here.
		if errors.Is(err, xcat.ErrUnavailable) && strings.Contains(err.Error(), "prematurely") {
			fmt.Fprintln(env.stderr, "ERROR/WARNING: communication with the xCAT server seems to have been ended prematurely")
		} else {
			fmt.Fprintln(env.stderr, "Error:", err)
		}
		code |= 1
	}
	return code
}

// printResponse writes resp as xCAT's CLI prints it and returns the exit code: the
// response's errorcode, or 1 when it holds errors without a code.
func printResponse(stdout, stderr io.Writer, resp *xcat.Response) int {
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
