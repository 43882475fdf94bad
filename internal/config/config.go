// Package config binds command-line flags to XCATBM_* environment variables and
// carries secrets in a type that never prints its value.
//
// Every flag of an xcatbm program can also be set from the environment: flag
// "amqp-url" reads XCATBM_AMQP_URL. A flag given on the command line wins over the
// environment. A secret flag can instead name a file that holds the secret, with the
// variable suffixed _FILE (XCATBM_DB_PASSWORD_FILE), so that a systemd unit can keep
// secrets in files readable only by the service user.
package config

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// EnvPrefix is the prefix of every environment variable xcatbm reads for its flags.
const EnvPrefix = "XCATBM_"

// EnvName returns the environment variable that sets flag name: "amqp-url" becomes
// "XCATBM_AMQP_URL".
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// Parse parses args into fs, then fills every flag not given on the command line from
// its environment variable (see EnvName; one-letter flags have none), using lookup to read the environment
// (os.LookupEnv when nil). A Secret flag may also be read from the file named by the
// variable with _FILE appended. It returns the first flag whose environment value does
// not parse, naming the variable.
func Parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		set[f.Name] = true
		if d, ok := f.Value.(*deprecated); ok && d.target != "" {
			set[d.target] = true
		}
	})
	var firstErr error
	fromEnv := func(f *flag.Flag) {
		// One-letter flags (-s, -n, -c) are the short options xCAT's commands
		// have; they take no environment variable.
		if set[f.Name] || firstErr != nil || len(f.Name) == 1 {
			return
		}
		env := EnvName(f.Name)
		if v, ok := lookup(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				firstErr = fmt.Errorf("environment variable %s: %w", env, err)
			}
			set[f.Name] = true
			return
		}
		if _, isSecret := f.Value.(*Secret); !isSecret {
			return
		}
		if path, ok := lookup(env + "_FILE"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				firstErr = fmt.Errorf("environment variable %s_FILE: %w", env, err)
				return
			}
			if err := fs.Set(f.Name, strings.TrimRight(string(b), "\r\n")); err != nil {
				firstErr = fmt.Errorf("environment variable %s_FILE: %w", env, err)
			}
			set[f.Name] = true
		}
	}
	// Current names first: a deprecated name's variable is read only when the
	// setting it stands for was given neither way.
	fs.VisitAll(func(f *flag.Flag) {
		if _, old := f.Value.(*deprecated); !old {
			fromEnv(f)
		}
	})
	fs.VisitAll(func(f *flag.Flag) {
		if d, old := f.Value.(*deprecated); old && !set[d.target] {
			fromEnv(f)
		}
	})
	return firstErr
}

// Usage returns a flag.FlagSet Usage function that prints synopsis, then every flag
// with its default and the environment variable that also sets it, then footer.
// Secret defaults are never printed.
func Usage(fs *flag.FlagSet, synopsis, footer string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintln(w, strings.TrimRight(synopsis, "\n"))
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Flags (each can also be set from the environment variable shown):")
		PrintFlags(w, fs)
		if footer != "" {
			fmt.Fprintln(w)
			fmt.Fprintln(w, strings.TrimRight(footer, "\n"))
		}
	}
}

// PrintFlags writes one entry per flag of fs to w, sorted by name.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	var old []*flag.Flag
	for _, f := range flags {
		if _, ok := f.Value.(*deprecated); ok {
			old = append(old, f)
			continue
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if len(f.Name) == 1 {
			line = "  -" + f.Name
		}
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s", line, strings.ReplaceAll(usage, "\n", "\n      "))
		if len(f.Name) == 1 {
			fmt.Fprintln(w)
			continue
		}
		env := EnvName(f.Name)
		if _, ok := f.Value.(*Secret); ok {
			env += " (or " + env + "_FILE)"
		}
		fmt.Fprintf(w, "\n      env %s", env)
		if _, ok := f.Value.(*Secret); !ok && f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(w, ", default %q", f.DefValue)
		}
		fmt.Fprintln(w)
	}
	printDeprecated(w, old)
}

// Redacted is what a Secret prints instead of its value.
const Redacted = "[REDACTED]"

// Secret holds a password, token or private key. Its String, GoString, Format, JSON,
// text and zerolog forms print Redacted; only Reveal returns the value. The zero value
// is an empty secret. It is a flag.Value, so a Secret can be bound with fs.Var.
type Secret struct{ value string }

// NewSecret returns a Secret holding v.
func NewSecret(v string) Secret { return Secret{value: v} }

// Reveal returns the secret's value. Call it only where the value is handed to the
// system that needs it (a login, a request header), never for printing.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

// String implements fmt.Stringer and flag.Value without revealing the value.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return Redacted
}

// GoString implements fmt.GoStringer for %#v without revealing the value.
func (s Secret) GoString() string { return "config.Secret(" + Redacted + ")" }

// Format implements fmt.Formatter so that every verb prints Redacted.
func (s Secret) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, s.String()) }

// Set implements flag.Value.
func (s *Secret) Set(v string) error { s.value = v; return nil }

// MarshalJSON implements json.Marshaler without revealing the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler without revealing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
