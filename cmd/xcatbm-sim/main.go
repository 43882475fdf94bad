// Command xcatbm-sim is the simulated xCAT management node.
//
//	xcatbm-sim [--cluster cluster.yaml] [--listen 127.0.0.1:3001] [--xcat-cred-dir DIR]
//
// serves xcatd's protocol until interrupted (--help describes the cluster file). It
// writes its CA and client credentials into a new temporary directory, or into
// --xcat-cred-dir when given, never into ~/.xcat unless --xcat-cred-dir names it. Invoked under
// the name of an xCAT command (a symlink named rpower, nodeset, chdef, nodels, lsdef,
// tabdump, makehosts, rsetboot, rbootseq, rnetboot, updatenode, rinv, rvitals,
// nodestat or lsxcatd) it acts as xCAT's client: it sends the request, with standard
// input when it is piped, to the server at $XCATHOST (host:port, default
// localhost:3001) with the credentials in $XCATBM_XCAT_CRED_DIR (formerly
// $XCATBM_SIM_CRED_DIR, still read) or $HOME/.xcat, prints
// the answer as xCAT's client does and exits with the OR of the errorcodes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"xcatbm/internal/config"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// clientCommands are the xCAT commands this binary answers to by name; true means
// xCAT's CLI sends the noderange element (false: everything goes in arg elements).
var clientCommands = map[string]bool{
	"rpower": true, "nodeset": true, "nodels": true, "makehosts": true, "rsetboot": true,
	"rbootseq": true, "rnetboot": true, "updatenode": true, "rinv": true, "rvitals": true,
	"nodestat": true, "chdef": false, "lsdef": false, "tabdump": false, "lsxcatd": false,
}

func main() {
	name := filepath.Base(os.Args[0])
	if withNR, ok := clientCommands[name]; ok {
		os.Exit(runClient(name, withNR, os.Args[1:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runServer(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageHead = `usage: xcatbm-sim [flags]

A simulated xCAT management node for tests and demos: it serves xcatd's XML-over-TLS
protocol, answers as xcatd 2.19 does, and keeps its cluster in memory (nothing is
written but the credentials). Never run it where a real xcatd's clients look: point
them at it with XCATHOST and a credential directory of its own.

Flags:
`

const usageTail = `
Credentials: a CA, a server certificate and a client certificate (CN root) are made
at start; ca.pem and client-cred.pem (key and certificate) are written into a new
temporary directory, removed at exit, or into --xcat-cred-dir (created if needed;
its ca.pem and client-cred.pem are replaced, so never give it a real ~/.xcat). The
directory is printed at start; xcatbm's --xcat-cred-dir ($XCATBM_XCAT_CRED_DIR) and
xCAT's clients (HOME/.xcat) take it. --cred-dir and $XCATBM_SIM_CRED_DIR are the
deprecated names of earlier releases, still accepted in this one.

Cluster file (--cluster, YAML, or JSON when the name ends in .json):

  site:                       # site table keys, e.g.
    master: 10.0.0.1
    domain: cluster
  passwd:                     # passwd table: key -> username, password
    ipmi: {username: ADMIN, password: admin}
  osimages:                   # osimage name -> attributes
    rhels7.5-x86_64-install-compute:
      {profile: compute, imagetype: linux, provmethod: install, osname: Linux,
       osvers: rhels7.5, osarch: x86_64}
  timeline: {poweringOn: 1s, installing: 5s, postbooting: 2s}   # install phases
  latency: {fixed: 20ms, perNode: 2ms}   # added to every answer, per node of its noderange
  nodes:
    - name: node01            # letters, digits, '.', '_', '-'
      groups: [all, compute]  # nodelist.groups
      power: "off"            # initial power: on or off (default off)
      attrs:                  # lsdef attribute names: mgt, bmc, bmcusername,
                              # bmcpassword, mac, ip, cpucount, memory, disksize,
                              # installnic, primarynic, netboot, servicenode,
                              # xcatmaster, postscripts, postbootscripts, status,
                              # currstate, os, arch, provmethod, profile, ...
        {mgt: ipmi, bmc: 10.1.0.1, mac: "52:54:00:00:00:01", ip: 10.0.0.11,
         cpucount: "32", memory: 131072MB, disksize: sda:480GB}
      fault:                  # optional: install: fail|hang, bmcTimeout: true,
        {install: fail}       # bmcTimeoutCount: N (the first N BMC calls time out)

Without --cluster: 10 IPMI nodes node01..node10 in groups all and compute, with
BMC, MAC, IP, CPU, memory and disk, managed by mn1.
`

// noEnv is the simulator's environment for its flags: they take no XCATBM_ variables.
func noEnv(string) (string, bool) { return "", false }

// runServer serves until ctx ends.
func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xcatbm-sim", flag.ContinueOnError)
	clusterPath := fs.String("cluster", "", "cluster description, YAML or JSON (see below); empty: 10 generated nodes")
	listen := fs.String("listen", "127.0.0.1:3001", "listen address")
	credDir := fs.String("xcat-cred-dir", "", "directory to write ca.pem and client-cred.pem into (default: a new temporary directory)")
	config.Alias(fs, "cred-dir", "xcat-cred-dir")
	hostname := fs.String("hostname", "mn1", "the management node's name, sent as xcatdsource")
	shuffle := fs.Bool("shuffle", false, "answer rpower's nodes in a random (completion) order and nodels' tables in a random order, as xcatd may")
	installDir := fs.String("install-dir", "", "xCAT's install directory (site.installdir) the nodes fetch their postscripts' files from,\nthe worker's --install-dir; empty: a node given a config drive fails its install")
	closeKept := fs.String("close-kept", "", "close kept connections as xcatd does: \"xcatd\" (0.12s..0.19s after serverdone) or MIN..MAX (e.g. 0s..5ms); empty: keep them")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), usageTail)
	}
	if code, done := config.ParseCommandLine(fs, args, noEnv, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 0 {
		return config.UsageError(stderr, "xcatbm-sim", "unexpected argument %q", fs.Arg(0))
	}
	kept, err := parseKeptClose(*closeKept)
	if err != nil {
		fmt.Fprintln(stderr, "xcatbm-sim: --close-kept:", err)
		return 2
	}
	var cluster *sim.Cluster
	if *clusterPath != "" {
		c, err := sim.LoadCluster(*clusterPath)
		if err != nil {
			fmt.Fprintln(stderr, "xcatbm-sim:", err)
			return 1
		}
		cluster = c
	} else {
		cluster = sim.GenerateCluster("node", 10, "mn1")
	}
	srv, err := sim.Start(ctx, sim.Config{Addr: *listen, Cluster: cluster, CredDir: *credDir, InstallDir: *installDir,
		Hostname: *hostname, Shuffle: *shuffle, CloseKept: kept,
		Logf: func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(stderr, "xcatbm-sim:", err)
		return 1
	}
	fmt.Fprintf(stderr, "xcatbm-sim: serving %d nodes on %s; credentials in %s\n", len(cluster.Nodes), srv.Addr(), srv.CredDir())
	<-ctx.Done()
	_ = srv.Close()
	return 0
}

// parseKeptClose reads --close-kept: "", "xcatd" or "MIN..MAX".
func parseKeptClose(v string) (*sim.KeptClose, error) {
	switch v {
	case "":
		return nil, nil
	case "xcatd":
		k := sim.XcatdKeptClose
		return &k, nil
	}
	lo, hi, ok := strings.Cut(v, "..")
	if !ok {
		return nil, fmt.Errorf("%q: want xcatd or MIN..MAX", v)
	}
	min, err := time.ParseDuration(lo)
	if err != nil {
		return nil, err
	}
	max, err := time.ParseDuration(hi)
	if err != nil {
		return nil, err
	}
	if min < 0 || max < min {
		return nil, fmt.Errorf("%q: want 0 <= MIN <= MAX", v)
	}
	return &sim.KeptClose{Min: min, Max: max}, nil
}

// runClient sends one command as xCAT's CLI does: the first argument not starting
// with '-' is the noderange (for commands that take one), the rest are args. It
// prints the answer as xCAT's client does.
func runClient(command string, withNR bool, args []string, stdout, stderr io.Writer) int {
	req := xcat.Request{Command: command, Env: map[string]string{}}
	for _, a := range args {
		if withNR && req.Noderange == "" && !strings.HasPrefix(a, "-") {
			req.Noderange = a
			continue
		}
		req.Args = append(req.Args, a)
	}
	in, err := pipedStdin(os.Stdin)
	if err != nil {
		fmt.Fprintf(stderr, "Error: reading standard input: %v\n", err)
		return 1
	}
	req.Stdin = in
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "XCAT_") {
			req.Env[k] = v
		}
	}
	addr := os.Getenv("XCATHOST")
	if addr == "" {
		addr = xcat.DefaultAddr
	}
	dir := os.Getenv(config.EnvName("xcat-cred-dir"))
	if dir == "" {
		dir = os.Getenv("XCATBM_SIM_CRED_DIR") // the name of earlier releases
	}
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".xcat")
	}
	n, err := xcat.NewNative(xcat.NativeConfig{Addr: addr, CredDir: dir})
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	resp, err := n.Do(context.Background(), req)
	code := xcat.PrintResponse(stdout, stderr, resp, xcat.PrintOptions{ShowSource: xcat.VerboseArgs(req.Args)})
	var ce *xcat.CommandError
	switch {
	case err == nil, errors.As(err, &ce):
		return code
	case errors.Is(err, xcat.ErrUnavailable) && strings.Contains(err.Error(), "prematurely") && !errors.Is(err, xcat.ErrCertificateRejected):
		fmt.Fprintln(stderr, "ERROR/WARNING: communication with the xCAT server seems to have been ended prematurely")
		return 1
	default:
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
}

// pipedStdin reads standard input when it is a pipe or a file, as xCAT's clients
// send piped input along (xcatclient reads a pipe, xcatDBcmds anything but a
// terminal); a terminal or /dev/null gives "".
func pipedStdin(f *os.File) (string, error) {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 && !fi.Mode().IsRegular() {
		return "", nil
	}
	b, err := io.ReadAll(io.LimitReader(f, xcat.MaxStdinBytes+1))
	if err != nil {
		return "", err
	}
	return string(b), nil
}
