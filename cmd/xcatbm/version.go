package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

func init() {
	register(subcommand{name: "version", summary: "print the program's version", run: runVersion})
}

func runVersion(_ context.Context, env *environment, _ []string) int {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += " " + s.Value
			}
		}
	}
	fmt.Fprintln(env.stdout, "xcatbm", v)
	return 0
}
