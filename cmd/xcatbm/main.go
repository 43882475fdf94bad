// Command xcatbm is the admin side of xcatbm: it talks to xCAT, places the
// postscripts, prepares the site and publishes registration jobs to the workers.
//
// Each subcommand lives in its own file and registers itself in init with
// register. Installed under another name (a link called opsaddbmnode), the program
// runs the subcommand of that name.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"

	"xcatbm/internal/config"
)

// subcommand is one `xcatbm <name>` command.
type subcommand struct {
	name    string
	summary string
	// run executes the command with its arguments (without the name) and returns the
	// process exit code. It prints its own errors.
	run func(ctx context.Context, env *environment, args []string) int
}

// environment is what a subcommand may touch of the process, so tests can run
// subcommands in-process.
type environment struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) (string, bool)
}

var subcommands = map[string]subcommand{}

func register(c subcommand) { subcommands[c.name] = c }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &environment{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.LookupEnv}, os.Args)
	stop()
	os.Exit(code)
}

// run dispatches argv (argv[0] included) and returns the exit code.
func run(ctx context.Context, env *environment, argv []string) int {
	if len(argv) > 0 {
		if c, ok := subcommands[filepath.Base(argv[0])]; ok {
			return c.run(ctx, env, argv[1:])
		}
	}
	if len(argv) < 2 {
		return config.UsageError(env.stderr, "xcatbm", "no command given")
	}
	name := argv[1]
	switch name {
	case "-h", "--help", "help":
		usage(env.stdout)
		return 0
	}
	c, ok := subcommands[name]
	if !ok {
		return config.UsageError(env.stderr, "xcatbm", "unknown command %q", name)
	}
	return c.run(ctx, env, argv[2:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: xcatbm <command> [arguments]\n\nCommands:")
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, subcommands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'xcatbm <command> --help' for a command's flags. Every flag can also be set\nfrom an XCATBM_* environment variable, shown in each command's help.")
}
