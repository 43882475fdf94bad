package xcat

import (
	"fmt"
	"slices"
	"strings"
)

// xCAT's stanza format is how lsdef -z prints objects and what mkdef -z and chdef -z
// read from standard input (xCAT::DBobjUtils::readFileInput):
//
//	# <xCAT data object stanza file>
//
//	n001:
//	    objtype=node
//	    postbootscripts=config_ops_bmnode 10.0.0.5/24
//
//	n002:
//	    objtype=node
//	    postbootscripts=config_ops_bmnode 10.0.0.6/24
//
// A line ending in ':' names an object (everything before the last ':'); the
// "attr=value" lines after it set its attributes, split at the first '='; blank lines
// and lines starting with '#' are skipped. xCAT trims the spaces around names and
// values and strips one pair of surrounding double quotes from a value. A stanza named
// "default-<type>" holds defaults for every object of that type.
//
// readFileInput skips what it cannot read; here such input is an error instead, and
// the writer refuses anything the reader would not give back unchanged.

// stanzaHeader is the comment lsdef -z starts its output with.
const stanzaHeader = "# <xCAT data object stanza file>"

// StanzaObject is one object of a stanza: its name and its attributes, objtype among
// them ("node" for nodes).
type StanzaObject struct {
	Name  string
	Attrs Attrs
}

// FormatStanza renders objects in xCAT's stanza format, in the given order, each
// object's objtype first and its other attributes sorted by name. It refuses, with
// ErrInvalidInput, an object name that is not a valid node name or that xCAT would
// take for a defaults stanza ("default-node"), a name given twice, an invalid
// attribute name, and a value xCAT would read back differently: control characters,
// shell metacharacters, surrounding spaces, a trailing ':'.
func FormatStanza(objs []StanzaObject) (string, error) {
	var b strings.Builder
	b.WriteString(stanzaHeader + "\n\n")
	seen := make(map[string]bool, len(objs))
	for _, o := range objs {
		if err := validateStanzaName(o.Name); err != nil {
			return "", err
		}
		if seen[o.Name] {
			return "", fmt.Errorf("stanza object %q given twice: %w", o.Name, ErrInvalidInput)
		}
		seen[o.Name] = true
		keys := make([]string, 0, len(o.Attrs))
		for k, v := range o.Attrs {
			if err := validateAttrName(k); err != nil {
				return "", fmt.Errorf("stanza object %s: %w", o.Name, err)
			}
			if err := validateStanzaValue(k, v); err != nil {
				return "", fmt.Errorf("stanza object %s: %w", o.Name, err)
			}
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, c string) int {
			switch {
			case a == c:
				return 0
			case a == "objtype":
				return -1
			case c == "objtype":
				return 1
			}
			return strings.Compare(a, c)
		})
		b.WriteString(o.Name + ":\n")
		for _, k := range keys {
			b.WriteString("    " + k + "=" + o.Attrs[k] + "\n")
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// ParseStanza reads stanza text as xCAT's readFileInput does, objects in the order
// they first appear. An object named twice gets the attributes of both stanzas, and an
// attribute set twice keeps the later value, as in xCAT. Unlike xCAT it fails, with
// ErrInvalidInput, on a line it cannot read (an attribute before any object name, a
// line that is neither), on a defaults stanza, and on a name, attribute or value
// FormatStanza would refuse.
func ParseStanza(text string) ([]StanzaObject, error) {
	var objs []StanzaObject
	index := map[string]int{}
	cur := -1
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		lineNo := i + 1
		if strings.HasSuffix(trimmed, ":") {
			name := strings.TrimSpace(strings.TrimSuffix(trimmed, ":"))
			if err := validateStanzaName(name); err != nil {
				return nil, fmt.Errorf("stanza line %d: %w", lineNo, err)
			}
			j, ok := index[name]
			if !ok {
				j = len(objs)
				index[name] = j
				objs = append(objs, StanzaObject{Name: name, Attrs: Attrs{}})
			}
			cur = j
			continue
		}
		attr, val, ok := strings.Cut(trimmed, "=")
		if !ok {
			return nil, fmt.Errorf("stanza line %d %q is neither an object name nor attr=value: %w", lineNo, line, ErrInvalidInput)
		}
		if cur < 0 {
			return nil, fmt.Errorf("stanza line %d: attribute before any object name: %w", lineNo, ErrInvalidInput)
		}
		attr = strings.TrimSpace(attr)
		val = strings.TrimSpace(val)
		// readFileInput: s/^\s*"\s*//; s/\s*"\s*$//
		if rest, found := strings.CutPrefix(val, `"`); found {
			val = strings.TrimLeft(rest, " \t")
		}
		if rest, found := strings.CutSuffix(val, `"`); found {
			val = strings.TrimRight(rest, " \t")
		}
		if err := validateAttrName(attr); err != nil {
			return nil, fmt.Errorf("stanza line %d: %w", lineNo, err)
		}
		if err := validateStanzaValue(attr, val); err != nil {
			return nil, fmt.Errorf("stanza line %d: %w", lineNo, err)
		}
		objs[cur].Attrs[attr] = val
	}
	return objs, nil
}

// validateStanzaName accepts a node name that xCAT would not read as a defaults
// stanza.
func validateStanzaName(name string) error {
	if err := ValidateNodeName(name); err != nil {
		return err
	}
	if rest, ok := strings.CutPrefix(name, "default-"); ok && rest != "" && !strings.Contains(rest, "-") {
		return fmt.Errorf("stanza object %q would be read as the defaults of type %q: %w", name, rest, ErrInvalidInput)
	}
	return nil
}

// validateStanzaValue accepts an attribute value that survives a stanza unchanged:
// validateValue's rules, no surrounding spaces (xCAT trims them) and no trailing ':'
// (the line would be read as an object name).
func validateStanzaValue(attr, v string) error {
	if err := validateValue("value of "+attr, v); err != nil {
		return err
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("value of %s %q: surrounding spaces would be lost: %w", attr, v, ErrInvalidInput)
	}
	if strings.HasSuffix(v, ":") {
		return fmt.Errorf("value of %s %q: a trailing ':' would make the line an object name: %w", attr, v, ErrInvalidInput)
	}
	return nil
}
