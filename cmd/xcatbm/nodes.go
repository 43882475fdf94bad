package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lib/pq"

	"xcatbm/internal/config"
	"xcatbm/publisher"
	"xcatbm/worker/nova"
	"xcatbm/worker/store"
	"xcatbm/xcat"
)

func init() {
	register(subcommand{name: "nodes", summary: "list registered bare metal nodes and where each stands in nova and placement", run: runNodes})
}

// stateUnregistered is the state shown for a node named on the command line that
// is not registered.
const stateUnregistered = "unregistered"

var nodesPage = manPage{
	name: "xcatbm nodes - list registered bare metal nodes and their state in nova and placement",
	synopsis: "xcatbm nodes [-h | --help]\n" +
		"xcatbm nodes [<noderange>] [-s <compute_host>] [--database-url <url>] [--output text|json]",
	description: `xcatbm nodes lists the nodes registered with opsaddbmnode and, for each, where
its registration stands in nova and placement, as the workers' nova integration last
found it. It reads the database the workers share (the workers' --database-url,
XCATBM_DATABASE_URL), so it answers even when no worker runs; it changes nothing.

STATE is one of:
  ready         the node's compute node and its resource provider with inventory
                exist: nova can schedule to it
  pending       something is missing and the worker keeps trying (not synced yet,
                nova-conductor or placement not answering); DETAIL says what
  failed        nova or placement refused (a provider name taken by another
                provider, a request placement rejects); DETAIL says why; fix it and
                run opsaddbmnode again
  unregistered  named in <noderange> but not registered

<noderange> takes node names and ranges (node[01-20],node31); xCAT groups are
not expanded. Without it every registered node is listed, of <compute_host> when
-s is given. SINCE is when the state last changed.`,
	returnValue: `0  every node listed is ready (or none is registered)
1  a node listed failed or is not registered, or the database could not be read
2  bad usage: a malformed argument
3  nothing failed, but some nodes are pending`,
	examples: `1. Which nodes of compute host xcat-mn1 nova can schedule to:
     xcatbm nodes -s xcat-mn1

2. Wait until node01 to node20 are all ready:
     until xcatbm nodes 'node[01-20]' >/dev/null; do sleep 10; done

3. The states for scripts:
     xcatbm nodes --output json`,
}

// nodeRow is one line of the listing (and one object of its JSON form).
type nodeRow struct {
	Node          string    `json:"node"`
	ComputeHost   string    `json:"compute_host"`
	ResourceClass string    `json:"resource_class"`
	Instance      string    `json:"instance_uuid"`
	State         string    `json:"state"`
	Detail        string    `json:"detail"`
	ComputeNode   string    `json:"compute_node"`
	Since         time.Time `json:"since,omitzero"`
}

func runNodes(ctx context.Context, env *environment, args []string) int {
	const cmd = "xcatbm nodes"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var dbURL config.Secret
	fs.Var(&dbURL, "database-url", "PostgreSQL `url` of the workers' database\n(default postgres://xcatbm@127.0.0.1:5432/xcatbm?sslmode=disable)")
	host := fs.String("s", "", "list only the nodes of this compute `host`")
	output := fs.String("output", "text", "output format: text or json")
	fs.Usage = nodesPage.usage(fs)
	pos, code, ok := parseArgs(fs, args, env)
	if !ok {
		return code
	}
	if *output != "text" && *output != "json" {
		return usageErr(env, cmd, "--output %q: want text or json", *output)
	}
	var names []string
	switch len(pos) {
	case 0:
	case 1:
		var err error
		if names, err = xcat.ExpandNoderange(ctx, pos[0], nil); err != nil {
			return usageErr(env, cmd, "%v", err)
		}
	default:
		return usageErr(env, cmd, "want at most one noderange, got %d arguments", len(pos))
	}
	u := dbURL.Reveal()
	if u == "" {
		u = "postgres://xcatbm@127.0.0.1:5432/xcatbm?sslmode=disable"
	}
	rows, err := nodeRows(ctx, u, *host, names)
	if err != nil {
		fmt.Fprintf(env.stderr, "%s: %v\n", cmd, err)
		return publisher.ExitFailed
	}
	if *output == "json" {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rows)
	} else {
		err = writeNodeRows(env.stdout, rows)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "%s: %v\n", cmd, err)
		return publisher.ExitFailed
	}
	return nodesExitCode(rows)
}

// nodeRows reads the registered nodes (of host when not empty; those named when
// names is not empty, with the unregistered ones among them) from the database.
func nodeRows(ctx context.Context, dbURL, host string, names []string) ([]nodeRow, error) {
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", config.RedactURL(dbURL), err)
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	statuses, err := store.New(db).NodeStatuses(qctx, host, names)
	var pqe *pq.Error
	switch {
	case errors.As(err, &pqe) && pqe.Code == "42P01": // undefined_table
		return nil, fmt.Errorf("database %s has no xcatbm tables, or not this version's (start this version's worker once: it applies the migrations): %w",
			config.RedactURL(dbURL), err)
	case err != nil:
		return nil, fmt.Errorf("database %s: %w", config.RedactURL(dbURL), err)
	}
	var rows []nodeRow
	seen := map[string]bool{}
	for _, st := range statuses {
		seen[st.Node.Name] = true
		r := st.Registration
		rows = append(rows, nodeRow{Node: st.Node.Name, ComputeHost: st.Node.ComputeHost, ResourceClass: nova.ResourceClass(st.Node.ResourceClass),
			Instance: st.Node.InstanceUUID, State: r.State, Detail: r.Detail, ComputeNode: r.ComputeNode, Since: r.UpdatedAt})
	}
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			detail := "not registered (opsaddbmnode registers it)"
			if host != "" {
				detail = "not registered for compute host " + host
			}
			rows = append(rows, nodeRow{Node: n, ComputeHost: host, State: stateUnregistered, Detail: detail})
		}
	}
	slices.SortFunc(rows, func(a, b nodeRow) int { return strings.Compare(a.Node, b.Node) })
	if rows == nil {
		rows = []nodeRow{}
	}
	return rows, nil
}

// writeNodeRows prints the listing as a table and a count per state.
func writeNodeRows(w io.Writer, rows []nodeRow) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no registered nodes")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCOMPUTE HOST\tRESOURCE CLASS\tINSTANCE\tSTATE\tSINCE\tDETAIL")
	count := map[string]int{}
	for _, r := range rows {
		count[r.State]++
		since := "-"
		if !r.Since.IsZero() {
			since = r.Since.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Node, orDash(r.ComputeHost), orDash(r.ResourceClass), orDash(r.Instance), r.State, since, r.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var parts []string
	for _, s := range []string{store.RegistrationReady, store.RegistrationPending, store.RegistrationFailed, stateUnregistered} {
		if count[s] > 0 || s == store.RegistrationReady {
			parts = append(parts, fmt.Sprintf("%d %s", count[s], s))
		}
	}
	noun := "nodes"
	if len(rows) == 1 {
		noun = "node"
	}
	_, err := fmt.Fprintf(w, "%d %s: %s\n", len(rows), noun, strings.Join(parts, ", "))
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// nodesExitCode is 1 when a node failed or is not registered, else 3 when one is
// pending, else 0.
func nodesExitCode(rows []nodeRow) int {
	code := publisher.ExitOK
	for _, r := range rows {
		switch r.State {
		case store.RegistrationFailed, stateUnregistered:
			return publisher.ExitFailed
		case store.RegistrationPending:
			code = publisher.ExitPending
		}
	}
	return code
}
