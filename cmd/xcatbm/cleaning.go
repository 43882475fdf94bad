package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"xcatbm/internal/config"
	"xcatbm/publisher"
	"xcatbm/worker"
	"xcatbm/worker/store"
	"xcatbm/xcat"
)

func init() {
	register(subcommand{name: "cleaning", summary: "list nodes held out of scheduling for cleaning, retry or clear them", run: runCleaning})
}

var cleaningPage = manPage{
	name: "xcatbm cleaning - nodes held out of nova's scheduling between tenants",
	synopsis: "xcatbm cleaning [-h | --help]\n" +
		"xcatbm cleaning [list] [<noderange>] [-s <compute_host>] [--database-url <url>]\n" +
		"xcatbm cleaning retry <noderange> [--database-url <url>]\n" +
		"xcatbm cleaning clear <noderange> [--database-url <url>]",
	description: `After a server is deleted, the worker erases its node's disks (xcatbm-worker
--clean-mode) before nova may place the next server there: the node is in
maintenance, its placement inventory reserved, until the cleaning is done. A
cleaning that failed or ran past its deadline leaves the node in maintenance with
the reason.

list    shows the nodes in maintenance: "cleaning" while a cleaning runs, else why
        the node is held.
retry   starts the cleaning of held nodes again (their worker takes it up).
clear   makes held nodes schedulable without cleaning them: only when you know
        their disks hold nothing of the last tenant.

The command reads and writes the database the workers share (their --database-url,
XCATBM_DATABASE_URL); a node whose cleaning runs is never retried or cleared.`,
	returnValue: `0  done; for list, no node is held for a failure
1  a node is held for a failure (list), a node named could not be retried or
   cleared, or the database could not be read
2  bad usage`,
	examples: `1. What is held, and why:
     xcatbm cleaning
2. Clean node07 again after replacing its disk:
     xcatbm cleaning retry node07`,
}

func runCleaning(ctx context.Context, env *environment, args []string) int {
	const cmd = "xcatbm cleaning"
	verb := "list"
	if len(args) > 0 && slices.Contains([]string{"list", "retry", "clear"}, args[0]) {
		verb, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var dbURL config.Secret
	fs.Var(&dbURL, "database-url", "PostgreSQL `url` of the workers' database\n(default postgres://xcatbm@127.0.0.1:5432/xcatbm?sslmode=disable)")
	host := fs.String("s", "", "list only the nodes of this compute `host`")
	fs.Usage = cleaningPage.usage(fs)
	pos, code, ok := parseArgs(fs, args, env)
	if !ok {
		return code
	}
	var names []string
	switch {
	case len(pos) > 1:
		return usageErr(env, cmd, "want at most one noderange, got %d arguments", len(pos))
	case len(pos) == 1:
		var err error
		if names, err = xcat.ExpandNoderange(ctx, pos[0], nil); err != nil {
			return usageErr(env, cmd, "%v", err)
		}
	case verb != "list":
		return usageErr(env, cmd, "%s needs a noderange", verb)
	}
	u := dbURL.Reveal()
	if u == "" {
		u = "postgres://xcatbm@127.0.0.1:5432/xcatbm?sslmode=disable"
	}
	db, err := sql.Open("postgres", u)
	if err != nil {
		fmt.Fprintf(env.stderr, "%s: database %s: %v\n", cmd, config.RedactURL(u), err)
		return publisher.ExitFailed
	}
	defer db.Close()
	st := store.New(db)
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	held, err := st.NodesInMaintenance(qctx, *host)
	if err != nil {
		fmt.Fprintf(env.stderr, "%s: database %s: %v\n", cmd, config.RedactURL(u), err)
		return publisher.ExitFailed
	}
	if len(names) > 0 {
		held = slices.DeleteFunc(held, func(n *store.Node) bool { return !slices.Contains(names, n.Name) })
	}
	switch verb {
	case "list":
		if len(held) == 0 {
			fmt.Fprintln(env.stdout, "no node is held out of scheduling")
			return 0
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tCOMPUTE HOST\tSINCE\tREASON")
		failed := false
		for _, n := range held {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.ComputeHost, n.UpdatedAt.Local().Format("2006-01-02 15:04:05"), n.Maintenance)
			failed = failed || n.Maintenance != store.MaintenanceCleaning
		}
		_ = tw.Flush()
		if failed {
			return publisher.ExitFailed
		}
		return 0
	case "clear":
		var ask []string
		for _, n := range held {
			ask = append(ask, n.Name)
		}
		cleared, err := st.ClearMaintenance(qctx, ask)
		if err != nil {
			fmt.Fprintf(env.stderr, "%s: %v\n", cmd, err)
			return publisher.ExitFailed
		}
		return report(env, cmd, names, cleared, "cleared: nova may place servers on it again (its worker updates placement within its sync)")
	default: // retry
		var retried []string
		for _, n := range held {
			ok, err := st.RetryCleaning(qctx, n.Name, worker.NewCleanJob(n.ComputeHost, n.Name, time.Now(), 0))
			if err != nil {
				fmt.Fprintf(env.stderr, "%s: %s: %v\n", cmd, n.Name, err)
				continue
			}
			if ok {
				retried = append(retried, n.Name)
			}
		}
		return report(env, cmd, names, retried, "cleaning again")
	}
}

// report prints what happened to each node named and returns 1 when a node was left
// as it was.
func report(env *environment, cmd string, names, done []string, what string) int {
	code := 0
	for _, n := range names {
		if slices.Contains(done, n) {
			fmt.Fprintf(env.stdout, "%s: %s\n", n, what)
			continue
		}
		fmt.Fprintf(env.stderr, "%s: %s: not held for a failed cleaning (or its cleaning runs); left as it is\n", cmd, n)
		code = publisher.ExitFailed
	}
	return code
}
