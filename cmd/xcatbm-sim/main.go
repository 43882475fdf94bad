// Command xcatbm-sim is the simulated xCAT management node.
//
//	xcatbm-sim --cluster cluster.yaml --listen 127.0.0.1:3001 [--cred-dir DIR]
//
// serves xcatd's protocol until interrupted. Invoked under the name of an xCAT command
// (a symlink named rpower, nodeset, chdef, nodels, lsdef, tabdump, makehosts, rsetboot,
// rbootseq, rnetboot, updatenode, rinv or rvitals) it acts as xCAT's client: it sends
// the request, with standard input when it is piped, to the server at $XCATHOST
// (host:port, default localhost:3001) with the credentials in $XCATBM_SIM_CRED_DIR or
// $HOME/.xcat, prints the answer as xCAT's CLI does and exits with the OR of the
// errorcodes.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// clientCommands are the xCAT commands this binary answers to by name; true means
// xCAT's CLI sends the noderange element (false: everything goes in arg elements).
var clientCommands = map[string]bool{
	"rpower": true, "nodeset": true, "nodels": true, "makehosts": true, "rsetboot": true,
	"rbootseq": true, "rnetboot": true, "updatenode": true, "rinv": true, "rvitals": true,
	"chdef": false, "lsdef": false, "tabdump": false,
}

func main() {
	name := filepath.Base(os.Args[0])
	if withNR, ok := clientCommands[name]; ok {
		os.Exit(runClient(name, withNR, os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(runServer(os.Args[1:], os.Stderr))
}

func runServer(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("xcatbm-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clusterPath := fs.String("cluster", "", "cluster description (YAML or JSON); empty: 10 generated nodes")
	listen := fs.String("listen", "127.0.0.1:3001", "listen address")
	credDir := fs.String("cred-dir", "", "directory to write ca.pem and client-cred.pem (default $HOME/.xcat)")
	if err := fs.Parse(args); err != nil {
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
	if *credDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			fmt.Fprintln(stderr, "xcatbm-sim: --cred-dir is needed:", err)
			return 1
		}
		*credDir = filepath.Join(home, ".xcat")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := sim.Start(ctx, sim.Config{Addr: *listen, Cluster: cluster, CredDir: *credDir,
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

// runClient sends one command as xCAT's CLI does: the first argument not starting
// with '-' is the noderange (for commands that take one), the rest are args.
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
		addr = "localhost:3001"
	}
	dir := os.Getenv("XCATBM_SIM_CRED_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".xcat")
	}
	tlsConf, err := sim.ClientTLSConfig(dir)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	rs, err := sim.Call(context.Background(), addr, tlsConf, req)
	if err != nil && len(rs) == 0 && !isPremature(err) {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	return sim.Render(rs, err == nil, stdout, stderr)
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

func isPremature(err error) bool {
	return err != nil && strings.Contains(err.Error(), sim.ErrPremature.Error())
}
