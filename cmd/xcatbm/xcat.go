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
  xcatbm xcat --xcat-backend cli --xcat-cli-dir /opt/xcat/bin nodeset node01 stat`

const xcatFooter = `With --xcat-backend native the address is --xcat-host, else $XCATHOST, else
localhost:3001; the credentials are <xcat-cred-dir>/client-cred.pem (key and
certificate) and <xcat-cred-dir>/ca.pem. With --xcat-backend cli the command
<xcat-cli-dir>/<command> runs with the process's environment.`

func runXCAT(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("xcatbm xcat", flag.ContinueOnError)
	var x config.XCAT
	config.BindXCAT(fs, &x)
	// The names of earlier releases.
	config.Alias(fs, "backend", "xcat-backend")
	config.Alias(fs, "host", "xcat-host")
	config.Alias(fs, "cred-dir", "xcat-cred-dir")
	config.Alias(fs, "cli-dir", "xcat-cli-dir")
	backend, host, credDir, cliDir := &x.Backend, &x.Host, &x.CredDir, &x.CLIDir
	maxNodes := fs.Int("max-nodes", xcat.DefaultMaxNodes, "refuse, before sending, a noderange naming more than this many nodes (0: no limit)")
	fs.Usage = config.Usage(fs, xcatSynopsis, xcatFooter)
	if code, done := config.ParseCommandLine(fs, args, env.getenv, env.stdout, env.stderr); done {
		return code
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return config.UsageError(env.stderr, "xcatbm xcat", "no xCAT command given")
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
	// A noderange of plain names, ranges and groups is checked here, so a mistake in
	// it is named (xcatd only answers "Invalid nodes and/or groups"); regexes,
	// selectors and ^files are xcatd's to judge.
	if req.Noderange != "" && !strings.ContainsAny(req.Noderange, "/=~^") && xcat.ValidateNoderange(req.Noderange) == nil {
		if _, err := xcat.ExpandNoderange(ctx, req.Noderange, nil); errors.Is(err, xcat.ErrInvalidInput) {
			return config.UsageError(env.stderr, "xcatbm xcat", "%v", err)
		}
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
		defer n.Close()
		b = n
	case "cli":
		b = xcat.NewCLI(xcat.CLIConfig{Dir: *cliDir})
	default:
		fmt.Fprintf(env.stderr, "xcatbm xcat: unknown --xcat-backend %q (native or cli)\n", *backend)
		return 2
	}

	resp, err := xcat.NewClient(b, xcat.WithMaxNodes(*maxNodes)).Raw(ctx, req)
	code := printAnswer(env.stdout, env.stderr, req, resp, err)
	if resp.Unsupported() {
		// xCAT's client prints only the line above and exits 0; a script deserves
		// to know which word xcatd did not take.
		fmt.Fprintf(env.stderr, "xcatbm xcat: xcatd has no command %q (see 'xcatbm xcat --help')\n", req.Command)
		return 1
	}
	return code
}

// printAnswer prints what xcatd answered as xCAT's client does and returns the exit
// code: the OR of the errorcodes; 1 when the answer ended early (after printing what
// came before it, as the client does) or the request could not be made.
func printAnswer(stdout, stderr io.Writer, req xcat.Request, resp *xcat.Response, err error) int {
	code := xcat.PrintResponse(stdout, stderr, resp, xcat.PrintOptions{ShowSource: xcat.VerboseArgs(req.Args)})
	var ce *xcat.CommandError
	switch {
	case err == nil, errors.As(err, &ce):
		// A command error's messages were printed with the answer.
		return code
	case errors.Is(err, xcat.ErrUnavailable) && !errors.Is(err, xcat.ErrCertificateRejected) && strings.Contains(err.Error(), "prematurely"):
		fmt.Fprintln(stderr, "ERROR/WARNING: communication with the xCAT server seems to have been ended prematurely")
		return 1
	default:
		// Unreachable xcatd, refused input, an interrupted request.
		fmt.Fprintln(stderr, "Error:", err)
		return code | 1
	}
}
