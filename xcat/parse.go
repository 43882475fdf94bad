package xcat

import (
	"strconv"
	"strings"
)

// The parsers of xCAT's command output. Both backends render node data as xCAT's CLI
// prints it, so these work on the text after "node: " (or on whole top-level lines).

// parsePower normalizes an rpower line: "on", "off", "suspend", "reset", "softoff"...
// KVM and PPC's "Running" is "on", "Not Activated" is "off"; rpower boot's old
// "on reset" (was on, reset) is "reset" and "off on" (was off, powered on) is "on".
// It reports false for text that is not a power state or action.
func parsePower(text string) (string, bool) {
	t := strings.ToLower(strings.Join(strings.Fields(text), " "))
	switch t {
	case "on", "off", "suspend", "reset", "softoff", "boot", "cycle":
		return t, true
	case "running":
		return "on", true
	case "not activated", "shutdown", "shut off":
		return "off", true
	case "on reset":
		return "reset", true
	case "off on":
		return "on", true
	}
	return "", false
}

// parseBootDevice normalizes an rsetboot line: "Network" is "net", "Hard Drive" "hd",
// "CD/DVD" "cd", "boot override inactive" and "Default" "default".
func parseBootDevice(text string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "network", "net", "pxe":
		return "net", true
	case "hard drive", "hd", "disk":
		return "hd", true
	case "cd/dvd", "cd":
		return "cd", true
	case "boot override inactive", "default":
		return "default", true
	case "bios setup", "setup":
		return "setup", true
	case "floppy":
		return "floppy", true
	}
	return "", false
}

// parseNodeSet returns a nodeset line's boot state ("install rhels7.5-x86_64-compute",
// "boot", "offline", "discover"); a blank line is not a state.
func parseNodeSet(text string) (string, bool) {
	t := strings.Join(strings.Fields(text), " ")
	return t, t != ""
}

// parseNodeLs reads one node's nodels lines for the requested attributes. With one
// attribute a line is the value itself; with several it is "table.col: value", or
// "table.col" alone for an empty value. " (inherited from group g)" suffixes (-b) are
// dropped.
func parseNodeLs(lines []string, attrs []string) Attrs {
	out := Attrs{}
	if len(attrs) == 1 {
		if len(lines) > 0 {
			out[attrs[0]] = stripInherited(lines[0])
		}
		return out
	}
	want := map[string]bool{}
	for _, a := range attrs {
		want[a] = true
	}
	for _, l := range lines {
		name, value, found := strings.Cut(l, ": ")
		if !found {
			name, value = strings.TrimSuffix(l, ":"), ""
		}
		if len(want) == 0 || want[name] {
			out[name] = stripInherited(value)
		}
	}
	return out
}

func stripInherited(v string) string {
	if i := strings.LastIndex(v, " (inherited from group "); i >= 0 && strings.HasSuffix(v, ")") {
		return v[:i]
	}
	return v
}

// lsdefNoObjects is what lsdef prints on stdout, with exit code 0, when a -w selection
// matches nothing.
const lsdefNoObjects = "Could not find any object definitions to display."

// parseLsDefLong reads lsdef's long form: "Object name: x" starts an object, then
// "    attr=value" lines (any indentation) belong to it. Listing lines such as
// "node1  (node)" define an object without attributes. Other lines (lsdefNoObjects,
// summaries) are ignored.
func parseLsDefLong(lines []string) map[string]Attrs {
	out := map[string]Attrs{}
	var cur Attrs
	for _, l := range lines {
		if strings.TrimSpace(l) == lsdefNoObjects {
			cur = nil
			continue
		}
		if name, ok := strings.CutPrefix(l, "Object name: "); ok {
			name = strings.TrimSpace(name)
			if name == "" {
				cur = nil
				continue
			}
			cur = out[name]
			if cur == nil {
				cur = Attrs{}
				out[name] = cur
			}
			continue
		}
		if cur != nil && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && k != "" {
				cur[k] = v
			}
			continue
		}
		if name, typ, ok := strings.Cut(l, "  ("); ok && strings.HasSuffix(typ, ")") && !strings.Contains(name, " ") && name != "" {
			if out[name] == nil {
				out[name] = Attrs{}
			}
			cur = nil
			continue
		}
		cur = nil
	}
	return out
}

// parseLsDefC reads lsdef -c lines "node1: attr=value" into per-object attributes.
func parseLsDefC(lines []string) map[string]Attrs {
	out := map[string]Attrs{}
	for _, l := range lines {
		obj, rest, ok := strings.Cut(l, ": ")
		if !ok || obj == "" || strings.Contains(obj, " ") {
			continue
		}
		k, v, ok := strings.Cut(rest, "=")
		if !ok || k == "" {
			continue
		}
		if out[obj] == nil {
			out[obj] = Attrs{}
		}
		out[obj][k] = v
	}
	return out
}

// parseTabDump reads tabdump's CSV: a "#col1,col2" header, then rows where a defined
// value is quoted ("v", inner quotes doubled) and a missing one is empty. Missing values
// are left out of the row's map, so an empty string means an empty value. Lines before
// the header and lines that do not parse are skipped.
func parseTabDump(lines []string) []Attrs {
	var cols []string
	var rows []Attrs
	for _, l := range lines {
		if cols == nil {
			if h, ok := strings.CutPrefix(l, "#"); ok {
				cols = strings.Split(h, ",")
			}
			continue
		}
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		vals, ok := splitTabDumpRow(l)
		if !ok {
			continue
		}
		row := Attrs{}
		for i, v := range vals {
			if i >= len(cols) || v == nil {
				continue
			}
			row[cols[i]] = *v
		}
		rows = append(rows, row)
	}
	return rows
}

// splitTabDumpRow splits one CSV row; nil marks a missing (unquoted empty) value.
func splitTabDumpRow(l string) ([]*string, bool) {
	var vals []*string
	i := 0
	for {
		if i >= len(l) {
			vals = append(vals, nil)
			return vals, true
		}
		if l[i] == ',' {
			vals = append(vals, nil)
			i++
			continue
		}
		if l[i] != '"' {
			// An unquoted value: take it up to the next comma.
			j := strings.IndexByte(l[i:], ',')
			var v string
			if j < 0 {
				v = l[i:]
			} else {
				v = l[i : i+j]
			}
			vals = append(vals, &v)
			if j < 0 {
				return vals, true
			}
			i += j + 1
			if i == len(l) {
				vals = append(vals, nil)
				return vals, true
			}
			continue
		}
		var b strings.Builder
		i++
		closed := false
		for i < len(l) {
			if l[i] == '"' {
				if i+1 < len(l) && l[i+1] == '"' {
					b.WriteByte('"')
					i += 2
					continue
				}
				i++
				closed = true
				break
			}
			b.WriteByte(l[i])
			i++
		}
		if !closed {
			return nil, false
		}
		v := b.String()
		vals = append(vals, &v)
		if i == len(l) {
			return vals, true
		}
		if l[i] != ',' {
			return nil, false
		}
		i++
		if i == len(l) {
			vals = append(vals, nil)
			return vals, true
		}
	}
}

// chdefWarningNode returns the node a chdef warning names ("node1: postbootscripts 'x'
// is already included"), if any.
func chdefWarningNode(w string) (string, string, bool) {
	node, msg, ok := strings.Cut(skipSource(w), ": ")
	if !ok || !isNodeName(node) {
		return "", "", false
	}
	return node, msg, true
}

// parseChDefSummary reads "N object definitions have been created or modified." and
// returns N.
func parseChDefSummary(lines []string) (int, bool) {
	for _, l := range lines {
		var n int
		var rest string
		if k, r, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			if v, err := strconv.Atoi(k); err == nil {
				n, rest = v, r
			}
		}
		if strings.HasPrefix(rest, "object definitions have been created or modified") ||
			strings.HasPrefix(rest, "object definition has been created or modified") {
			return n, true
		}
	}
	return 0, false
}

// transientMarkers are lowercase fragments of node errors that retrying may cure: the
// BMC did not answer (xCAT's IPMI.pm reports "timeout" / "ERROR: timeout" when its
// retries run out), or it is busy ("Insufficient resources to create new session (wait
// for existing sessions to timeout)", "BMC busy", "Node busy").
var transientMarkers = []string{
	"timeout",
	"timed out",
	"did not respond",
	"not responding",
	"no response",
	"busy",
	"insufficient resources to create",
	"temporarily unavailable",
	"try again",
}

// isTransient classifies a node's error message; it is the one place that decides
// whether a node error is worth retrying.
func isTransient(msg string) bool {
	m := strings.ToLower(msg)
	for _, t := range transientMarkers {
		if strings.Contains(m, t) {
			return true
		}
	}
	return false
}
