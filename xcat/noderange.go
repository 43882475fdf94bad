package xcat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Noderange expansion follows xCAT's NodeRange.pm (see the noderange(3) man page):
//
//   - a comma list, split outside [] and (); "@" intersects and binds tighter than ","
//   - node and group names; an existing node name wins over a group of the same name
//   - "a01-a10" and "a01:a10" (one numeric field may differ, the rest must match)
//   - "a[01-10]", "a[01:10]", "a[1-3,7]" and products such as "f[1-2]n[1-3]"
//   - "node10+3" (node10 to node13: the last number of the name plus an offset)
//   - bare numbers "10", "10-20", "10+3", which get the prefix "node"
//   - "/regex", matched against every node name, anchored at both ends
//   - "^/path/file": one noderange per line (the text before the first ':', tab or
//     space); lines starting with '#' or '^' are skipped
//   - "-x" excludes x; exclusions are applied after every inclusion, so they always win
//   - "(...)" groups a sub-noderange
//   - attribute selectors "table.col==v", "table.col=v", "!=", "=~", "!~" (regexes may
//     be written /v/), and xCAT's short names groups, tags (nodelist.groups) and mgt
//     (nodehm.mgt)
//
// Numeric ranges are padded when an endpoint is written with a leading zero: the names
// then take the width of the wider endpoint ("n01-n10", "n[001-100]"); without a leading
// zero no padding is added ("n8-n10" is n8, n9, n10).
//
// Order: xcatd itself answers its expansion sorted as strings. ExpandNoderange instead
// returns nodes in first-seen order (left to right, a range in ascending order, a group
// in the resolver's member order), with duplicates dropped, which is deterministic and
// keeps "node[1-10]" in natural order.
//
// Differences from xCAT, on purpose: regexes are Go (RE2) regexps, a "-^file" exclusion
// excludes (xCAT adds the file's nodes), a descending range such as "n5-n1" is an error
// instead of an empty set, and expansion stops with an error beyond MaxExpandedNodes.

// MaxExpandedNodes bounds how many names one expansion may produce, so that a typo such
// as "node[1-1000000000]" fails instead of exhausting memory.
const MaxExpandedNodes = 1 << 20

// maxNoderangeDepth bounds nesting of parentheses and files.
const maxNoderangeDepth = 32

// maxNoderangeFile bounds the size of a "^file" noderange.
const maxNoderangeFile = 16 << 20

// DefaultNodePrefix is the prefix xCAT puts before a bare number ("10" is "node10").
const DefaultNodePrefix = "node"

// Resolver answers the questions noderange expansion asks about the cluster: which
// names are nodes, which are groups, and which nodes match an attribute. Implementations
// must be safe for concurrent use when shared between goroutines.
type Resolver interface {
	// AllNodes returns every node name, for "/regex" atoms.
	AllNodes(ctx context.Context) ([]string, error)
	// IsNode reports whether name is a defined node.
	IsNode(ctx context.Context, name string) (bool, error)
	// Group returns the members of group name; ok is false when no such group exists
	// (a defined group without members returns ok true and no members).
	Group(ctx context.Context, name string) (members []string, ok bool, err error)
	// Select returns the nodes whose table.column compares to value with op, one of
	// "==", "!=", "=~" and "!~" (regex operators take an unanchored regexp). A node
	// without a value compares as the empty string.
	Select(ctx context.Context, table, column, op, value string) ([]string, error)
}

// UnknownNodesError says which names of a noderange are neither nodes nor groups. Its
// message is xcatd's: "Invalid nodes and/or groups in noderange: a,b".
type UnknownNodesError struct {
	// Names lists the unknown names in the order they were met.
	Names []string
}

// Error names the nodes xCAT does not know.
func (e *UnknownNodesError) Error() string {
	return "Invalid nodes and/or groups in noderange: " + strings.Join(e.Names, ",")
}

// ExpandNoderange expands the noderange nr into node names (see the syntax above).
//
// With a nil Resolver, names are taken as they are written (no group lookup, no
// verification) and "/regex" and attribute selectors are refused; that form suits
// splitting and counting noderanges the caller built itself.
//
// With a Resolver, every name must be a node or a group; unknown names make the whole
// expansion fail with an *UnknownNodesError naming all of them. Syntax errors and limits
// return an error wrapping ErrInvalidInput. An empty noderange expands to no nodes.
func ExpandNoderange(ctx context.Context, nr string, r Resolver) ([]string, error) {
	for _, c := range nr {
		if c < 0x20 || c == 0x7f {
			return nil, fmt.Errorf("noderange %q: control character: %w", nr, ErrInvalidInput)
		}
	}
	e := &expander{ctx: ctx, r: r, seenMissing: map[string]bool{}}
	nodes, err := e.list(nr, 0)
	if err != nil {
		if strings.HasPrefix(err.Error(), strconv.Quote(nr)+": ") {
			// The element at fault is the whole noderange: named once is enough.
			return nil, fmt.Errorf("noderange %w", err)
		}
		return nil, fmt.Errorf("noderange %q: %w", nr, err)
	}
	if len(e.missing) > 0 {
		return nil, &UnknownNodesError{Names: e.missing}
	}
	return nodes, nil
}

// DefaultMaxNodes is how many nodes one noderange may name in xcatbm's admin tools
// (xcatbm xcat, opsaddbmnode, rmbmnode) unless told otherwise; see
// CheckNoderangeSize.
const DefaultMaxNodes = 10000

// NoderangeTooLargeError refuses a noderange that names more nodes than allowed,
// before any request is sent. It wraps ErrInvalidInput.
type NoderangeTooLargeError struct {
	// Noderange is the refused noderange.
	Noderange string
	// Max is the limit it went over.
	Max int
}

// Error says how many nodes the noderange holds and the bound it passes.
func (e *NoderangeTooLargeError) Error() string {
	nr := e.Noderange
	if len(nr) > 80 {
		nr = nr[:77] + "..."
	}
	return fmt.Sprintf("noderange %q names more than %d nodes, the most one request may name", nr, e.Max)
}

// Unwrap makes the error match ErrInvalidInput.
func (e *NoderangeTooLargeError) Unwrap() error { return ErrInvalidInput }

// CheckNoderangeSize refuses, with a *NoderangeTooLargeError, a noderange whose names
// and ranges name more than max nodes ("n[1-1000000]" names a million), without
// expanding it into memory and without asking xCAT. max <= 0 means no limit.
//
// It counts what the noderange spells out, as xcatd would expand it: every name of a
// range or a product ("f[1-2]n[1-3]" is 6), exclusions and intersections included
// (xcatd expands them too), duplicates counted again, a group or node name as one.
// What only xCAT can expand (a group's members, "/regex", "table.col==v", "^file")
// counts as one name or none: those are bounded by the cluster itself. A noderange
// that does not parse is not refused here (xcatd judges it); its size is unknown.
func CheckNoderangeSize(nr string, max int) error {
	if max <= 0 || nr == "" {
		return nil
	}
	e := &expander{ctx: context.Background(), counting: true, limit: max, seenMissing: map[string]bool{}}
	if _, err := e.list(nr, 0); errors.Is(err, errTooMany) {
		return &NoderangeTooLargeError{Noderange: nr, Max: max}
	}
	return nil
}

type expander struct {
	ctx context.Context
	r   Resolver
	// counting is CheckNoderangeSize's mode: at most limit names, and atoms only
	// xCAT can expand (regexes, selectors, files) count as none.
	counting    bool
	limit       int
	missing     []string
	seenMissing map[string]bool
	produced    int
	all         []string
	allLoaded   bool
}

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrInvalidInput)...)
}

// orderedSet keeps first-seen order without duplicates.
type orderedSet struct {
	list []string
	has  map[string]struct{}
}

func (s *orderedSet) add(names ...string) {
	if s.has == nil {
		s.has = make(map[string]struct{}, len(names))
	}
	for _, n := range names {
		if _, ok := s.has[n]; !ok {
			s.has[n] = struct{}{}
			s.list = append(s.list, n)
		}
	}
}

// splitTop splits s at sep where sep is outside [] and ().
func splitTop(s string, sep byte) ([]string, error) {
	var parts []string
	square, round, start := 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			square++
		case ']':
			square--
		case '(':
			round++
		case ')':
			round--
		case sep:
			if square == 0 && round == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
		if square < 0 || round < 0 {
			return nil, invalid("%q: unbalanced brackets", s)
		}
	}
	if square != 0 || round != 0 {
		return nil, invalid("%q: unbalanced brackets", s)
	}
	return append(parts, s[start:]), nil
}

func (e *expander) list(s string, depth int) ([]string, error) {
	if depth > maxNoderangeDepth {
		return nil, invalid("%q: nested too deeply", s)
	}
	if err := e.ctx.Err(); err != nil {
		return nil, err
	}
	elems, err := splitTop(s, ',')
	if err != nil {
		return nil, err
	}
	var incl orderedSet
	var excl map[string]struct{}
	for _, el := range elems {
		if el == "" {
			continue
		}
		neg := strings.HasPrefix(el, "-")
		if neg {
			el = el[1:]
		}
		nodes, err := e.intersection(el, depth)
		if err != nil {
			return nil, err
		}
		if neg {
			if excl == nil {
				excl = map[string]struct{}{}
			}
			for _, n := range nodes {
				excl[n] = struct{}{}
			}
			continue
		}
		incl.add(nodes...)
	}
	if len(excl) == 0 {
		return incl.list, nil
	}
	out := incl.list[:0:0]
	for _, n := range incl.list {
		if _, ok := excl[n]; !ok {
			out = append(out, n)
		}
	}
	return out, nil
}

func (e *expander) intersection(s string, depth int) ([]string, error) {
	parts, err := splitTop(s, '@')
	if err != nil {
		return nil, err
	}
	cur, err := e.atom(parts[0], depth)
	if err != nil {
		return nil, err
	}
	for _, p := range parts[1:] {
		next, err := e.atom(p, depth)
		if err != nil {
			return nil, err
		}
		keep := make(map[string]struct{}, len(next))
		for _, n := range next {
			keep[n] = struct{}{}
		}
		filtered := cur[:0:0]
		for _, n := range cur {
			if _, ok := keep[n]; ok {
				filtered = append(filtered, n)
			}
		}
		cur = filtered
	}
	return cur, nil
}

func (e *expander) atom(a string, depth int) ([]string, error) {
	if a == "" {
		return nil, invalid("empty element")
	}
	if strings.HasPrefix(a, "-") {
		return nil, invalid("%q: exclusion is only allowed at the start of a comma element", a)
	}
	if strings.HasPrefix(a, "^") {
		return e.file(a[1:], depth)
	}
	if e.r != nil {
		ok, err := e.r.IsNode(e.ctx, a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a, err)
		}
		if ok {
			return e.produce(a)
		}
	}
	if strings.HasPrefix(a, "(") && strings.HasSuffix(a, ")") {
		if _, err := splitTop(a[1:len(a)-1], ','); err == nil {
			return e.list(a[1:len(a)-1], depth+1)
		}
	}
	if strings.ContainsAny(a, "()") {
		return nil, invalid("%q: parentheses must enclose a whole element", a)
	}
	if e.r != nil {
		members, ok, err := e.r.Group(e.ctx, a)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", a, err)
		}
		if ok {
			return e.produce(members...)
		}
	}
	if strings.HasPrefix(a, "/") {
		return e.regex(a[1:])
	}
	if strings.ContainsAny(a, "=~") {
		return e.selector(a)
	}
	if isDigits(a) {
		return e.name(DefaultNodePrefix + a)
	}
	if strings.Contains(a, "[") {
		return e.bracket(a)
	}
	if strings.Contains(a, "+") {
		return e.plus(a)
	}
	if strings.ContainsAny(a, "-:") {
		return e.dashRange(a)
	}
	if strings.ContainsAny(a, "]") {
		return nil, invalid("%q: unbalanced brackets", a)
	}
	return e.name(a)
}

// produce counts names against the expansion's limit.
func (e *expander) produce(names ...string) ([]string, error) {
	e.produced += len(names)
	if e.produced > e.max() {
		if e.counting {
			return nil, errTooMany
		}
		return nil, invalid("expands to more than %d names", MaxExpandedNodes)
	}
	return names, nil
}

// max is how many names the expansion may produce.
func (e *expander) max() int {
	if e.counting {
		return e.limit
	}
	return MaxExpandedNodes
}

// errTooMany stops a counting expansion at its limit.
var errTooMany = errors.New("too many names")

// name resolves a plain name: a node, a group's members, or unknown.
func (e *expander) name(n string) ([]string, error) {
	if e.r == nil {
		return e.produce(n)
	}
	ok, err := e.r.IsNode(e.ctx, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n, err)
	}
	if ok {
		return e.produce(n)
	}
	members, ok, err := e.r.Group(e.ctx, n)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", n, err)
	}
	if ok {
		return e.produce(members...)
	}
	e.unknown(n)
	return nil, nil
}

func (e *expander) unknown(n string) {
	if !e.seenMissing[n] {
		e.seenMissing[n] = true
		e.missing = append(e.missing, n)
	}
}

// notRange handles an atom that looked like a range but is not one: without a resolver
// it is a name as written; with one it is unknown.
func (e *expander) notRange(a string) ([]string, error) {
	if e.r == nil {
		return e.produce(a)
	}
	e.unknown(a)
	return nil, nil
}

func (e *expander) file(path string, depth int) ([]string, error) {
	if e.counting {
		return nil, nil // the file is read where the noderange is expanded
	}
	if depth > maxNoderangeDepth {
		return nil, invalid("^%s: nested too deeply", path)
	}
	if path == "" {
		return nil, invalid("empty file name after ^")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("noderange file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxNoderangeFile+1))
	if err != nil {
		return nil, fmt.Errorf("noderange file %s: %w", path, err)
	}
	if len(data) > maxNoderangeFile {
		return nil, invalid("^%s: file larger than %d bytes", path, maxNoderangeFile)
	}
	var out orderedSet
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		if i := strings.IndexAny(line, ": \t"); i >= 0 {
			line = line[:i]
		}
		if line == "" {
			continue
		}
		nodes, err := e.list(line, depth+1)
		if err != nil {
			return nil, err
		}
		out.add(nodes...)
	}
	return out.list, nil
}

func (e *expander) allNodes() ([]string, error) {
	if !e.allLoaded {
		all, err := e.r.AllNodes(e.ctx)
		if err != nil {
			return nil, fmt.Errorf("listing nodes: %w", err)
		}
		e.all, e.allLoaded = all, true
	}
	return e.all, nil
}

func (e *expander) regex(expr string) ([]string, error) {
	if e.counting {
		return nil, nil // xCAT matches it against its own node list
	}
	if e.r == nil {
		return nil, invalid("/%s: a regex needs the cluster's node list", expr)
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, invalid("/%s: %v", expr, err)
	}
	all, err := e.allNodes()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range all {
		if re.MatchString(n) {
			out = append(out, n)
		}
	}
	return e.produce(out...)
}

// selectorShortNames are xCAT's short attribute names in selectors.
var selectorShortNames = map[string][2]string{
	"groups": {"nodelist", "groups"},
	"tags":   {"nodelist", "groups"},
	"mgt":    {"nodehm", "mgt"},
}

var (
	selectorNotEqual = regexp.MustCompile(`^[^=]*!=`)
	selectorRegex    = regexp.MustCompile(`^[^=]*=~`)
)

// ParseSelector splits an attribute selector such as "nodelist.status==booted" into
// table, column, operator ("==", "!=", "=~" or "!~") and value, as xCAT reads it.
func ParseSelector(s string) (table, column, op, value string, err error) {
	var left string
	switch {
	case selectorNotEqual.MatchString(s):
		left, value, _ = strings.Cut(s, "!=")
		op = "!="
	case selectorRegex.MatchString(s):
		left, value, _ = strings.Cut(s, "=~")
		op = "=~"
	case strings.Contains(s, "=="):
		left, value, _ = strings.Cut(s, "==")
		op = "=="
	case strings.Contains(s, "="):
		left, value, _ = strings.Cut(s, "=")
		op = "=="
	case strings.Contains(s, "!~"):
		left, value, _ = strings.Cut(s, "!~")
		op = "!~"
	default:
		return "", "", "", "", invalid("%q: not an attribute selector", s)
	}
	if op == "=~" || op == "!~" {
		value = strings.TrimPrefix(value, "/")
		value = strings.TrimSuffix(value, "/")
	}
	if short, ok := selectorShortNames[left]; ok {
		return short[0], short[1], op, value, nil
	}
	table, column, ok := strings.Cut(left, ".")
	if !ok || !isIdent(table) || !isIdent(column) {
		return "", "", "", "", invalid("%q: attribute must be table.column", s)
	}
	return table, column, op, value, nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (e *expander) selector(a string) ([]string, error) {
	table, column, op, value, err := ParseSelector(a)
	if err != nil {
		return nil, err
	}
	if e.counting {
		return nil, nil // xCAT selects from its own tables
	}
	if e.r == nil {
		return nil, invalid("%q: a selector needs the cluster's tables", a)
	}
	if op == "=~" || op == "!~" {
		if _, err := regexp.Compile(value); err != nil {
			return nil, invalid("%q: %v", a, err)
		}
	}
	nodes, err := e.r.Select(e.ctx, table, column, op, value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a, err)
	}
	return e.produce(nodes...)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maxRangeDigits keeps range endpoints within int64.
const maxRangeDigits = 18

// numbers returns the decimal strings from lo to hi, padded as the package doc says.
func (e *expander) numbers(lo, hi string) ([]string, error) {
	if len(lo) > maxRangeDigits || len(hi) > maxRangeDigits {
		return nil, invalid("range %s-%s: numbers too large", lo, hi)
	}
	a, _ := strconv.ParseInt(lo, 10, 64)
	b, _ := strconv.ParseInt(hi, 10, 64)
	if a > b {
		return nil, invalid("range %s-%s counts down; write it as %s-%s", lo, hi, hi, lo)
	}
	if b-a >= int64(e.max()) || e.produced+int(b-a+1) > e.max() {
		if e.counting {
			return nil, errTooMany
		}
		return nil, invalid("range %s-%s: more than %d names", lo, hi, MaxExpandedNodes)
	}
	width := 0
	if leadingZero(lo) || leadingZero(hi) {
		width = max(len(lo), len(hi))
	}
	out := make([]string, 0, b-a+1)
	for n := a; n <= b; n++ {
		out = append(out, padNumber(n, width))
	}
	return out, nil
}

func leadingZero(s string) bool { return len(s) > 1 && s[0] == '0' }

func padNumber(n int64, width int) string {
	s := strconv.FormatInt(n, 10)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// bracket expands "prefix[ranges]rest"; rest may hold further brackets (a product).
func (e *expander) bracket(a string) ([]string, error) {
	open := strings.IndexByte(a, '[')
	end := strings.IndexByte(a, ']')
	if open <= 0 || end < open+2 {
		return nil, invalid("%q: a bracket range needs a prefix and digits, as in node[1-10]", a)
	}
	prefix, body, rest := a[:open], a[open+1:end], a[end+1:]
	if strings.ContainsAny(prefix, "]") {
		return nil, invalid("%q: unbalanced brackets", a)
	}
	var nums []string
	for piece := range strings.SplitSeq(body, ",") {
		lo, hi, isRange := strings.Cut(piece, "-")
		if !isRange {
			lo, hi, isRange = strings.Cut(piece, ":")
		}
		if !isRange {
			hi = lo
		}
		if !isDigits(lo) || !isDigits(hi) {
			return nil, invalid("%q: [%s] must hold numbers and ranges such as 1-10", a, body)
		}
		ns, err := e.numbers(lo, hi)
		if err != nil {
			return nil, err
		}
		nums = append(nums, ns...)
	}
	// Duplicates are dropped by the enclosing list.
	out := make([]string, 0, len(nums))
	for _, n := range nums {
		name := prefix + n + rest
		var nodes []string
		var err error
		if strings.Contains(rest, "[") {
			nodes, err = e.bracket(name)
		} else {
			nodes, err = e.name(name)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, nodes...)
	}
	return out, nil
}

// lastNumber splits s around its last run of digits.
func lastNumber(s string) (prefix, num, suffix string, ok bool) {
	end := -1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] >= '0' && s[i] <= '9' {
			end = i + 1
			break
		}
	}
	if end < 0 {
		return "", "", "", false
	}
	start := end
	for start > 0 && s[start-1] >= '0' && s[start-1] <= '9' {
		start--
	}
	return s[:start], s[start:end], s[end:], true
}

// plus expands "node10+3": node10 to node13.
func (e *expander) plus(a string) ([]string, error) {
	front, inc, _ := strings.Cut(a, "+")
	prefix, num, suffix, ok := lastNumber(front)
	if !ok || !isDigits(inc) || (suffix != "" && suffix[0] != '.') {
		return e.notRange(a)
	}
	if len(inc) > maxRangeDigits || len(num) > maxRangeDigits {
		return nil, invalid("%q: numbers too large", a)
	}
	start, _ := strconv.ParseInt(num, 10, 64)
	n, _ := strconv.ParseInt(inc, 10, 64)
	if n >= int64(e.max()) {
		if e.counting {
			return nil, errTooMany
		}
		return nil, invalid("%q: more than %d names", a, MaxExpandedNodes)
	}
	hi := strconv.FormatInt(start+n, 10)
	if prefix == "" && suffix == "" {
		prefix = DefaultNodePrefix
	}
	nums, err := e.numbers(num, hi)
	if err != nil {
		return nil, err
	}
	return e.names(prefix, nums, suffix)
}

func (e *expander) names(prefix string, nums []string, suffix string) ([]string, error) {
	out := make([]string, 0, len(nums))
	for _, n := range nums {
		nodes, err := e.name(prefix + n + suffix)
		if err != nil {
			return nil, err
		}
		out = append(out, nodes...)
	}
	return out, nil
}

// digitFields splits s into alternating non-digit and digit fields.
func digitFields(s string) []string {
	var out []string
	start := 0
	for i := 1; i <= len(s); i++ {
		if i == len(s) || isDigitByte(s[i]) != isDigitByte(s[start]) {
			out = append(out, s[start:i])
			start = i
		}
	}
	return out
}

func isDigitByte(c byte) bool { return c >= '0' && c <= '9' }

// dashRange expands "a01-a10" and "a01:a10". With dashes inside names, xCAT splits at
// the middle dash ("n1-ib-n3-ib"); an even number of dashes is not a range.
func (e *expander) dashRange(a string) ([]string, error) {
	var left, right string
	if strings.Contains(a, ":") {
		parts := strings.Split(a, ":")
		if len(parts) != 2 {
			return e.notRange(a)
		}
		left, right = parts[0], parts[1]
	} else {
		count := strings.Count(a, "-")
		if count%2 == 0 {
			return e.notRange(a)
		}
		idx, seen := -1, 0
		for i := 0; i < len(a); i++ {
			if a[i] == '-' {
				if seen == count/2 {
					idx = i
					break
				}
				seen++
			}
		}
		left, right = a[:idx], a[idx+1:]
	}
	if left == "" || right == "" {
		return e.notRange(a)
	}
	if left == right {
		return e.name(left)
	}
	if isDigits(left) && isDigits(right) {
		nums, err := e.numbers(left, right)
		if err != nil {
			return nil, err
		}
		return e.names(DefaultNodePrefix, nums, "")
	}
	lf, rf := digitFields(left), digitFields(right)
	if len(lf) != len(rf) {
		return e.notRange(a)
	}
	for i := range lf {
		if lf[i] == rf[i] {
			continue
		}
		if !isDigitByte(lf[i][0]) || !isDigitByte(rf[i][0]) {
			return e.notRange(a)
		}
		if strings.Join(lf[i+1:], "") != strings.Join(rf[i+1:], "") {
			return e.notRange(a)
		}
		nums, err := e.numbers(lf[i], rf[i])
		if err != nil {
			return nil, err
		}
		return e.names(strings.Join(lf[:i], ""), nums, strings.Join(lf[i+1:], ""))
	}
	return e.notRange(a)
}

// CompressNoderange returns a short noderange that expands back to exactly the set of
// nodes given (duplicates are ignored): names that differ only in their last number are
// folded into brackets, such as "node[001-100],gpu07,rack[1-3]-ib". Names are expected
// to pass ValidateNodeName; other names are written as they are. The result is
// deterministic: elements are sorted by prefix, suffix and number.
func CompressNoderange(nodes []string) string {
	type key struct{ prefix, suffix string }
	type entry struct {
		n   int64
		num string
	}
	groups := map[key][]entry{}
	var plain []string
	seen := make(map[string]struct{}, len(nodes))
	for _, name := range nodes {
		if _, dup := seen[name]; dup {
			continue
		}
		seen[name] = struct{}{}
		prefix, num, suffix, ok := lastNumber(name)
		if !ok || prefix == "" || len(num) > maxRangeDigits || strings.ContainsAny(name, "[],()@^+:=~/") {
			plain = append(plain, name)
			continue
		}
		n, _ := strconv.ParseInt(num, 10, 64)
		k := key{prefix, suffix}
		groups[k] = append(groups[k], entry{n, num})
	}
	var elems []string
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return strings.Compare(a.suffix, b.suffix)
	})
	for _, k := range keys {
		entries := groups[k]
		// Split by writing: natural numbers ("7", "100") and zero-padded ones per width.
		padded := map[int][]int64{}
		var natural []int64
		for _, en := range entries {
			if leadingZero(en.num) {
				padded[len(en.num)] = append(padded[len(en.num)], en.n)
			} else {
				natural = append(natural, en.n)
			}
		}
		slices.Sort(natural)
		naturalSet := make(map[int64]bool, len(natural))
		for _, n := range natural {
			naturalSet[n] = true
		}
		var ranges []string
		widths := make([]int, 0, len(padded))
		for w := range padded {
			widths = append(widths, w)
		}
		slices.Sort(widths)
		for _, w := range widths {
			ns := padded[w]
			slices.Sort(ns)
			for i := 0; i < len(ns); {
				j := i
				for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
					j++
				}
				lo, hi := ns[i], ns[j]
				// A padded run may continue into natural numbers of the same width:
				// n[098-100] is 098, 099, 100.
				for j == len(ns)-1 && len(strconv.FormatInt(hi+1, 10)) == w && naturalSet[hi+1] {
					hi++
					delete(naturalSet, hi)
				}
				if lo == hi {
					ranges = append(ranges, padNumber(lo, w))
				} else {
					ranges = append(ranges, padNumber(lo, w)+"-"+padNumber(hi, w))
				}
				i = j + 1
			}
		}
		var rest []int64
		for _, n := range natural {
			if naturalSet[n] {
				rest = append(rest, n)
			}
		}
		for i := 0; i < len(rest); {
			j := i
			for j+1 < len(rest) && rest[j+1] == rest[j]+1 {
				j++
			}
			if i == j {
				ranges = append(ranges, strconv.FormatInt(rest[i], 10))
			} else {
				ranges = append(ranges, strconv.FormatInt(rest[i], 10)+"-"+strconv.FormatInt(rest[j], 10))
			}
			i = j + 1
		}
		if len(ranges) == 1 && !strings.Contains(ranges[0], "-") {
			elems = append(elems, k.prefix+ranges[0]+k.suffix)
			continue
		}
		elems = append(elems, k.prefix+"["+strings.Join(ranges, ",")+"]"+k.suffix)
	}
	slices.Sort(plain)
	return strings.Join(append(elems, plain...), ",")
}

// MaxNodeNameLength is the longest node name ValidateNodeName accepts (a DNS name).
const MaxNodeNameLength = 253

// ValidateNodeName checks that name is safe to use as an xCAT node name in a command
// line, a noderange and an XML request: letters, digits, '.', '_' and '-', starting with
// a letter or digit, at most MaxNodeNameLength bytes. It refuses anything else (shell
// metacharacters, whitespace, newlines, XML markup, noderange operators) with an error
// wrapping ErrInvalidInput; nil means the name is safe.
func ValidateNodeName(name string) error {
	if name == "" {
		return fmt.Errorf("node name is empty: %w", ErrInvalidInput)
	}
	if len(name) > MaxNodeNameLength {
		return fmt.Errorf("node name %.32q... is longer than %d bytes: %w", name, MaxNodeNameLength, ErrInvalidInput)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("node name %q must start with a letter or digit: %w", name, ErrInvalidInput)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("node name %q: character %q not allowed: %w", name, c, ErrInvalidInput)
		}
	}
	return nil
}

// StaticResolver is a Resolver over a fixed, in-memory cluster description: node names,
// their groups and their attributes. It is safe for concurrent use; it is not changed
// after NewStaticResolver.
type StaticResolver struct {
	nodes  []string
	isNode map[string]bool
	groups map[string][]string
	attrs  map[string]map[string]string
}

// NewStaticResolver builds a resolver over nodes (in order); groups maps a group name to
// its members; attrs maps a node to its "table.column" attribute values (may be nil).
// The maps are copied.
func NewStaticResolver(nodes []string, groups map[string][]string, attrs map[string]map[string]string) *StaticResolver {
	r := &StaticResolver{
		nodes:  slices.Clone(nodes),
		isNode: make(map[string]bool, len(nodes)),
		groups: make(map[string][]string, len(groups)),
		attrs:  make(map[string]map[string]string, len(attrs)),
	}
	for _, n := range nodes {
		r.isNode[n] = true
	}
	for g, m := range groups {
		r.groups[g] = slices.Clone(m)
	}
	for n, a := range attrs {
		c := make(map[string]string, len(a))
		for k, v := range a {
			c[k] = v
		}
		r.attrs[n] = c
	}
	return r
}

// AllNodes returns every node in the order given to NewStaticResolver.
func (r *StaticResolver) AllNodes(context.Context) ([]string, error) {
	return slices.Clone(r.nodes), nil
}

// IsNode reports whether name is one of the nodes.
func (r *StaticResolver) IsNode(_ context.Context, name string) (bool, error) {
	return r.isNode[name], nil
}

// Group returns the members of a group.
func (r *StaticResolver) Group(_ context.Context, name string) ([]string, bool, error) {
	m, ok := r.groups[name]
	return slices.Clone(m), ok, nil
}

// Select compares each node's "table.column" attribute (nodelist.groups is the node's
// groups, comma-joined, when not given explicitly).
func (r *StaticResolver) Select(_ context.Context, table, column, op, value string) ([]string, error) {
	match, err := Matcher(op, value)
	if err != nil {
		return nil, err
	}
	attr := table + "." + column
	var groupsOf map[string][]string
	if attr == "nodelist.groups" {
		groupsOf = map[string][]string{}
		names := make([]string, 0, len(r.groups))
		for g := range r.groups {
			names = append(names, g)
		}
		slices.Sort(names)
		for _, g := range names {
			for _, n := range r.groups[g] {
				groupsOf[n] = append(groupsOf[n], g)
			}
		}
	}
	var out []string
	for _, n := range r.nodes {
		v, ok := r.attrs[n][attr]
		if !ok && groupsOf != nil {
			v = strings.Join(groupsOf[n], ",")
		}
		if match(v) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Matcher returns the comparison a selector operator makes ("==", "!=", "=~", "!~"),
// as xCAT does it: equality of strings, or an unanchored regexp match.
func Matcher(op, value string) (func(string) bool, error) {
	switch op {
	case "==", "=":
		return func(v string) bool { return v == value }, nil
	case "!=":
		return func(v string) bool { return v != value }, nil
	case "=~", "!~":
		re, err := regexp.Compile(value)
		if err != nil {
			return nil, fmt.Errorf("selector regex %q: %v: %w", value, err, ErrInvalidInput)
		}
		if op == "=~" {
			return re.MatchString, nil
		}
		return func(v string) bool { return !re.MatchString(v) }, nil
	}
	return nil, fmt.Errorf("selector operator %q: %w", op, ErrInvalidInput)
}
