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

// ValidateNoderange checks a noderange the way every Client call does before it is
// sent: it refuses an empty noderange, one that starts with '-' (it would be read as
// an option), whitespace, control characters, bytes outside ASCII and the shell
// metacharacters ; | & $ ` \ " ' < > (so "node;rm", "node01$(id)" and "node01|x" are
// refused). The noderange syntax itself ([] ranges, ',' lists, '-' exclusions, '@',
// '/regex', table.col==v, parentheses) passes. The error wraps ErrInvalidInput.
func ValidateNoderange(nr string) error {
	return validateNoderange(nr)
}

// MaxOSImageNameLength is the longest osimage name ValidateOSImageName accepts.
const MaxOSImageNameLength = 255

// ValidateOSImageName checks that name is in xCAT's safe set for osimage names, the
// set xCAT's own names use ("rhels7.5-x86_64-install-compute"): letters, digits, '.',
// '_' and '-', starting with a letter or digit, at most MaxOSImageNameLength bytes.
// Anything else (shell or noderange metacharacters, '=', ',', spaces, '/') is refused
// with an error wrapping ErrInvalidInput, before it can reach nodeset or lsdef.
func ValidateOSImageName(name string) error {
	if name == "" {
		return fmt.Errorf("osimage name is empty: %w", ErrInvalidInput)
	}
	if len(name) > MaxOSImageNameLength {
		return fmt.Errorf("osimage name %.32q... is longer than %d bytes: %w", name, MaxOSImageNameLength, ErrInvalidInput)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("osimage name %q must start with a letter or digit: %w", name, ErrInvalidInput)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("osimage name %q: character %q not allowed: %w", name, c, ErrInvalidInput)
		}
	}
	return nil
}

// dbCommands are xCAT's object commands (xcatDBcmds): their object names travel as
// arguments ("lsdef node01", "chdef -t node -o n1,n2 attr=v"), not as a noderange.
var dbCommands = map[string]bool{"lsdef": true, "chdef": true, "mkdef": true, "rmdef": true}

// dbOptionsWithValue are the object commands' options that take the next argument.
var dbOptionsWithValue = map[string]bool{"-t": true, "-o": true, "-i": true, "-w": true, "-n": true}

// checkObjectArgs applies to a Raw request of an object command the checks the typed
// calls make: object names ("-o" or the first plain argument) as noderanges,
// attribute values and -w selections as values.
func checkObjectArgs(req Request, checkNoderange func(string) error) error {
	if !dbCommands[req.Command] {
		return nil
	}
	seenObject := false
	for i := 0; i < len(req.Args); i++ {
		a := req.Args[i]
		switch {
		case dbOptionsWithValue[a] && i+1 < len(req.Args):
			v := req.Args[i+1]
			i++
			switch a {
			case "-o":
				if err := checkNoderange(v); err != nil {
					return err
				}
			case "-w":
				if err := validateValue("selection", v); err != nil {
					return err
				}
			}
		case strings.HasPrefix(a, "-"):
		case strings.Contains(a, "="):
			k, v, _ := strings.Cut(a, "=")
			if err := validateValue("value of "+k, v); err != nil {
				return err
			}
		case !seenObject:
			seenObject = true
			if err := checkNoderange(a); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateNoderange is ValidateNoderange.
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
