package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"xcatbm/internal/config"
	"xcatbm/postscripts"
	"xcatbm/xcat"
)

// setupOptions says what setup checks and whether it may change anything.
type setupOptions struct {
	// dir is where the postscripts must be installed.
	dir string
	// check, when true, changes nothing: every item is only reported.
	check bool
	// mgmtNames are the names and addresses this management node is known by in
	// noderes.xcatmaster and noderes.servicenode; site.master is added to them.
	mgmtNames []string
}

// setupItem is one row of setup's report.
type setupItem struct {
	What   string
	Ready  bool
	Detail string
}

// The value of site.sshbetweennodes that keeps tenant nodes from ssh-ing to each other
// as root.
const wantSSHBetweenNodes = "NOGROUPS"

// prepareSite checks, and unless opts.check prepares, the xCAT side for OpenStack
// tenants: site.sshbetweennodes, the postscripts, the osimages and the nodes this
// management node owns. It returns one item per check. An error is returned only when
// xCAT could not be asked at all; a check that fails is an item that is not ready.
func prepareSite(ctx context.Context, c xcat.Client, opts setupOptions) ([]setupItem, error) {
	var items []setupItem

	site, err := siteAttrs(ctx, c)
	if err != nil {
		return nil, err
	}
	items = append(items, sshBetweenNodes(ctx, c, site, opts.check))
	items = append(items, postscriptsItem(opts.dir))

	images, err := c.LsDefOSImages(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("lsdef -t osimage: %w", err)
	}
	items = append(items, osImagesItem(images))

	nodes, err := c.LsDefNodes(ctx, "", nil, "xcatmaster", "servicenode", "mgt", "mac")
	if err != nil {
		return nil, fmt.Errorf("lsdef -t node: %w", err)
	}
	names := append([]string{site["master"]}, opts.mgmtNames...)
	items = append(items, nodesItem(nodes, names))
	return items, nil
}

// siteAttrs reads the site table as key to value.
func siteAttrs(ctx context.Context, c xcat.Client) (map[string]string, error) {
	rows, err := c.TabDump(ctx, "site")
	if err != nil {
		return nil, fmt.Errorf("tabdump site: %w", err)
	}
	site := map[string]string{}
	for _, r := range rows {
		site[r["key"]] = r["value"]
	}
	return site, nil
}

func sshBetweenNodes(ctx context.Context, c xcat.Client, site map[string]string, check bool) setupItem {
	it := setupItem{What: "site.sshbetweennodes"}
	have, set := site["sshbetweennodes"]
	if have == wantSSHBetweenNodes {
		it.Ready, it.Detail = true, wantSSHBetweenNodes
		return it
	}
	was := fmt.Sprintf("%q", have)
	if !set {
		was = "unset (xCAT's default ALLGROUPS)"
	}
	if check {
		it.Detail = fmt.Sprintf("is %s, want %s (run xcatbm setup)", was, wantSSHBetweenNodes)
		return it
	}
	if err := c.ChDefSite(ctx, xcat.Attrs{"sshbetweennodes": wantSSHBetweenNodes}); err != nil {
		it.Detail = fmt.Sprintf("is %s; setting %s failed: %v", was, wantSSHBetweenNodes, err)
		return it
	}
	// Read it back: chdef's success message does not prove the table changed.
	after, err := siteAttrs(ctx, c)
	if err != nil || after["sshbetweennodes"] != wantSSHBetweenNodes {
		it.Detail = fmt.Sprintf("set to %s, but reads back as %q (%v)", wantSSHBetweenNodes, after["sshbetweennodes"], err)
		return it
	}
	it.Ready, it.Detail = true, fmt.Sprintf("set to %s (was %s)", wantSSHBetweenNodes, was)
	return it
}

func postscriptsItem(dir string) setupItem {
	it := setupItem{What: "postscripts"}
	changes, err := postscripts.Diff(dir)
	if err != nil {
		it.Detail = err.Error()
		return it
	}
	var missing, outdated []string
	for _, ch := range changes {
		switch ch.Action {
		case postscripts.Created:
			missing = append(missing, ch.Path)
		case postscripts.Updated:
			outdated = append(outdated, ch.Path)
		}
	}
	switch {
	case len(missing)+len(outdated) == 0:
		it.Ready, it.Detail = true, "installed in "+dir
	default:
		var parts []string
		if len(missing) > 0 {
			parts = append(parts, "missing "+strings.Join(missing, ", "))
		}
		if len(outdated) > 0 {
			parts = append(parts, "outdated "+strings.Join(outdated, ", "))
		}
		it.Detail = strings.Join(parts, "; ") + fmt.Sprintf(" (run xcatbm install-postscripts --dir %s)", dir)
	}
	return it
}

func osImagesItem(images map[string]xcat.Attrs) setupItem {
	it := setupItem{What: "osimages"}
	names := sortedKeys(images)
	if len(names) == 0 {
		it.Detail = "none defined (copycds, then register them with opsaddimage)"
		return it
	}
	it.Ready, it.Detail = true, fmt.Sprintf("%d: %s", len(names), strings.Join(names, ", "))
	return it
}

// nodesItem reports the nodes this management node owns: those whose xcatmaster and
// servicenode are empty (managed by the management node directly) or name it.
func nodesItem(nodes map[string]xcat.Attrs, mgmtNames []string) setupItem {
	it := setupItem{What: "nodes"}
	mine := map[string]bool{"": true}
	for _, n := range mgmtNames {
		if n != "" {
			mine[n] = true
		}
	}
	ours := func(list string) bool {
		for _, s := range strings.Split(list, ",") {
			if mine[strings.TrimSpace(s)] {
				return true
			}
		}
		return false
	}
	var owned, noMAC, noMgt []string
	for _, name := range sortedKeys(nodes) {
		a := nodes[name]
		if !ours(a["xcatmaster"]) || !ours(a["servicenode"]) {
			continue
		}
		owned = append(owned, name)
		if a["mac"] == "" {
			noMAC = append(noMAC, name)
		}
		if a["mgt"] == "" {
			noMgt = append(noMgt, name)
		}
	}
	if len(owned) == 0 {
		it.Detail = fmt.Sprintf("none of %d owned by this management node", len(nodes))
		return it
	}
	it.Detail = fmt.Sprintf("%d owned: %s", len(owned), strings.Join(owned, ","))
	if len(noMAC) > 0 {
		it.Detail += fmt.Sprintf("; without mac: %s", strings.Join(noMAC, ","))
	}
	if len(noMgt) > 0 {
		it.Detail += fmt.Sprintf("; without mgt: %s", strings.Join(noMgt, ","))
	}
	it.Ready = len(noMAC) == 0 && len(noMgt) == 0
	return it
}

func sortedKeys(m map[string]xcat.Attrs) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// printSetup writes the report as one table and reports whether every item is ready.
func printSetup(w io.Writer, items []setupItem) bool {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ITEM\tSTATE\tDETAIL")
	all := true
	for _, it := range items {
		state := "ready"
		if !it.Ready {
			state, all = "NOT READY", false
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.What, state, it.Detail)
	}
	_ = tw.Flush()
	return all
}

func init() {
	register(subcommand{
		name:    "setup",
		summary: "check and prepare xCAT for OpenStack tenants (site, postscripts, osimages, nodes)",
		run:     runSetup,
	})
}

func runSetup(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("xcatbm setup", flag.ContinueOnError)
	check := fs.Bool("check", false, "change nothing: only report what is ready and what is not")
	dir := fs.String("dir", postscripts.DefaultDir, "directory the postscripts must be installed in")
	var x config.XCAT
	config.BindXCAT(fs, &x)
	config.Alias(fs, "xcatd", "xcat-host") // the name of earlier releases
	addr := &x.Host
	cred := fs.String("xcat-cred", "", "client key and certificate, PEM (default <xcat-cred-dir>/client-cred.pem)")
	ca := fs.String("xcat-ca", "", "CA certificate of xcatd (default <xcat-cred-dir>/ca.pem)")
	config.Deprecate(fs, "xcat-cred", "--xcat-cred-dir")
	config.Deprecate(fs, "xcat-ca", "--xcat-cred-dir")
	mgmtNode := fs.String("mgmt-node", "", "name of this management node, as the worker's --mgmt-node: nodes whose\nnoderes.xcatmaster/servicenode name it are owned here")
	mgmt := fs.String("mgmt-names", "", "comma-separated further names and addresses this management node has in\nnoderes.xcatmaster/servicenode, besides site.master and --mgmt-node")
	fs.Usage = config.Usage(fs, "usage: xcatbm setup [--check] [flags]\n\n"+
		"Sets site.sshbetweennodes=NOGROUPS, checks that the postscripts are installed, lists\n"+
		"the osimages and the nodes this management node owns, and prints one table of what\n"+
		"is ready. Exits 0 when everything is ready, 1 otherwise.", "")
	if code, done := config.ParseCommandLine(fs, args, env.getenv, env.stdout, env.stderr); done {
		return code
	}
	if fs.NArg() != 0 {
		return config.UsageError(env.stderr, "xcatbm setup", "unexpected argument %q", fs.Arg(0))
	}
	if *addr == "" {
		*addr, _ = env.getenv("XCATHOST")
	}
	var backend xcat.Backend
	switch x.Backend {
	case "native":
		n, err := xcat.NewNative(xcat.NativeConfig{Addr: *addr, CredDir: x.CredDir, CredFile: *cred, CAFile: *ca})
		if err != nil {
			fmt.Fprintln(env.stderr, "xcatbm setup:", err)
			return 1
		}
		defer n.Close()
		backend = n
	case "cli":
		backend = xcat.NewCLI(xcat.CLIConfig{Dir: x.CLIDir})
	default:
		return config.UsageError(env.stderr, "xcatbm setup", "--xcat-backend %q: want native or cli", x.Backend)
	}
	opts := setupOptions{dir: *dir, check: *check}
	for _, n := range strings.Split(*mgmtNode+","+*mgmt, ",") {
		if n = strings.TrimSpace(n); n != "" {
			opts.mgmtNames = append(opts.mgmtNames, n)
		}
	}
	items, err := prepareSite(ctx, xcat.NewClient(backend), opts)
	if err != nil {
		fmt.Fprintln(env.stderr, "xcatbm setup:", err)
		return 1
	}
	if !printSetup(env.stdout, items) {
		return 1
	}
	return 0
}
