package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ParseCommandLine parses args into fs as Parse does, and settles help and mistakes
// the same way in every xcatbm program: -h or --help prints fs.Usage to stdout and
// gives exit code 0; any mistake prints one line saying what is wrong and a pointer to
// --help to stderr (see UsageError) and gives exit code 2. done is false, and code
// meaningless, when the program should go on. fs.Usage must write to fs.Output().
func ParseCommandLine(fs *flag.FlagSet, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) (code int, done bool) {
	// The flag package prints the error and the whole usage itself; it is silenced
	// here and the outcome printed once below.
	fs.SetOutput(io.Discard)
	err := Parse(fs, args, lookup)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return 0, true
	}
	fs.SetOutput(stderr)
	if err != nil {
		return UsageError(stderr, fs.Name(), "%s", flagError(err)), true
	}
	return 0, false
}

// UsageError writes a usage error to w as two lines, "prog: <what is wrong>" and
// "see 'prog --help'", and returns 2, the exit code of a usage error.
func UsageError(w io.Writer, prog, format string, args ...any) int {
	fmt.Fprintf(w, "%s: %s\nsee '%s --help'\n", prog, fmt.Sprintf(format, args...), prog)
	return 2
}

// flagError rewords the flag package's messages, which speak of "-flag" whatever the
// user typed, in the form the usage pages use.
func flagError(err error) string {
	msg := err.Error()
	dash := func(name string) string {
		if len(name) == 1 {
			return "-" + name
		}
		return "--" + name
	}
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag " + dash(name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return "flag " + dash(name) + " needs a value"
	}
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if value, flagAndWhy, ok := strings.Cut(rest, " for flag -"); ok {
			if name, why, ok := strings.Cut(flagAndWhy, ": "); ok {
				return dash(name) + " " + value + ": " + why
			}
		}
	}
	return msg
}
