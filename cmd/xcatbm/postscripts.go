package main

import (
	"context"
	"flag"
	"fmt"

	"xcatbm/internal/config"
	"xcatbm/postscripts"
)

func init() {
	register(subcommand{
		name:    "install-postscripts",
		summary: "place config_ops_bmnode and deconfig_ops_bmnode where xCAT serves postscripts",
		run:     runInstallPostscripts,
	})
}

func runInstallPostscripts(_ context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("xcatbm install-postscripts", flag.ContinueOnError)
	dir := fs.String("dir", postscripts.DefaultDir, "directory xCAT serves postscripts from")
	fs.Usage = config.Usage(fs, "usage: xcatbm install-postscripts [--dir DIR]\n\n"+
		"Writes xcatbm's postscripts into DIR with mode 0755, leaving scripts already\n"+
		"installed as shipped untouched, and prints what it did to each.", "")
	if code, done := config.ParseCommandLine(fs, args, env.getenv, env.stdout, env.stderr); done {
		return code
	}
	if fs.NArg() != 0 {
		return config.UsageError(env.stderr, "xcatbm install-postscripts", "unexpected argument %q", fs.Arg(0))
	}
	changes, err := postscripts.Install(*dir)
	for _, c := range changes {
		fmt.Fprintf(env.stdout, "%-9s %s\n", c.Action, c.Path)
	}
	if err != nil {
		fmt.Fprintln(env.stderr, "xcatbm install-postscripts:", err)
		return 1
	}
	return 0
}
