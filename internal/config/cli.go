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
	warnDeprecated(stderr, fs)
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

// deprecated marks a flag kept for a release under an old name: it is left out of
// the help's flag list and listed at its end with what replaces it.
type deprecated struct {
	flag.Value
	// target is the flag it is another name of ("" when it is a setting of its own,
	// see Deprecate); instead says what to use.
	target, instead string
}

// IsBoolFlag keeps a deprecated boolean flag usable without a value.
func (d *deprecated) IsBoolFlag() bool {
	b, ok := d.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Alias defines old as a deprecated name of the flag name already defined on fs:
// both set the same value, and old's environment variable is read when neither name
// nor name's variable is given. The help lists old only among the deprecated names.
// Alias must follow name's definition; before it, old refuses every value.
func Alias(fs *flag.FlagSet, old, name string) {
	var v flag.Value = refuse(name)
	if f := fs.Lookup(name); f != nil {
		v = f.Value
	}
	fs.Var(&deprecated{Value: v, target: name, instead: "--" + name}, old, "deprecated name of --"+name)
}

// refuse is the value of an alias whose flag was not defined.
type refuse string

func (r refuse) String() string { return "" }
func (r refuse) Set(string) error {
	return fmt.Errorf("no flag --%s to stand for", string(r))
}

// Deprecate marks the flag old, already defined on fs, as kept for a release only;
// instead says what replaces it. The help lists it only among the deprecated names.
// An undefined old is left alone.
func Deprecate(fs *flag.FlagSet, old, instead string) {
	if f := fs.Lookup(old); f != nil {
		f.Value = &deprecated{Value: f.Value, instead: instead}
	}
}

// printDeprecated ends a help's flag list with the deprecated names in flags.
func printDeprecated(w io.Writer, flags []*flag.Flag) {
	if len(flags) == 0 {
		return
	}
	fmt.Fprintln(w, "\nDeprecated names, still accepted in this release and removed in the next:")
	for _, f := range flags {
		d := f.Value.(*deprecated)
		fmt.Fprintf(w, "  --%s (env %s): use %s\n", f.Name, EnvName(f.Name), d.instead)
	}
}

// warnDeprecated tells on w which deprecated names, flags or their variables, were
// used.
func warnDeprecated(w io.Writer, fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) {
		if d, ok := f.Value.(*deprecated); ok {
			fmt.Fprintf(w, "%s: --%s (env %s) is deprecated and goes away in the next release; use %s\n", fs.Name(), f.Name, EnvName(f.Name), d.instead)
		}
	})
}
