package xcat

import (
	"fmt"
	"strings"
)

// The checks here run before any request leaves xcatbm. Nothing is ever passed through
// a shell, but xCAT itself hands values to shell scripts (postscripts, nodeset
// templates) and xcatd mangles bytes outside printable ASCII, so the typed Client
// refuses anything that could break out of a value there.

// shellMeta are the characters refused in noderanges and attribute values.
const shellMeta = ";|&$`\\\"'<>"

// checkPrintable refuses control characters (newline, NUL, ...), DEL and bytes outside
// ASCII, which xcatd would replace with '?' anyway.
func checkPrintable(what, s string, allowSpace bool) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || (c == ' ' && !allowSpace) {
			return fmt.Errorf("%s %q: character %q at %d not allowed: %w", what, s, c, i, ErrInvalidInput)
		}
	}
	return nil
}

// validateRequest checks what every backend can carry: a command name made of letters,
// digits, '_' and '-'; a noderange and arguments without control characters or
// non-ASCII bytes; standard input of printable lines (MaxStdinBytes at most); XCAT_*
// environment names. It is the check for Raw requests; typed calls check their inputs
// more strictly first.
func validateRequest(req Request) error {
	if req.Command == "" {
		return fmt.Errorf("empty command: %w", ErrInvalidInput)
	}
	for _, c := range req.Command {
		if !isNameChar(c) || c == '.' {
			return fmt.Errorf("command %q: %w", req.Command, ErrInvalidInput)
		}
	}
	if strings.HasPrefix(req.Noderange, "-") {
		return fmt.Errorf("noderange %q starts with '-': %w", req.Noderange, ErrInvalidInput)
	}
	if err := checkPrintable("noderange", req.Noderange, false); err != nil {
		return err
	}
	for _, a := range req.Args {
		if err := checkPrintable("argument", a, true); err != nil {
			return err
		}
	}
	if err := checkStdin(req.Stdin); err != nil {
		return err
	}
	for k, v := range req.Env {
		if !strings.HasPrefix(k, "XCAT_") || len(k) == len("XCAT_") {
			return fmt.Errorf("environment %q is not an XCAT_* name: %w", k, ErrInvalidInput)
		}
		for _, c := range k {
			if !isNameChar(c) || c == '-' || c == '.' {
				return fmt.Errorf("environment name %q: %w", k, ErrInvalidInput)
			}
		}
		if err := checkPrintable("environment value", v, true); err != nil {
			return err
		}
	}
	return nil
}

// MaxStdinBytes bounds a request's standard input (a chdef -z stanza of a few
// thousand nodes is a few hundred kilobytes).
const MaxStdinBytes = 4 << 20

// checkStdin accepts lines of printable ASCII: newline and tab are the only control
// characters allowed.
func checkStdin(s string) error {
	if len(s) > MaxStdinBytes {
		return fmt.Errorf("standard input of %d bytes is larger than %d: %w", len(s), MaxStdinBytes, ErrInvalidInput)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\n' && c != '\t') || c > 0x7e {
			return fmt.Errorf("standard input: character %q at %d not allowed: %w", c, i, ErrInvalidInput)
		}
	}
	return nil
}

func isNameChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// validateNoderange refuses an empty noderange, one that starts with '-' (it would be
// read as an option), whitespace, control characters and shell metacharacters. The
// noderange syntax itself ([] ranges, ',' lists, '-' exclusions, '@', '/regex',
// table.col==v, parentheses) passes.
func validateNoderange(nr string) error {
	if nr == "" {
		return fmt.Errorf("empty noderange: %w", ErrInvalidInput)
	}
	if strings.HasPrefix(nr, "-") {
		return fmt.Errorf("noderange %q starts with '-': %w", nr, ErrInvalidInput)
	}
	if err := checkPrintable("noderange", nr, false); err != nil {
		return err
	}
	if i := strings.IndexAny(nr, shellMeta); i >= 0 {
		return fmt.Errorf("noderange %q: character %q not allowed: %w", nr, nr[i], ErrInvalidInput)
	}
	return nil
}

// validateValue refuses an attribute value (or a -w selection, a state, a device) that
// holds control characters (newline, NUL, tab), non-ASCII bytes or shell
// metacharacters. Spaces are allowed: values travel as single arguments.
func validateValue(what, v string) error {
	if err := checkPrintable(what, v, true); err != nil {
		return err
	}
	if i := strings.IndexAny(v, shellMeta); i >= 0 {
		return fmt.Errorf("%s %q: character %q not allowed: %w", what, v, v[i], ErrInvalidInput)
	}
	return nil
}

// validateAttrName accepts xCAT attribute and table.column names: letters, digits,
// '_' and '.', not starting with '-'.
func validateAttrName(name string) error {
	if name == "" || name[0] == '-' {
		return fmt.Errorf("attribute name %q: %w", name, ErrInvalidInput)
	}
	for _, c := range name {
		if !isNameChar(c) || c == '-' {
			return fmt.Errorf("attribute name %q: %w", name, ErrInvalidInput)
		}
	}
	return nil
}

// validateWord accepts a single token such as a table name, an rpower action, a boot
// device or an osimage name: letters, digits, '_', '-', '.', not starting with '-'.
func validateWord(what, w string) error {
	if w == "" || w[0] == '-' {
		return fmt.Errorf("%s %q: %w", what, w, ErrInvalidInput)
	}
	for _, c := range w {
		if !isNameChar(c) {
			return fmt.Errorf("%s %q: %w", what, w, ErrInvalidInput)
		}
	}
	return nil
}
